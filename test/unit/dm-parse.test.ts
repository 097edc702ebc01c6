/**
 * Parsers of the devicemapper backend, on the outputs this project recorded in the VM (Debian 12,
 * kernel 6.1, Docker 20.10.24, dmsetup 1.02.185; test/vm/record/, read through
 * test/support/dm-fixtures.ts):
 * - test/fixtures/docker-dm-lvm: Docker on direct-lvm, two running containers (`plain`, `sized`);
 * - test/fixtures/docker-dm-loop: Docker on loop-lvm, one running container;
 * - test/fixtures/dm-thin: raw thin pools driven into every mode (rw, out_of_data_space, ro,
 *   needs_check, Fail) and a thin device grown by load + resume.
 * Inline strings remain only where no recording can hold the case; each says why.
 */
import { describe, expect, it } from 'vitest';
import {
  DM_INFO_FIELDS,
  formatThinPoolTable,
  formatThinTable,
  lvmDmName,
  parseDmInfoColumns,
  parseDmsetupAllDevices,
  parseDmsetupOneDevice,
  parseDockerDeviceMetadata,
  parseDockerDmDriverStatus,
  parseGraphDriverData,
  parseLvmConfigValue,
  parseLvsReport,
  parseMountinfo,
  parseThinPoolStatus,
  parseThinPoolTable,
  parseThinStatus,
  parseThinTable,
  parseVgsReport,
  patchDockerDeviceMetadataSize,
  type DmSegment,
} from '../../src/storage/devicemapper/parse.js';
import {
  infoColumnsAs,
  recordedDm,
  recordedDmJson,
  recordedDmText,
  type DmFixtureArea,
} from '../support/dm-fixtures.js';

interface Inspected {
  Name: string;
  GraphDriver: { Name: string; Data: Record<string, string> };
}
type DriverStatus = Array<[string, string]>;

/** The one segment of a single-device `dmsetup table|status <dev>` recording. */
function oneSegment(area: DmFixtureArea, file: string): DmSegment {
  const segments = parseDmsetupOneDevice(recordedDmText(area, file));
  expect(segments, file).toHaveLength(1);
  return segments[0]!;
}

/** The one segment of a device in an all-devices `dmsetup table|status` recording. */
function segmentOf(area: DmFixtureArea, file: string, device: string): DmSegment {
  const segments = parseDmsetupAllDevices(recordedDmText(area, file)).get(device);
  if (!segments) throw new Error(`${area}/${file} has no ${device}`);
  expect(segments, `${device} in ${file}`).toHaveLength(1);
  return segments[0]!;
}

/** GraphDriver.Data of a recorded running container, by its name. */
function graphDriverData(area: DmFixtureArea, name: string): Record<string, string> {
  const inspected = recordedDmJson<Inspected[]>(area, 'docker/inspect-running.json');
  const container = inspected.find((entry) => entry.Name === `/${name}`);
  if (!container) throw new Error(`${area} inspect has no ${name}`);
  expect(container.GraphDriver.Name).toBe('devicemapper');
  return container.GraphDriver.Data;
}

const LVM_POOL = 'docker-thinpool';
const LVM_PLAIN = graphDriverData('docker-dm-lvm', 'plain');
const LVM_SIZED = graphDriverData('docker-dm-lvm', 'sized');
const LOOP_PLAIN = graphDriverData('docker-dm-loop', 'plain');
const LOOP_POOL = 'docker-254:16-133-pool';

describe('recorded devices are the ones the tests name', () => {
  it('the direct-lvm recording ran the commands the backend runs, on two containers', () => {
    expect(recordedDm('docker-dm-lvm', 'dm/table-all.txt').command).toEqual(['dmsetup', 'table']);
    expect(recordedDm('docker-dm-lvm', 'dm/status-all.txt').command).toEqual(['dmsetup', 'status']);
    expect(LVM_PLAIN['DeviceName']).toBe(
      'docker-254:0-15355-47c08b5a07330d401582022572adf3edfcae128aa50805710123d42eda99f969',
    );
    expect(LVM_SIZED['DeviceName']).toBe(
      'docker-254:0-15355-416cff095fbd4091fa163424733ca7fd6e1a30e4e9a4dc1ef333851c62a8ccdc',
    );
  });
});

describe('dmsetup table and status over all devices (direct-lvm)', () => {
  it('splits names that contain colons and keeps every device, in order', () => {
    const tables = parseDmsetupAllDevices(recordedDmText('docker-dm-lvm', 'dm/table-all.txt'));
    expect([...tables.keys()]).toEqual([
      LVM_SIZED['DeviceName'],
      LVM_PLAIN['DeviceName'],
      LVM_POOL,
      'docker-thinpool_tdata',
      'docker-thinpool_tmeta',
    ]);
    expect(tables.get(LVM_PLAIN['DeviceName']!)).toEqual([
      { startSector: 0, lengthSectors: 2097152, target: 'thin', args: ['253:2', '4'] },
    ]);
    expect(tables.get('docker-thinpool_tmeta')).toEqual([
      { startSector: 0, lengthSectors: 163840, target: 'linear', args: ['254:16', '6703104'] },
    ]);
    const status = parseDmsetupAllDevices(recordedDmText('docker-dm-lvm', 'dm/status-all.txt'));
    expect([...status.keys()]).toEqual([...tables.keys()]);
  });

  it('reads thin tables: the pool, Docker DeviceId and DeviceSize agree with docker inspect', () => {
    for (const data of [LVM_PLAIN, LVM_SIZED]) {
      const segment = segmentOf('docker-dm-lvm', 'dm/table-all.txt', data['DeviceName']!);
      expect(parseThinTable(segment)).toEqual({
        poolDevice: '253:2',
        deviceId: Number(data['DeviceId']),
        externalOrigin: null,
      });
      expect(segment.lengthSectors * 512).toBe(Number(data['DeviceSize']));
    }
  });

  it('reads a direct-lvm pool table and rw status; blocks × block size = the pool length', () => {
    const segment = segmentOf('docker-dm-lvm', 'dm/table-all.txt', LVM_POOL);
    const table = parseThinPoolTable(segment);
    expect(table).toEqual({
      metadataDevice: '253:0',
      dataDevice: '253:1',
      dataBlockSizeSectors: 1024,
      lowWaterMarkBlocks: 0,
      features: ['skip_block_zeroing'],
    });
    const status = parseThinPoolStatus(segmentOf('docker-dm-lvm', 'dm/status-all.txt', LVM_POOL));
    expect(status).toEqual({
      mode: 'rw',
      transactionId: 6,
      metadataUsedBlocks: 2067,
      metadataTotalBlocks: 20480,
      dataUsedBlocks: 616,
      dataTotalBlocks: 6544,
      needsCheck: false,
      errorIfNoSpace: false,
    });
    expect(status.dataTotalBlocks! * table.dataBlockSizeSectors).toBe(segment.lengthSectors);
    // The pool's data leg is the tdata LV, its metadata leg the tmeta LV (major:minor from info -c).
    const info = parseDmInfoColumns(
      infoColumnsAs(recordedDm('docker-dm-lvm', 'dm/info-columns.txt'), DM_INFO_FIELDS),
    );
    expect(`${info.get('docker-thinpool_tdata')?.major}:${info.get('docker-thinpool_tdata')?.minor}`).toBe(
      table.dataDevice,
    );
    expect(`${info.get('docker-thinpool_tmeta')?.major}:${info.get('docker-thinpool_tmeta')?.minor}`).toBe(
      table.metadataDevice,
    );
  });

  it('reads the pool after lvextend: the same table but longer, more data blocks', () => {
    const before = parseThinPoolStatus(oneSegment('docker-dm-lvm', 'dm/pool-status.txt'));
    const afterSegment = oneSegment('docker-dm-lvm', 'dm/pool-status-extended.txt');
    const after = parseThinPoolStatus(afterSegment);
    expect(before.dataTotalBlocks).toBe(6544);
    expect(after.dataTotalBlocks).toBe(7568);
    expect(after.dataTotalBlocks! * 1024).toBe(afterSegment.lengthSectors);
    const extendedTable = oneSegment('docker-dm-lvm', 'dm/pool-table-extended.txt');
    expect(formatThinPoolTable(6701056, parseThinPoolTable(extendedTable))).toBe(
      recordedDmText('docker-dm-lvm', 'dm/pool-table.txt').trimEnd(),
    );
  });

  it('reads thin status of a written device', () => {
    const status = parseThinStatus(segmentOf('docker-dm-lvm', 'dm/status-all.txt', LVM_PLAIN['DeviceName']!));
    expect(status).toEqual({ failed: false, mappedSectors: 556032, highestMappedSector: 2097151 });
  });

  it('the single-device form gives the same segment as the all-devices form', () => {
    expect(oneSegment('docker-dm-lvm', 'dm/container-table.txt')).toEqual(
      segmentOf('docker-dm-lvm', 'dm/table-all.txt', LVM_PLAIN['DeviceName']!),
    );
    expect(oneSegment('docker-dm-lvm', 'dm/pool-table.txt')).toEqual(
      segmentOf('docker-dm-lvm', 'dm/table-all.txt', LVM_POOL),
    );
    expect(oneSegment('docker-dm-loop', 'dm/container-status.txt')).toEqual(
      segmentOf('docker-dm-loop', 'dm/status-all.txt', LOOP_PLAIN['DeviceName']!),
    );
  });
});

describe('thin-pool modes (dm-thin: each pool driven into the mode, see the manifest notes)', () => {
  const poolStatus = (file: string) => parseThinPoolStatus(oneSegment('dm-thin', file));
  const thinStatus = (file: string) => parseThinStatus(oneSegment('dm-thin', file));

  it('rw: a fresh pool, a written one, one holding a metadata snapshot', () => {
    const table = parseThinPoolTable(oneSegment('dm-thin', 'pool/table.txt'));
    expect(table).toEqual({
      metadataDevice: '253:0',
      dataDevice: '253:1',
      dataBlockSizeSectors: 128,
      lowWaterMarkBlocks: 1024,
      features: [],
    });
    expect(poolStatus('pool/status-fresh.txt')).toEqual({
      mode: 'rw',
      transactionId: 0,
      metadataUsedBlocks: 1650,
      metadataTotalBlocks: 16384,
      dataUsedBlocks: 0,
      dataTotalBlocks: 32768,
      needsCheck: false,
      errorIfNoSpace: false,
    });
    const rw = poolStatus('pool/status-rw.txt');
    expect(rw).toMatchObject({ mode: 'rw', dataUsedBlocks: 2635, dataTotalBlocks: 32768, needsCheck: false });
    expect(rw.dataTotalBlocks! * table.dataBlockSizeSectors).toBe(
      oneSegment('dm-thin', 'pool/table.txt').lengthSectors,
    );
    // The held metadata root (96 instead of `-`) must not shift the fields after it.
    expect(poolStatus('pool/status-held-metadata-snap.txt')).toMatchObject({
      mode: 'rw',
      metadataUsedBlocks: 1667,
      dataUsedBlocks: 2651,
      needsCheck: false,
      errorIfNoSpace: false,
    });
  });

  it('out_of_data_space: an error_if_no_space pool with every data block used', () => {
    expect(recordedDm('dm-thin', 'pool/status-out_of_data_space.txt').note).toMatch(/error_if_no_space/);
    const table = parseThinPoolTable(oneSegment('dm-thin', 'pool/table-error_if_no_space.txt'));
    expect(table.features).toEqual(['error_if_no_space']);
    const full = poolStatus('pool/status-out_of_data_space.txt');
    expect(full).toEqual({
      mode: 'out_of_data_space',
      transactionId: 0,
      metadataUsedBlocks: 219,
      metadataTotalBlocks: 2048,
      dataUsedBlocks: 1024,
      dataTotalBlocks: 1024,
      needsCheck: false,
      errorIfNoSpace: true,
    });
    // The thin device on it mapped exactly the pool's data: 1024 blocks of 128 sectors.
    expect(thinStatus('thin/status-on-full-pool.txt')).toEqual({
      failed: false,
      mappedSectors: full.dataTotalBlocks! * table.dataBlockSizeSectors,
      highestMappedSector: 131071,
    });
  });

  it('ro: a pool whose table asks for read_only', () => {
    expect(parseThinPoolTable(oneSegment('dm-thin', 'pool/table-read_only.txt')).features).toEqual([
      'read_only',
    ]);
    expect(poolStatus('pool/status-ro.txt')).toEqual({
      mode: 'ro',
      transactionId: 0,
      metadataUsedBlocks: 214,
      metadataTotalBlocks: 2048,
      dataUsedBlocks: 128,
      dataTotalBlocks: 1024,
      needsCheck: false,
      errorIfNoSpace: false,
    });
  });

  it('needs_check: metadata writes failed, the kernel switched the pool to ro and flagged it', () => {
    expect(recordedDm('dm-thin', 'pool/status-needs_check.txt').note).toMatch(/error_writes/);
    expect(poolStatus('pool/status-needs_check.txt')).toEqual({
      mode: 'ro',
      transactionId: 0,
      metadataUsedBlocks: 214,
      metadataTotalBlocks: 2048,
      dataUsedBlocks: 0,
      dataTotalBlocks: 1024,
      needsCheck: true,
      errorIfNoSpace: false,
    });
    // Its thin device reports mapped sectors but no highest mapped sector (`-`).
    expect(thinStatus('thin/status-on-ro-pool.txt')).toEqual({
      failed: false,
      mappedSectors: 256,
      highestMappedSector: null,
    });
  });

  it('Fail: the kernel prints only "Fail", for the pool and its thin devices', () => {
    expect(recordedDm('dm-thin', 'pool/status-Fail.txt').note).toMatch(/error target/);
    expect(poolStatus('pool/status-Fail.txt')).toEqual({
      mode: 'fail',
      transactionId: null,
      metadataUsedBlocks: null,
      metadataTotalBlocks: null,
      dataUsedBlocks: null,
      dataTotalBlocks: null,
      needsCheck: false,
      // Unknown, not false: a failed pool no longer prints its no-space policy.
      errorIfNoSpace: null,
    });
    expect(thinStatus('thin/status-on-failed-pool.txt')).toEqual({
      failed: true,
      mappedSectors: null,
      highestMappedSector: null,
    });
  });

  it('the kernel log of the recording names each mode switch the statuses show', () => {
    const dmesg = recordedDmText('dm-thin', 'pool/dmesg-modes.txt');
    expect(dmesg).toMatch(/switching pool to out-of-data-space \(error IO\) mode/);
    expect(dmesg).toMatch(/switching pool to read-only mode/);
    expect(dmesg).toMatch(/switching pool to fail mode/);
  });
});

describe('thin device tables and status (dm-thin)', () => {
  it('reads a thin table and a written and a never-written device', () => {
    expect(parseThinTable(oneSegment('dm-thin', 'thin/table.txt'))).toEqual({
      poolDevice: '253:2',
      deviceId: 0,
      externalOrigin: null,
    });
    expect(parseThinStatus(oneSegment('dm-thin', 'thin/status.txt'))).toEqual({
      failed: false,
      mappedSectors: 337280,
      highestMappedSector: 2097151,
    });
    expect(parseThinStatus(oneSegment('dm-thin', 'thin/status-unwritten.txt'))).toEqual({
      failed: false,
      mappedSectors: 0,
      highestMappedSector: null,
    });
  });

  it('the all-devices recording agrees with the single-device ones', () => {
    expect(segmentOf('dm-thin', 'all/table.txt', 'agvm-thin0')).toEqual(
      oneSegment('dm-thin', 'thin/table.txt'),
    );
    expect(segmentOf('dm-thin', 'all/status.txt', 'agvm-thin0')).toEqual(
      oneSegment('dm-thin', 'thin/status.txt'),
    );
    expect(segmentOf('dm-thin', 'all/status.txt', 'agvm-thin1')).toEqual(
      oneSegment('dm-thin', 'thin/status-unwritten.txt'),
    );
    expect(parseThinPoolStatus(segmentOf('dm-thin', 'all/status.txt', 'agvm-pool'))).toEqual(
      parseThinPoolStatus(oneSegment('dm-thin', 'pool/status-rw.txt')),
    );
  });

  it('formats the grown table the kernel then loaded and made live: only the length changes', () => {
    const grown = formatThinTable(6291456, parseThinTable(oneSegment('dm-thin', 'thin/table.txt')));
    expect(grown).toBe(recordedDmText('dm-thin', 'grow/table-inactive.txt').trimEnd());
    expect(grown).toBe(recordedDmText('dm-thin', 'grow/table-after.txt').trimEnd());
    // blockdev --getsize64 after the resume: the device is 6291456 sectors long.
    expect(Number(recordedDmText('dm-thin', 'grow/blockdev-getsize64.txt')) / 512).toBe(6291456);
  });
});

describe('loop-lvm (docker-dm-loop)', () => {
  it('reads a pool whose legs are loop devices, and round-trips its table', () => {
    const segment = segmentOf('docker-dm-loop', 'dm/table-all.txt', LOOP_POOL);
    const pool = parseThinPoolTable(segment);
    expect(pool).toEqual({
      metadataDevice: '7:1',
      dataDevice: '7:0',
      dataBlockSizeSectors: 128,
      lowWaterMarkBlocks: 32768,
      features: ['skip_block_zeroing'],
    });
    expect(formatThinPoolTable(segment.lengthSectors, pool)).toBe(
      recordedDmText('docker-dm-loop', 'dm/pool-table.txt').trimEnd(),
    );
    expect(formatThinPoolTable(16777216, pool)).toBe(
      '0 16777216 thin-pool 7:1 7:0 128 32768 1 skip_block_zeroing',
    );
    const status = parseThinPoolStatus(segmentOf('docker-dm-loop', 'dm/status-all.txt', LOOP_POOL));
    expect(status).toMatchObject({
      mode: 'rw',
      transactionId: 4,
      dataUsedBlocks: 2790,
      dataTotalBlocks: 65536,
    });
    expect(status.dataTotalBlocks! * pool.dataBlockSizeSectors).toBe(segment.lengthSectors);
  });

  it('its container device is a thin device on the loop pool with Docker DeviceId', () => {
    const info = parseDmInfoColumns(
      infoColumnsAs(recordedDm('docker-dm-loop', 'dm/info-columns.txt'), DM_INFO_FIELDS),
    );
    const poolInfo = info.get(LOOP_POOL)!;
    // No LVM uuid: what tells loop-lvm from direct-lvm besides `Data loop file`.
    expect(poolInfo.uuid).toBe('');
    const thin = parseThinTable(segmentOf('docker-dm-loop', 'dm/table-all.txt', LOOP_PLAIN['DeviceName']!));
    expect(thin).toEqual({
      poolDevice: `${poolInfo.major}:${poolInfo.minor}`,
      deviceId: Number(LOOP_PLAIN['DeviceId']),
      externalOrigin: null,
    });
  });
});

describe('malformed input', () => {
  // Built inline on purpose: nothing the kernel recorded is malformed.
  it('rejects lines it does not understand instead of guessing', () => {
    expect(() => parseDmsetupAllDevices('garbage\n')).toThrow(/without a device name/);
    const rw = oneSegment('dm-thin', 'pool/status-rw.txt');
    expect(() =>
      parseThinPoolStatus({ ...rw, args: rw.args.map((arg) => (arg === 'rw' ? 'weird' : arg)) }),
    ).toThrow(/unknown mode/);
  });
  it('skips a device without a table (name and colon only) and still reads the others', () => {
    // As the guest soak saw it (loop-lvm, 2026-12-04 18:16): a container's device mid-creation
    // listed with no table made the whole listing throw, and every container lost its usage.
    const table = recordedDmText('docker-dm-lvm', 'dm/table-all.txt');
    const withEmpty = `docker-254:16-393234-5b769cf2738677: \n${table}`;
    const parsed = parseDmsetupAllDevices(withEmpty);
    expect(parsed.has('docker-254:16-393234-5b769cf2738677')).toBe(false);
    expect(parsed.size).toBe(parseDmsetupAllDevices(table).size);
    expect(parsed.size).toBeGreaterThan(0);
    // a bare word is still refused, and so is a colon line with spaces in it
    expect(() => parseDmsetupAllDevices('garbage\n')).toThrow(/without a device name/);
    expect(() => parseDmsetupAllDevices('two words:\n')).toThrow(/without a device name/);
  });
  it('reads the empty answer of dmsetup', () => {
    // No recording ran dmsetup with no device at all; this is its message for that case.
    expect(parseDmsetupAllDevices('No devices found\n').size).toBe(0);
  });
});

describe('dmsetup info -c', () => {
  it('the recordings asked for more columns than the backend; the backend’s are a subset', () => {
    const recorded = recordedDm('dm-thin', 'all/info-columns.txt');
    expect(recorded.command.slice(0, 6)).toEqual([
      'dmsetup',
      'info',
      '-c',
      '--noheadings',
      '--separator',
      ';',
    ]);
    const recordedFields = recorded.command[7]!.split(',');
    for (const field of DM_INFO_FIELDS.split(',')) expect(recordedFields).toContain(field);
  });

  it('reads name, major:minor, attr and open count', () => {
    const info = parseDmInfoColumns(
      infoColumnsAs(recordedDm('dm-thin', 'all/info-columns.txt'), DM_INFO_FIELDS),
    );
    expect([...info.keys()]).toEqual(['agvm-data', 'agvm-meta', 'agvm-pool', 'agvm-thin0', 'agvm-thin1']);
    expect(info.get('agvm-pool')).toEqual({
      name: 'agvm-pool',
      major: 253,
      minor: 2,
      live: true,
      inactive: false,
      suspended: false,
      readOnly: false,
      openCount: 2,
      uuid: '',
    });
    expect(info.get('agvm-thin1')?.openCount).toBe(0);
  });

  it('reads LVM uuids (direct-lvm detection), keeping them whole', () => {
    const info = parseDmInfoColumns(
      infoColumnsAs(recordedDm('docker-dm-lvm', 'dm/info-columns.txt'), DM_INFO_FIELDS),
    );
    expect(info.get(LVM_POOL)).toMatchObject({
      major: 253,
      minor: 2,
      openCount: 2,
      uuid: 'LVM-0IVFumfYFQLmapEO30QUASpbK1YzNnlCqk1RgyTqJDKZ0CTzYfULed0qTKN5OsuG-tpool',
    });
    // The containers' thin devices sit on that pool's major:minor.
    expect(
      parseThinTable(segmentOf('docker-dm-lvm', 'dm/table-all.txt', LVM_PLAIN['DeviceName']!)).poolDevice,
    ).toBe('253:2');
    expect(info.get(LVM_PLAIN['DeviceName']!)?.uuid).toBe('');
  });

  it('reads the suspended and inactive flags', () => {
    // Inline: the recorder caught a device suspended and one with an inactive table only in the
    // long `dmsetup info <dev>` form (dm-thin grow/info-*.txt), never in the -c form parsed here.
    expect(recordedDmText('dm-thin', 'grow/info-suspended.txt')).toMatch(/State:\s+SUSPENDED/);
    expect(recordedDmText('dm-thin', 'grow/info-live-and-inactive.txt')).toMatch(
      /Tables present:\s+LIVE & INACTIVE/,
    );
    const info = parseDmInfoColumns('agvm-thin0;253;3;LIsw;1;\n').get('agvm-thin0')!;
    expect(info).toMatchObject({ live: true, inactive: true, suspended: true, openCount: 1 });
  });
});

describe('docker info DriverStatus', () => {
  it('direct-lvm', () => {
    const pairs = recordedDmJson<{ DriverStatus: DriverStatus }>(
      'docker-dm-lvm',
      'docker/info.json',
    ).DriverStatus;
    expect(parseDockerDmDriverStatus(pairs)).toEqual({
      poolName: LVM_POOL,
      udevSyncSupported: true,
      deferredRemovalEnabled: true,
      deferredDeletionEnabled: true,
      backingFilesystem: 'xfs',
      dataLoopDevice: null,
      metadataLoopDevice: null,
      dataLoopFile: null,
      metadataLoopFile: null,
    });
  });
  it('loop-lvm: the loop devices and their sparse files', () => {
    const pairs = recordedDmJson<{ DriverStatus: DriverStatus }>(
      'docker-dm-loop',
      'docker/info.json',
    ).DriverStatus;
    expect(parseDockerDmDriverStatus(pairs)).toEqual({
      poolName: LOOP_POOL,
      udevSyncSupported: true,
      deferredRemovalEnabled: true,
      deferredDeletionEnabled: true,
      backingFilesystem: 'xfs',
      dataLoopDevice: '/dev/loop0',
      metadataLoopDevice: '/dev/loop1',
      dataLoopFile: '/var/lib/docker/devicemapper/devicemapper/data',
      metadataLoopFile: '/var/lib/docker/devicemapper/devicemapper/metadata',
    });
  });
  it('refuses a host without a pool', () => {
    // Inline: every recorded host is a devicemapper host; this is what an extfs overlay host reports.
    expect(() => parseDockerDmDriverStatus([['Backing Filesystem', 'extfs']])).toThrow(/Pool Name/);
  });
});

describe('GraphDriver.Data', () => {
  it('validates the device name, id and size of every recorded container', () => {
    expect(parseGraphDriverData(LVM_PLAIN)).toEqual({
      deviceName: LVM_PLAIN['DeviceName'],
      deviceId: 4,
      dockerSizeBytes: 1073741824,
      hash: '47c08b5a07330d401582022572adf3edfcae128aa50805710123d42eda99f969',
    });
    expect(parseGraphDriverData(LVM_SIZED)).toMatchObject({ deviceId: 6, dockerSizeBytes: 2147483648 });
    expect(parseGraphDriverData(LOOP_PLAIN)).toMatchObject({
      deviceId: 4,
      hash: '59779d2ccc5c1dbf53e2f980c7f38fef81e455ef81e31eac5c55ab9221c7f411',
    });
    // The hash names Docker's metadata file (the recorder cat'ed it by that name).
    expect(recordedDm('docker-dm-lvm', 'metadata/container-device.json').command[1]).toBe(
      `/var/lib/docker/devicemapper/metadata/${parseGraphDriverData(LVM_PLAIN).hash}`,
    );
  });
  // Hostile variants of the recorded data: Docker never reported these.
  const name = LVM_PLAIN['DeviceName']!;
  it.each([
    [{ DeviceId: '4', DeviceName: LVM_POOL }],
    [{ DeviceId: '4', DeviceName: `${name}; rm -rf /` }],
    [{ DeviceId: '4', DeviceName: `${name}-init` }],
    [{ DeviceId: '-1', DeviceName: name }],
    [{ DeviceId: '4x', DeviceName: name }],
  ])('rejects %j', (data) => {
    expect(() => parseGraphDriverData(data)).toThrow();
  });
});

describe('Docker device metadata file', () => {
  const text = recordedDmText('docker-dm-lvm', 'metadata/container-device.json');
  it('reads device_id and size (they match docker inspect)', () => {
    expect(parseDockerDeviceMetadata(text)).toEqual({
      deviceId: Number(LVM_PLAIN['DeviceId']),
      sizeBytes: Number(LVM_PLAIN['DeviceSize']),
    });
    expect(
      parseDockerDeviceMetadata(recordedDmText('docker-dm-loop', 'metadata/container-device.json')),
    ).toEqual({
      deviceId: 4,
      sizeBytes: 1073741824,
    });
  });
  it('changes only "size", keeping every other field and their order', () => {
    expect(text).toBe(
      '{"device_id":4,"size":1073741824,"transaction_id":4,"initialized":false,"deleted":false}',
    );
    expect(patchDockerDeviceMetadataSize(text, 3221225472)).toBe(
      '{"device_id":4,"size":3221225472,"transaction_id":4,"initialized":false,"deleted":false}',
    );
  });
});

describe('LVM reports (docker-dm-lvm)', () => {
  it('reads the pool LV, whose dm name is the pool and whose size is the pool table length', () => {
    const [lv] = parseLvsReport(recordedDmText('docker-dm-lvm', 'lvm/lvs-thinpool.json'));
    expect(lv).toEqual({
      vgName: 'docker',
      lvName: 'thinpool',
      sizeBytes: 3430940672,
      metadataSizeBytes: 83886080,
      attr: 'twi-a-t---',
    });
    expect(lvmDmName(lv!.vgName, lv!.lvName)).toBe(LVM_POOL);
    expect(lv!.sizeBytes).toBe(segmentOf('docker-dm-lvm', 'dm/table-all.txt', LVM_POOL).lengthSectors * 512);
    const [extended] = parseLvsReport(recordedDmText('docker-dm-lvm', 'lvm/lvs-thinpool-extended.json'));
    expect(extended!.sizeBytes).toBe(
      oneSegment('docker-dm-lvm', 'dm/pool-table-extended.txt').lengthSectors * 512,
    );
  });
  it('reads the volume group free space and extent size', () => {
    expect(parseVgsReport(recordedDmText('docker-dm-lvm', 'lvm/vgs.json'))).toEqual([
      { vgName: 'docker', freeBytes: 4987027456, extentSizeBytes: 4194304 },
    ]);
  });
  it('mangles names with dashes like device-mapper does', () => {
    // Inline: the recorded VG and LV names have no dash.
    expect(lvmDmName('my-vg', 'thin-pool')).toBe('my--vg-thin--pool');
  });
});

describe('mountinfo and lvm config', () => {
  // Inline, verbatim from the reference capture docker-dm-lvm/13-container.txt
  // (/work/shared/reference/real-outputs): the project's recordings hold findmnt JSON only, which
  // lacks the major:minor field the backend checks against the container's device.
  const MOUNTINFO_LINE =
    '34 32 253:4 / /var/lib/docker/devicemapper/mnt/eda54e3a3fc7846f960a6afdc2e216f15f264637badfe9ba7dbe458043e47aa9 rw,relatime shared:3 - xfs /dev/mapper/docker-254:0-15931-eda54e3a3fc7846f960a6afdc2e216f15f264637badfe9ba7dbe458043e47aa9 rw,nouuid,attr2,inode64,logbufs=8,logbsize=32k,sunit=1024,swidth=1024,noquota\n';
  it('finds the container mount, its device and filesystem type', () => {
    expect(parseMountinfo(MOUNTINFO_LINE)).toMatchObject([
      {
        majorMinor: '253:4',
        mountPoint:
          '/var/lib/docker/devicemapper/mnt/eda54e3a3fc7846f960a6afdc2e216f15f264637badfe9ba7dbe458043e47aa9',
        fsType: 'xfs',
        source:
          '/dev/mapper/docker-254:0-15931-eda54e3a3fc7846f960a6afdc2e216f15f264637badfe9ba7dbe458043e47aa9',
      },
    ]);
  });
  it('agrees with the recorded findmnt of a container mount on type and source', () => {
    const findmnt = recordedDmJson<{
      filesystems: Array<{ target: string; source: string; fstype: string }>;
    }>('docker-dm-lvm', 'fs/findmnt-container.json').filesystems[0]!;
    expect(findmnt).toMatchObject({
      target: `/var/lib/docker/devicemapper/mnt/${parseGraphDriverData(LVM_PLAIN).hash}`,
      source: `/dev/mapper/${LVM_PLAIN['DeviceName']}`,
      fstype: 'xfs',
    });
  });
  it('unescapes octal escapes in mount points', () => {
    // Inline: no recorded mount point contains a space.
    expect(parseMountinfo('1 2 8:1 / /mnt/a\\040b rw - ext4 /dev/sda1 rw\n')[0]?.mountPoint).toBe('/mnt/a b');
  });
  it('reads lvm config values', () => {
    // Inline: the recordings did not run `lvm config`.
    expect(
      parseLvmConfigValue('thin_pool_autoextend_threshold=100\n', 'thin_pool_autoextend_threshold'),
    ).toBe('100');
    expect(parseLvmConfigValue('other=1\n', 'thin_pool_autoextend_threshold')).toBeNull();
  });
});
