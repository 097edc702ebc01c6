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
  parseDmInfoColumns,
  parseDmsetupAllDevices,
  parseMountinfo,
  parseThinStatus,
  parseThinTable,
} from '../../src/storage/devicemapper/parse.js';
import { createBtrfsBackend } from '../../src/storage/btrfs/index.js';
import { createDevicemapperBackend } from '../../src/storage/devicemapper/index.js';
import { silentLogger } from '../../src/log/logger.js';
import type { World } from '../../bench/lib/replicate.js';
import type { DockerApi } from '../../src/docker/inventory-port.js';

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
