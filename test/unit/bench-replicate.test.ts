/**
 * The benchmark's replicated inputs (bench/lib/replicate.ts): real recorded outputs scaled to N
 * containers must stay parseable by the agent's own parsers and give N distinct rows. Timings are
 * never asserted here; `npm run bench` reports them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { btrfsOutputs, btrfsWorld, dmOutputs, dmWorld } from '../../bench/lib/replicate.js';
import { parseQgroupShow } from '../../src/storage/btrfs/parse-qgroup-show.js';
import {
  dockerSubvolumesByMountId,
  parseSubvolumeList,
} from '../../src/storage/btrfs/parse-subvolume-list.js';
import {
  DM_INFO_FIELDS,
  parseDmInfoColumns,
  parseDockerDmDriverStatus,
  parseDmsetupAllDevices,
  parseDmsetupOneDevice,
  parseMountinfo,
  parseThinPoolStatus,
  parseThinStatus,
  parseThinTable,
  type DmSegment,
} from '../../src/storage/devicemapper/parse.js';
import { createBtrfsBackend } from '../../src/storage/btrfs/index.js';
import { createDevicemapperBackend } from '../../src/storage/devicemapper/index.js';
import { silentLogger } from '../../src/log/logger.js';
import type { World } from '../../bench/lib/replicate.js';
import type { DockerApi } from '../../src/docker/inventory-port.js';
import {
  REFERENCE_LVM_DRIVER_STATUS,
  dmInfoLine,
  dmTableLine,
  thinPoolStatusLine,
  thinStatusLine,
  type ThinPoolStatusFields,
} from '../support/dm-lines.js';
import { infoColumnsAs, recordedDm, recordedDmJson, recordedDmText } from '../support/dm-fixtures.js';

const N = 100;
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'agbench-test-'));
  dirs.push(dir);
  return dir;
}

function deps(world: World) {
  return {
    runner: world.runner,
    docker: {} as DockerApi,
    dockerInfo: world.dockerInfo,
    logger: silentLogger(),
    stateDir: world.stateDir,
    commandTimeoutMs: 1000,
  };
}

describe('bench replicated btrfs outputs', () => {
  it('gives N distinct qgroups and subvolumes the parsers accept', () => {
    const { qgroupShow, subvolumeList, mountIds } = btrfsOutputs(N);
    const rows = parseQgroupShow(qgroupShow);
    // top level + an -init and a layer subvolume per container
    expect(rows).toHaveLength(1 + 2 * N);
    expect(new Set(rows.map((row) => row.qgroupKey)).size).toBe(rows.length);
    const byMount = dockerSubvolumesByMountId(parseSubvolumeList(subvolumeList));
    expect(new Set(mountIds).size).toBe(N);
    for (const mountId of mountIds) expect(byMount.get(mountId)).toEqual(expect.any(Number));
  });

  it('lets the real backend observe every container with one process', async () => {
    const world = btrfsWorld(N, tempDir());
    const backend = createBtrfsBackend(deps(world), world.backendOptions as { sysfsRoot: string });
    await backend.observe(world.containers, 0); // first pass also lists subvolumes and the fs uuid
    const before = world.runner.processes;
    const observation = await backend.observe(world.containers, 1000);
    expect(world.runner.processes - before).toBe(1);
    expect(observation.errors.size).toBe(0);
    expect(observation.containers.size).toBe(N);
  });
});

describe('bench replicated devicemapper outputs', () => {
  it('gives N distinct thin devices, infos and mounts the parsers accept', () => {
    const out = dmOutputs(N);
    const tables = parseDmsetupAllDevices(out.table);
    const statuses = parseDmsetupAllDevices(out.status);
    const infos = parseDmInfoColumns(out.info);
    const mounts = parseMountinfo(out.mountinfo);
    const thins = [...tables.values()].filter((segments) => segments[0]?.target === 'thin');
    expect(thins).toHaveLength(N);
    expect(new Set(thins.map((segments) => parseThinTable(segments[0]!).deviceId)).size).toBe(N);
    expect(statuses.size).toBe(N + 3);
    for (const [name, segments] of statuses)
      if (segments[0]?.target === 'thin') expect(parseThinStatus(segments[0]).mappedSectors).toBe(145408);
      else expect(tables.has(name)).toBe(true);
    expect(new Set([...infos.values()].map((info) => `${info.major}:${info.minor}`)).size).toBe(N + 3);
    expect(new Set(mounts.map((mount) => mount.majorMinor)).size).toBe(N);
  });

  it('lets the real backend observe every container with three processes', async () => {
    const world = dmWorld(N, tempDir());
    const backend = createDevicemapperBackend(deps(world), world.backendOptions as { mountinfoPath: string });
    const observation = await backend.observe(world.containers, 0);
    expect(world.runner.processes).toBe(3);
    expect(observation.errors.size).toBe(0);
    expect(observation.containers.size).toBe(N);
  });
});

/**
 * The dmsetup line builders shared by the bench and the unit tests' simulated kernel
 * (test/support/dm-lines.ts) must print what the kernel prints: each is checked against a line the
 * VM recorded, byte for byte (trailing spaces included).
 */
describe('dmsetup line builders reproduce recorded lines', () => {
  const lvmLine = (file: string, name: string) => {
    const line = recordedDmText('docker-dm-lvm', file)
      .split('\n')
      .find((candidate) => candidate.startsWith(`${name}: `));
    if (!line) throw new Error(`${file} has no ${name}`);
    return line;
  };
  const POOL_NAME = 'docker-thinpool';
  const THIN = 'docker-254:0-15355-47c08b5a07330d401582022572adf3edfcae128aa50805710123d42eda99f969';
  /**
   * A recorded pool status line read back into the builder's fields. The parser is tested on its
   * own in dm-parse.test.ts; here it only saves copying each recording's numbers by hand.
   */
  const fieldsOf = (segment: DmSegment): ThinPoolStatusFields => {
    const status = parseThinPoolStatus(segment);
    return {
      lengthSectors: segment.lengthSectors,
      mode: status.mode === 'fail' ? 'Fail' : status.mode,
      transactionId: status.transactionId ?? 0,
      metadataUsedBlocks: status.metadataUsedBlocks ?? 0,
      metadataTotalBlocks: status.metadataTotalBlocks ?? 0,
      dataUsedBlocks: status.dataUsedBlocks ?? 0,
      dataTotalBlocks: status.dataTotalBlocks ?? 0,
      needsCheck: status.needsCheck,
      errorIfNoSpace: status.errorIfNoSpace === true,
      metadataLowWaterBlocks: Number(segment.args.at(-1)),
    };
  };

  it('table lines, with the trailing space only on thin-pool tables', () => {
    expect(dmTableLine(POOL_NAME, '0 6701056 thin-pool 253:0 253:1 1024 0 1 skip_block_zeroing')).toBe(
      lvmLine('dm/table-all.txt', POOL_NAME),
    );
    expect(dmTableLine(THIN, '0 2097152 thin 253:2 4')).toBe(lvmLine('dm/table-all.txt', THIN));
  });

  it('thin status lines, written and on a read-only pool (no highest mapped sector)', () => {
    expect(thinStatusLine(THIN, 2097152, 556032, 2097151)).toBe(lvmLine('dm/status-all.txt', THIN));
    expect(thinStatusLine('agvm-nc-thin', 1048576, 256, null)).toBe(
      `agvm-nc-thin: ${recordedDmText('dm-thin', 'thin/status-on-ro-pool.txt').trimEnd()}`,
    );
  });

  it('thin-pool status lines in every recorded mode', () => {
    const line = lvmLine('dm/status-all.txt', POOL_NAME);
    const segment = parseDmsetupAllDevices(line).get(POOL_NAME)![0]!;
    expect(thinPoolStatusLine(POOL_NAME, fieldsOf(segment))).toBe(line);
    // dm-thin records `dmsetup status <pool>`: the line without the name, newline-terminated.
    for (const file of [
      'pool/status-rw.txt',
      'pool/status-out_of_data_space.txt',
      'pool/status-ro.txt',
      'pool/status-needs_check.txt',
      'pool/status-Fail.txt',
    ]) {
      const text = recordedDmText('dm-thin', file);
      const [only] = parseDmsetupOneDevice(text);
      expect(thinPoolStatusLine('p', fieldsOf(only!)), file).toBe(`p: ${text.replace(/\n$/, '')}`);
    }
  });

  it('info -c lines in the columns the backend asks for', () => {
    const recorded = infoColumnsAs(recordedDm('docker-dm-lvm', 'dm/info-columns.txt'), DM_INFO_FIELDS).split(
      '\n',
    );
    expect(dmInfoLine(THIN, { major: 253, minor: 3, open: 1, uuid: '' })).toBe(recorded[1]);
    expect(
      dmInfoLine(POOL_NAME, {
        major: 253,
        minor: 2,
        open: 2,
        uuid: 'LVM-0IVFumfYFQLmapEO30QUASpbK1YzNnlCqk1RgyTqJDKZ0CTzYfULed0qTKN5OsuG-tpool',
      }),
    ).toBe(recorded[2]);
  });

  it('the simulated direct-lvm DriverStatus is what the recorded daemon reports', () => {
    const recorded = recordedDmJson<{ DriverStatus: Array<[string, string]> }>(
      'docker-dm-lvm',
      'docker/info.json',
    ).DriverStatus;
    for (const pair of REFERENCE_LVM_DRIVER_STATUS) expect(recorded).toContainEqual(pair);
    expect(parseDockerDmDriverStatus(REFERENCE_LVM_DRIVER_STATUS)).toEqual(
      parseDockerDmDriverStatus(recorded),
    );
  });
});
