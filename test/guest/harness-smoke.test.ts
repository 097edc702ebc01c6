/**
 * Runs INSIDE the test VM (launched by test/vm/smoke.test.ts): proves that the environment the
 * harness promised is really there, on a real kernel. Each check prints the real command output to
 * the console (the host asserts on it too) and then asserts on its content.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { guestEnvironment } from '../vm/harness/guest.js';

const execFileAsync = promisify(execFile);
const env = guestEnvironment();

/** Runs a command, echoes `$ cmd` + its stdout to the console (visible in the host's console.log). */
async function show(file: string, args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(file, args, { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 });
  console.log(`$ ${[file, ...args].join(' ')}\n${stdout}`);
  return stdout;
}

// `<start> <length> thin-pool <transaction> <used>/<total meta> <used>/<total data> <held root> <mode> ...`
const THIN_POOL_STATUS =
  /^0 \d+ thin-pool \d+ \d+\/\d+ \d+\/\d+ \S+ (rw|ro|out_of_data_space|Fail) (no_)?discard_passdown (queue|error)_if_no_space/;

interface DockerInfo {
  Driver: string;
  DriverStatus: [string, string][] | null;
  ServerVersion: string;
}

async function dockerInfo(): Promise<DockerInfo> {
  await show('/usr/bin/docker', ['info']); // the human-readable form, for the console
  return JSON.parse(await show('/usr/bin/docker', ['info', '--format', '{{json .}}'])) as DockerInfo;
}

function driverStatus(info: DockerInfo, key: string): string | undefined {
  return info.DriverStatus?.find(([name]) => name === key)?.[1];
}

async function runBusybox(extraArgs: string[], command: string): Promise<string> {
  const image = env.docker?.busyboxImage ?? '';
  return show('/usr/bin/docker', [
    'run',
    '--rm',
    '--network',
    'none',
    ...extraArgs,
    image,
    'sh',
    '-c',
    command,
  ]);
}

async function poolStatus(pool: string): Promise<string> {
  const status = await show('/sbin/dmsetup', ['status', pool]);
  expect(status).toMatch(THIN_POOL_STATUS);
  return status;
}

describe.runIf(env.environment === 'dm-thin-raw')('dm-thin-raw', () => {
  it('has a live thin pool that provisions a thin device on write', async () => {
    const pool = env.thinPool ?? '';
    const before = await poolStatus(pool);
    await show('/sbin/dmsetup', ['table', pool]);
    await show('/sbin/dmsetup', ['message', pool, '0', 'create_thin 0']);
    await show('/sbin/dmsetup', ['create', 'agvm-smoke', '--table', `0 2097152 thin /dev/mapper/${pool} 0`]);
    await show('/sbin/mkfs.xfs', ['-q', '/dev/mapper/agvm-smoke']);
    await show('/bin/dd', [
      'if=/dev/zero',
      'of=/dev/mapper/agvm-smoke',
      'bs=1M',
      'count=32',
      'seek=64',
      'oflag=direct',
    ]);
    const thin = await show('/sbin/dmsetup', ['status', 'agvm-smoke']);
    expect(thin).toMatch(/^0 2097152 thin \d+ \d+/);
    const after = await poolStatus(pool);
    const usedData = (status: string): number => Number(status.split(' ')[5]?.split('/')[0]);
    expect(usedData(after)).toBeGreaterThan(usedData(before));
    await show('/sbin/dmsetup', ['remove', 'agvm-smoke']);
  });
});

describe.runIf(env.environment === 'docker-dm-lvm')('docker-dm-lvm', () => {
  it('runs Docker devicemapper on the LVM thin pool', async () => {
    const info = await dockerInfo();
    expect(info.Driver).toBe('devicemapper');
    expect(driverStatus(info, 'Pool Name')).toBe('docker-thinpool');
    const lvs = JSON.parse(
      await show('/sbin/lvs', [
        '--reportformat',
        'json',
        '--units',
        'b',
        '--nosuffix',
        '-o',
        'lv_name,vg_name,lv_size,data_percent,segtype',
        'docker',
      ]),
    ) as { report: { lv: { lv_name: string; segtype: string }[] }[] };
    expect(lvs.report[0]?.lv).toContainEqual(
      expect.objectContaining({ lv_name: 'thinpool', segtype: 'thin-pool' }),
    );
    const df = await runBusybox([], 'df -k / | tail -1');
    expect(df).toMatch(/^\/dev\/mapper\/docker-\S+\s+\d+/);
    await poolStatus('docker-thinpool');
  });
});

describe.runIf(env.environment === 'docker-dm-loop')('docker-dm-loop', () => {
  it("runs Docker devicemapper on Docker's own loop files", async () => {
    const info = await dockerInfo();
    expect(info.Driver).toBe('devicemapper');
    expect(driverStatus(info, 'Data loop file')).toBe('/var/lib/docker/devicemapper/devicemapper/data');
    await show('/sbin/losetup', ['-l']);
    const df = await runBusybox([], 'df -k / | tail -1');
    expect(df).toMatch(/^\/dev\/mapper\/docker-\S+\s+\d+/);
    await poolStatus(env.thinPool ?? '');
  });
});

describe.runIf(env.environment === 'overlay2-xfs')('overlay2-xfs', () => {
  it('runs Docker overlay2 on XFS with project quotas enforced per container', async () => {
    const info = await dockerInfo();
    expect(info.Driver).toBe('overlay2');
    expect(driverStatus(info, 'Backing Filesystem')).toBe('xfs');
    const mount = JSON.parse(
      await show('/bin/findmnt', ['-J', '-o', 'TARGET,FSTYPE,OPTIONS', env.xfs?.mountPoint ?? '']),
    ) as {
      filesystems: { fstype: string; options: string }[];
    };
    expect(mount.filesystems[0]?.fstype).toBe('xfs');
    expect(mount.filesystems[0]?.options).toContain('prjquota');
    // a 64 MiB limit: writing 100 MiB must fail with "No space left", and df shows the limit
    const out = await runBusybox(
      ['--storage-opt', 'size=64M'],
      'df -k / | tail -1; dd if=/dev/zero of=/fill bs=1M count=100 2>&1; echo "dd rc=$?"',
    );
    expect(out).toMatch(/No space left on device/);
    expect(out).toMatch(/dd rc=1/);
    await show('/usr/sbin/xfs_quota', ['-x', '-c', 'report -p -b -N -n', env.xfs?.mountPoint ?? '']);
  });
});

describe.runIf(env.environment === 'btrfs')('btrfs', () => {
  it('runs Docker on btrfs', async () => {
    const info = await dockerInfo();
    expect(info.Driver).toBe('btrfs');
    await runBusybox([], 'df -k / | tail -1');
  });
});
