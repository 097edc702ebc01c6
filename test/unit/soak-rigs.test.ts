/**
 * The soak's per-backend seam (soak/rigs/): the rigs are made by name with the storage dockerd
 * needs, the rigs' tool runner keeps the project's runner rules (LC_ALL=C, a fixed PATH, a timeout
 * that kills), the overlay-xfs rig reads limits as the kernel reports them (on fake tools that
 * print what the real ones print), and its leftover invariant reports a removed container's
 * project whose limit changed after the removal (and only that); the devicemapper rigs read thin
 * devices and the pool as dmsetup prints them, fill the pool with a thin device of their own and
 * count a removed container's device that stays active as a leak.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { soakRunName } from '../../soak/driver.js';
import { checkLimitsAfterRemoval } from '../../soak/invariants.js';
import { BACKENDS, createRig } from '../../soak/rigs/index.js';
import { DM_BASE_SIZE_BYTES, DevicemapperRig } from '../../soak/rigs/devicemapper.js';
import { OverlayXfsRig } from '../../soak/rigs/overlay-xfs.js';
import { RIG_TOOLS, runTool } from '../../soak/rigs/tool.js';

const MiB = 1024 ** 2;
const workDir = mkdtempSync(path.join(tmpdir(), 'soak-rigs-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

describe('soak rigs', () => {
  it('makes each backend by name, with its storage driver on a data root of its own', () => {
    const drivers = BACKENDS.map((backend) => {
      const rig = createRig(backend, { poolBytes: 4 * 1024 ** 3, workDir });
      expect(rig.backend).toBe(backend);
      expect(rig.dockerd.dataRoot.startsWith(`${workDir}/`)).toBe(true);
      return rig.dockerd.storageDriver;
    });
    expect(drivers).toEqual(['btrfs', 'overlay2', 'devicemapper', 'devicemapper']);
  });

  it('names runs as before on btrfs and by backend on the others', () => {
    expect(soakRunName({ backend: 'btrfs', seed: 6, agent: true })).toBe('6');
    expect(soakRunName({ backend: 'btrfs', seed: 6, agent: false })).toBe('6-control');
    expect(soakRunName({ backend: 'overlay-xfs', seed: 6, agent: false })).toBe('overlay-xfs-6-control');
  });
});

describe('the rigs tool runner', () => {
  it('runs with LC_ALL=C and a fixed PATH, nothing else from the environment', async () => {
    const env = (await runTool('/usr/bin/env', [], 5_000)).trim().split('\n').sort();
    expect(env).toEqual(['LANG=C', 'LC_ALL=C', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin']);
  });

  it('kills a tool at its timeout and names the command', async () => {
    await expect(runTool('/usr/bin/sleep', ['5'], 100)).rejects.toThrow(
      /\/usr\/bin\/sleep 5 killed after 100 ms/,
    );
  });

  it('rejects on a non-zero exit with the tool stderr', async () => {
    await expect(runTool('/usr/bin/ls', ['/no/such/dir'], 5_000)).rejects.toThrow(
      /No such file or directory/,
    );
  });
});

describe('leak invariant: limits of removed XFS projects', () => {
  const removed = [
    { containerId: 'a'.repeat(64), projectId: 3, limitAfterRemovalBytes: 96 * MiB },
    { containerId: 'b'.repeat(64), projectId: 4, limitAfterRemovalBytes: null },
  ];

  it('a project that kept its limit (or stayed without one) is no leak', () => {
    expect(checkLimitsAfterRemoval(1, removed, new Map([[3, 96 * MiB]]))).toEqual([]);
  });

  it('a limit raised or set after the removal is a leak: the agent grew a container that was gone', () => {
    const found = checkLimitsAfterRemoval(
      1,
      removed,
      new Map([
        [3, 144 * MiB],
        [4, 32 * MiB],
      ]),
    );
    expect(found.map((violation) => violation.invariant)).toEqual(['leak', 'leak']);
    expect(found[0]?.detail).toContain(
      `XFS project 3 of removed container aaaaaaaaaaaa: hard limit ${144 * MiB} now`,
    );
    expect(found[1]?.detail).toContain('none after its removal');
  });
});

describe('overlay-xfs rig on fake tools', () => {
  const idA = 'a'.repeat(64);
  const idB = 'b'.repeat(64);
  const mountA = 'c'.repeat(64);
  const mountB = 'd'.repeat(64);

  function setUp() {
    const dir = mkdtempSync(path.join(workDir, 'xfs-'));
    const calls: string[][] = [];
    /** project id -> hard limit in KiB, as xfs_quota would report it */
    const hardKiB = new Map<number, number>([
      [2, 102400], // Docker's own test project on the base directory: no container's
      [3, 64 * 1024],
    ]);
    const run = async (binary: string, args: readonly string[]) => {
      calls.push([binary, ...args]);
      if (binary === RIG_TOOLS.xfsIo) {
        const layerDir = args.at(-1) ?? '';
        return `fd.path = "${layerDir}"\nfd.flags = non-sync,non-direct,read-only\nfsxattr.projid = ${layerDir.endsWith(mountA) ? 3 : 0}\n`;
      }
      if (binary === RIG_TOOLS.xfsQuota) {
        return [
          `#0 2232 0 0 00 [--------]`,
          ...[...hardKiB].map(([id, kib]) => `#${id} 40968 0 ${kib} 00 [--------]`),
        ]
          .map((line) => `${line}\n`)
          .join('');
      }
      throw new Error(`unexpected tool ${binary}`);
    };
    const rig = new OverlayXfsRig({ poolBytes: 4 * 1024 ** 3, workDir: dir }, { run, removalGraceMs: 10 });
    for (const [id, mountId] of [
      [idA, mountA],
      [idB, mountB],
    ]) {
      const mounts = path.join(rig.dockerd.dataRoot, 'image', 'overlay2', 'layerdb', 'mounts', id ?? '');
      mkdirSync(mounts, { recursive: true });
      writeFileSync(path.join(mounts, 'mount-id'), `${mountId}`);
    }
    return { rig, calls, hardKiB };
  }

  it("reads a limited container's hard limit from the quota report, by the project of its layer", async () => {
    const { rig, calls, hardKiB } = setUp();
    const a = await rig.register(idA, true);
    const b = await rig.register(idB, false);
    expect(a.removedPrefix).toBe(`${rig.dockerd.dataRoot}/overlay2/${mountA}/`);
    expect(await rig.readLimits([a, b])).toEqual(new Map([[idA, 64 * MiB]]));
    hardKiB.set(3, 96 * 1024);
    expect(await rig.readLimits([a, b])).toEqual(new Map([[idA, 96 * MiB]]));
    // the unlimited container costs no xfs_io; the report is the agent's own command
    expect(calls.filter(([binary]) => binary === RIG_TOOLS.xfsIo)).toHaveLength(1);
    expect(calls.find(([binary]) => binary === RIG_TOOLS.xfsQuota)).toEqual([
      RIG_TOOLS.xfsQuota,
      '-x',
      '-c',
      'report -p -b -N -n',
      rig.dockerd.dataRoot,
    ]);
  });

  it('refuses a limited container whose layer has no project (nothing to read)', async () => {
    const { rig } = setUp();
    await expect(rig.register(idB, true)).rejects.toThrow(/has no XFS project although Docker limits it/);
  });

  it("a removed container's project that keeps its limit is no leftover; one raised later is a leak", async () => {
    const kept = setUp();
    kept.rig.forget(await kept.rig.register(idA, true));
    expect(await kept.rig.leftovers(1)).toEqual([]);
    expect(kept.rig.figures()).toEqual({ removedProjects: 1, removedProjectsDockerLeftLimited: 1 });

    const grown = setUp();
    grown.rig.forget(await grown.rig.register(idA, true));
    await new Promise((resolve) => setTimeout(resolve, 100)); // past the grace: the limit after the removal is read
    grown.hardKiB.set(3, 144 * 1024);
    const found = await grown.rig.leftovers(1);
    expect(found.map((violation) => violation.invariant)).toEqual(['leak']);
    expect(found[0]?.detail).toContain(`hard limit ${144 * MiB} now, ${64 * MiB} after its removal`);
  });
});

describe('devicemapper rigs on fake tools', () => {
  const idA = 'a'.repeat(64);
  const mountA = 'c'.repeat(64);
  const POOL = 'docker-254:1-1234-pool';

  function setUp(mode: 'loop-lvm' | 'direct-lvm') {
    const dir = mkdtempSync(path.join(workDir, 'dm-'));
    const calls: string[] = [];
    /** active thin devices: name -> sectors */
    const thins = new Map<string, number>([
      [`docker-254:1-1234-${mountA}`, 131072],
      [`docker-254:1-1234-${mountA}-init`, 65536],
    ]);
    const run = async (binary: string, args: readonly string[]) => {
      calls.push([path.basename(binary), ...args].join(' '));
      if (binary !== RIG_TOOLS.dmsetup) return '';
      const [verb, ...rest] = args;
      if (verb === 'ls' && rest.join(' ') === '--target thin-pool') return `${POOL}\t(253:0)\n`;
      if (verb === 'table' && rest.join(' ') === '--target thin')
        return (
          [...thins].map(([name, sectors]) => `${name}: 0 ${sectors} thin 253:0 5\n`).join('') ||
          'No devices found\n'
        );
      if (verb === 'table') return '0 8388608 thin-pool 7:1 7:0 128 32768 1 skip_block_zeroing\n';
      if (verb === 'status')
        return '0 8388608 thin-pool 1 198/16384 1000/65536 - rw discard_passdown queue_if_no_space - 1024\n';
      return '';
    };
    const rig = new DevicemapperRig(
      mode,
      { poolBytes: 4 * 1024 ** 3, workDir: dir },
      { run, removalSettleMs: 0 },
    );
    const mounts = path.join(rig.dockerd.dataRoot, 'image', 'devicemapper', 'layerdb', 'mounts', idA);
    mkdirSync(mounts, { recursive: true });
    writeFileSync(path.join(mounts, 'mount-id'), mountA);
    return { rig, calls, thins };
  }

  it('runs dockerd with a 32M ext4 base device; loop-lvm sizes the loop file, direct-lvm names its LVM pool', () => {
    const loop = setUp('loop-lvm').rig;
    expect(loop.backend).toBe('devicemapper-loop');
    expect(loop.defaultLimitBytes).toBe(DM_BASE_SIZE_BYTES);
    expect(loop.dockerd.extraArgs).toEqual([
      '--storage-opt=dm.basesize=32M',
      '--storage-opt=dm.fs=ext4',
      '--storage-opt=dm.loopdatasize=4096M',
      '--storage-opt=dm.loopmetadatasize=256M',
    ]);
    expect(loop.agentPoolLines()).toEqual(['maxOvercommit: 20']);
    const lvm = setUp('direct-lvm').rig;
    expect(lvm.backend).toBe('devicemapper');
    expect(lvm.dockerd.extraArgs).toContain(
      `--storage-opt=dm.thinpooldev=/dev/mapper/agsoak${process.pid}-thinpool`,
    );
  });

  it("reads a container's limit from its active thin device (not the init layer) and the pool from its status", async () => {
    const { rig, thins } = setUp('loop-lvm');
    const a = await rig.register(idA);
    expect(await rig.readLimits([a])).toEqual(new Map([[idA, 64 * MiB]]));
    thins.clear(); // stopped: the device is inactive, no sample
    expect(await rig.readLimits([a])).toEqual(new Map());
    // 64 KiB blocks (128 sectors): 65536 in all, 1000 used
    expect(await rig.poolUsage()).toEqual({
      totalBytes: 65536 * 64 * 1024,
      freeBytes: (65536 - 1000) * 64 * 1024,
    });
  });

  it('fills the pool with a thin device of its own, written with zeros, and drains it by deleting it', async () => {
    const { rig, calls } = setUp('loop-lvm');
    await rig.fillPool(2048 * MiB);
    await rig.drainPool();
    const fill = `agsoak-fill-${process.pid}-0`;
    expect(
      calls.filter((call) => !call.startsWith('dmsetup ls') && !/^dmsetup (table|status)/.test(call)),
    ).toEqual([
      `dmsetup message ${POOL} 0 create_thin 16777000`,
      `dmsetup create ${fill} --table 0 4194304 thin /dev/mapper/${POOL} 16777000`,
      `dd if=/dev/zero of=/dev/mapper/${fill} bs=1M count=2048 oflag=direct status=none`,
      `dmsetup remove ${fill}`,
      `dmsetup message ${POOL} 0 delete 16777000`,
    ]);
  });

  it("a removed container's device still active is a leak; one that went is not", async () => {
    const { rig, thins } = setUp('direct-lvm');
    rig.forget(await rig.register(idA));
    const found = await rig.leftovers(1);
    expect(found.map((violation) => violation.detail)).toEqual([
      `thin device docker-254:1-1234-${mountA} of a removed container is still active`,
    ]);
    thins.clear();
    expect(await rig.leftovers(1)).toEqual([]);
  });
});
