/**
 * Growing the thin pool (direct-lvm with lvextend, loop-lvm online with truncate + losetup -c +
 * pool reload) and the doctor checks, against the simulated kernel of dm-sim.ts.
 * LVM JSON below follows lvm2's `--reportformat json` layout; it is not yet a recorded capture
 * (test/vm/record/devicemapper-modes.sh records the real one).
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DockerInfo } from '../../src/docker/model.js';
import { GIB, LVM_DOCKER_INFO, POOL, host, reply, type Host } from './dm-sim.js';

const LOOP_DATA_FILE = '/var/lib/docker/devicemapper/devicemapper/data';
const LOOP_DOCKER_INFO: DockerInfo = {
  ...LVM_DOCKER_INFO,
  liveRestoreEnabled: false,
  driverStatus: [
    ['Pool Name', POOL],
    ['Udev Sync Supported', 'true'],
    ['Data file', '/dev/loop0'],
    ['Metadata file', '/dev/loop1'],
    ['Data loop file', LOOP_DATA_FILE],
    ['Metadata loop file', '/var/lib/docker/devicemapper/devicemapper/metadata'],
    ['Deferred Removal Enabled', 'false'],
  ],
};
const POOL_BLOCK_BYTES = 1024 * 512;

function loopHost(): {
  h: Host;
  sysBlockDir: string;
  setLoopBytes: (bytes: number) => void;
  file: { sizeBytes: number };
} {
  const h = host(LOOP_DOCKER_INFO);
  const pool = h.sim.device(POOL);
  pool.uuid = '';
  pool.live = `0 ${8184 * 1024} thin-pool 7:1 7:0 1024 0 1 skip_block_zeroing`;
  const sysBlockDir = mkdtempSync(path.join(os.tmpdir(), 'autogrow-sys-'));
  mkdirSync(path.join(sysBlockDir, 'loop0', 'loop'), { recursive: true });
  writeFileSync(path.join(sysBlockDir, 'loop0', 'dev'), '7:0\n');
  writeFileSync(path.join(sysBlockDir, 'loop0', 'loop', 'backing_file'), `${LOOP_DATA_FILE}\n`);
  const setLoopBytes = (bytes: number) =>
    writeFileSync(path.join(sysBlockDir, 'loop0', 'size'), `${bytes / 512}\n`);
  setLoopBytes(8184 * POOL_BLOCK_BYTES);
  return { h, sysBlockDir, setLoopBytes, file: { sizeBytes: 8184 * POOL_BLOCK_BYTES } };
}

describe('loop-lvm pool grow, online', () => {
  const newTable = `0 ${16384 * 1024} thin-pool 7:1 7:0 1024 0 1 skip_block_zeroing`;

  it('extends the sparse file, refreshes the loop device, reloads the pool with only the length changed, reads back', async () => {
    const { h, sysBlockDir, setLoopBytes, file } = loopHost();
    const runner = h.sim.runner();
    runner
      .expect(
        'truncate',
        ['-s', `>${8 * GIB}`, LOOP_DATA_FILE],
        reply(() => (file.sizeBytes = 8 * GIB)),
      )
      .expect(
        'losetup',
        ['-c', '/dev/loop0'],
        reply(() => setLoopBytes(file.sizeBytes)),
      )
      .expect(
        'dmsetup',
        ['load', POOL, '--table', newTable],
        reply(() => h.sim.load(POOL, newTable)),
      )
      .expect(
        'dmsetup',
        ['resume', POOL],
        reply(() => {
          h.sim.resume(POOL);
          h.sim.poolDataTotalBlocks = 16384;
        }),
      );
    const backend = h.backend(runner, { sysBlockDir, fileSizeBytes: () => file.sizeBytes });
    const result = await backend.growPool(8 * GIB, false);
    runner.assertDone();
    expect(result).toMatchObject({ fromBytes: 8184 * POOL_BLOCK_BYTES, toBytes: 8 * GIB });
    expect(runner.calls.find((call) => call.args[0] === 'resume')?.killOnTimeout).toBe(false);
    expect(h.sim.device(POOL).inactive).toBeNull();
  });

  it('--dry-run lists the exact commands and runs none of them', async () => {
    const { h, sysBlockDir, file } = loopHost();
    const runner = h.sim.runner();
    const result = await h
      .backend(runner, { sysBlockDir, fileSizeBytes: () => file.sizeBytes })
      .growPool(8 * GIB, true);
    expect(result.steps.map((step) => step.argv)).toEqual([
      ['truncate', '-s', `>${8 * GIB}`, LOOP_DATA_FILE],
      ['losetup', '-c', '/dev/loop0'],
      ['dmsetup', 'load', POOL, '--table', newTable],
      ['dmsetup', 'resume', POOL],
    ]);
  });

  it('refuses a pool flagged needs_check (the kernel would report success and not grow)', async () => {
    const { h, sysBlockDir, file } = loopHost();
    h.sim.poolNeedsCheck = true;
    const runner = h.sim.runner();
    await expect(
      h.backend(runner, { sysBlockDir, fileSizeBytes: () => file.sizeBytes }).growPool(8 * GIB, false),
    ).rejects.toThrow(/needs_check/);
  });

  it('detects a reload the kernel accepted without growing, and counts it', async () => {
    const { h, sysBlockDir, setLoopBytes, file } = loopHost();
    const runner = h.sim.runner();
    runner
      .expect(
        'truncate',
        ['-s', `>${8 * GIB}`, LOOP_DATA_FILE],
        reply(() => (file.sizeBytes = 8 * GIB)),
      )
      .expect(
        'losetup',
        ['-c', '/dev/loop0'],
        reply(() => setLoopBytes(file.sizeBytes)),
      )
      .expect(
        'dmsetup',
        ['load', POOL, '--table', newTable],
        reply(() => h.sim.load(POOL, newTable)),
      )
      // "unable to grow the data device until repaired": resume returns 0, the pool keeps its size.
      .expect(
        'dmsetup',
        ['resume', POOL],
        reply(() => h.sim.resume(POOL)),
      );
    const backend = h.backend(runner, { sysBlockDir, fileSizeBytes: () => file.sizeBytes });
    await expect(backend.growPool(8 * GIB, false)).rejects.toThrow(/still/);
    expect(backend.failureCounts().get('verify pool')).toBe(1);
  });

  it('a rejected pool reload that leaves the pool suspended gets the saved table back and resumed', async () => {
    const { h, sysBlockDir, setLoopBytes, file } = loopHost();
    const oldTable = h.sim.device(POOL).live;
    const runner = h.sim.runner();
    runner
      .expect(
        'truncate',
        ['-s', `>${8 * GIB}`, LOOP_DATA_FILE],
        reply(() => (file.sizeBytes = 8 * GIB)),
      )
      .expect(
        'losetup',
        ['-c', '/dev/loop0'],
        reply(() => setLoopBytes(file.sizeBytes)),
      )
      .expect(
        'dmsetup',
        ['load', POOL, '--table', newTable],
        reply(() => h.sim.load(POOL, newTable)),
      )
      .expect(
        'dmsetup',
        ['resume', POOL],
        reply(
          () => {
            const pool = h.sim.device(POOL);
            pool.live = newTable;
            pool.inactive = null;
            pool.suspended = true;
          },
          'fail',
          'resume ioctl on docker-thinpool failed: Invalid argument',
        ),
      )
      .expect(
        'dmsetup',
        ['load', POOL, '--table', oldTable],
        reply(() => h.sim.load(POOL, oldTable)),
      )
      .expect(
        'dmsetup',
        ['resume', POOL],
        reply(() => h.sim.resume(POOL)),
      );
    await expect(
      h.backend(runner, { sysBlockDir, fileSizeBytes: () => file.sizeBytes }).growPool(8 * GIB, false),
    ).rejects.toThrow(/Invalid argument/);
    runner.assertDone();
    expect(h.sim.device(POOL)).toMatchObject({ live: oldTable, suspended: false, inactive: null });
  });

  it('refuses a loop device whose backing file is not the one docker info names', async () => {
    const { h, sysBlockDir, file } = loopHost();
    writeFileSync(path.join(sysBlockDir, 'loop0', 'loop', 'backing_file'), '/tmp/other\n');
    await expect(
      h
        .backend(h.sim.runner(), { sysBlockDir, fileSizeBytes: () => file.sizeBytes })
        .growPool(8 * GIB, false),
    ).rejects.toThrow(/backed by/);
  });
});

describe('direct-lvm pool grow', () => {
  const lvs = JSON.stringify({
    report: [
      {
        lv: [
          {
            vg_name: 'docker',
            lv_name: 'thinpool',
            lv_size: String(8184 * POOL_BLOCK_BYTES),
            lv_metadata_size: '83886080',
            lv_attr: 'twi-aot---',
          },
        ],
      },
    ],
  });
  const vgs = (freeBytes: number) =>
    JSON.stringify({
      report: [
        { vg: [{ vg_name: 'docker', vg_free: String(freeBytes), vg_extent_size: String(4 * 1024 * 1024) }] },
      ],
    });
  const LVS_ARGS = [
    '--reportformat',
    'json',
    '--units',
    'b',
    '--nosuffix',
    '-o',
    'vg_name,lv_name,lv_size,lv_metadata_size,lv_attr',
  ];
  const VGS_ARGS = [
    '--reportformat',
    'json',
    '--units',
    'b',
    '--nosuffix',
    '-o',
    'vg_name,vg_free,vg_extent_size',
    'docker',
  ];

  it('uses lvextend (never a raw reload of an LVM-owned pool) and reads the pool back', async () => {
    const h = host();
    const runner = h.sim.runner();
    runner
      .expect('lvs', LVS_ARGS, { stdout: lvs })
      .expect('vgs', VGS_ARGS, { stdout: vgs(8 * GIB) })
      .expect(
        'lvextend',
        ['-L', `${6 * GIB}b`, 'docker/thinpool'],
        reply(() => (h.sim.poolDataTotalBlocks = 12288)),
      );
    const result = await h.backend(runner).growPool(6 * GIB, false);
    runner.assertDone();
    expect(result.toBytes).toBe(12288 * POOL_BLOCK_BYTES);
    expect(runner.calls.some((call) => call.tool === 'dmsetup' && call.args[0] === 'load')).toBe(false);
  });

  it('stays within the volume group free space', async () => {
    const h = host();
    const runner = h.sim.runner();
    runner.expect('lvs', LVS_ARGS, { stdout: lvs }).expect('vgs', VGS_ARGS, { stdout: vgs(GIB) });
    await expect(h.backend(runner).growPool(8 * GIB, false)).rejects.toThrow(/bytes free/);
  });

  it('grows metadata with --poolmetadatasize', async () => {
    const h = host();
    const runner = h.sim.runner();
    runner
      .expect('lvs', LVS_ARGS, { stdout: lvs })
      .expect('vgs', VGS_ARGS, { stdout: vgs(8 * GIB) })
      .expect(
        'lvextend',
        ['--poolmetadatasize', `${160 * 1024 * 1024}b`, 'docker/thinpool'],
        reply(() => undefined),
      );
    // The simulated kernel keeps the metadata size: the read-back catches it.
    await expect(h.backend(runner).growPoolMetadata(160 * 1024 * 1024, false)).rejects.toThrow(
      /metadata is still/,
    );
    runner.assertDone();
  });
});

describe('doctor', () => {
  it('reports udev sync, deferred removal, live-restore, pool health, autoextend and binaries', async () => {
    const h = host();
    const runner = h.sim.runner();
    runner.expect('lvm', ['config', '--typeconfig', 'full', 'activation/thin_pool_autoextend_threshold'], {
      stdout: 'thin_pool_autoextend_threshold=100\n',
    });
    const checks = await h.backend(runner).doctor();
    const byName = new Map(checks.map((check) => [check.name, check]));
    expect(byName.get('udev sync supported')?.ok).toBe(true);
    expect(byName.get('deferred removal enabled')?.ok).toBe(true);
    expect(byName.get('live-restore')?.ok).toBe(true);
    expect(byName.get('pool healthy')?.ok).toBe(true);
    expect(byName.get('LVM thin pool autoextend')?.detail).toMatch(/off/);
    expect(byName.get('lvextend present')?.ok).toBe(true);
  });

  it('flags a needs_check pool, missing deferred removal and missing binaries', async () => {
    const { h, sysBlockDir } = loopHost();
    h.sim.poolNeedsCheck = true;
    const checks = await h
      .backend(h.sim.runner(), { sysBlockDir, binaryPresent: (tool) => tool !== 'losetup' })
      .doctor();
    const failing = checks.filter((check) => !check.ok).map((check) => check.name);
    expect(failing).toEqual(['deferred removal enabled', 'live-restore', 'pool healthy', 'losetup present']);
  });
});
