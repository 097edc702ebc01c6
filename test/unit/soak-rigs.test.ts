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
import { DOCKERD_SHUTDOWN_TIMEOUT_S, DOCKERD_STOP_GRACE_MS, soakRunName } from '../../soak/driver.js';
import { checkLimitsAfterRemoval } from '../../soak/invariants.js';
import { BACKENDS, createRig } from '../../soak/rigs/index.js';
import { DM_BASE_SIZE_BYTES, DevicemapperRig } from '../../soak/rigs/devicemapper.js';
import { OverlayXfsRig } from '../../soak/rigs/overlay-xfs.js';
import { checkGrowIntents } from '../../soak/rigs/devicemapper.js';
import { RIG_TOOLS, mountPointsAtOrBelow, runTool } from '../../soak/rigs/tool.js';
import { tryAcquireProcessLock } from '../../src/util/process-lock.js';

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

  // Found in the guest (overlay-xfs, seed 2057, 20 minutes): dockerd's default 15 s shutdown
  // timeout forced its shutdown with containers still stopping, and their tasks stayed in the
  // separate containerd ("task ...: already exists" at their next start).
  it('restarts dockerd cleanly: its shutdown timeout is long, and the soak waits longer before a kill', () => {
    expect(DOCKERD_SHUTDOWN_TIMEOUT_S).toBeGreaterThanOrEqual(120);
    expect(DOCKERD_STOP_GRACE_MS).toBeGreaterThan(DOCKERD_SHUTDOWN_TIMEOUT_S * 1000 + 30_000);
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

  function setUp(mode: 'loop-lvm' | 'direct-lvm', mountinfo: (dir: string) => string = () => '') {
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
      { run, removalSettleMs: 0, readMountinfo: () => mountinfo(dir) },
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

  // What dmsetup printed in the guest (direct-lvm, seed 38, --pool-gib 2, 18:35 UTC, during a
  // pool fill): the LVM pool's table and status (with their trailing blank) and the thin devices.
  it('reads the limits and the pool from the dmsetup output of a real direct-lvm pool', async () => {
    const mountB = '5ad61eb40a569ae757c0d0a71a8b38885cc8424d36c372aa0f5e406dbaef6de4';
    const mountC = 'bbbf444827ad4dfc70bff22e5e6017778387e0d420175785f80e1a812384654e';
    const dir = mkdtempSync(path.join(workDir, 'dm-real-'));
    const pool = `agsoak${process.pid}-thinpool`;
    const run = async (binary: string, args: readonly string[]) => {
      const call = [path.basename(binary), ...args].join(' ');
      if (call === 'dmsetup table --target thin')
        return [
          `agsoak-fill-199-0: 0 2908160 thin 253:2 16777000`,
          `docker-254:16-393235-${mountB}: 0 524288 thin 253:2 14`,
          `docker-254:16-393235-${mountC}: 0 65536 thin 253:2 4`,
          '',
        ].join('\n');
      if (call === `dmsetup table ${pool}`)
        return '0 4194304 thin-pool 253:0 253:1 1024 0 1 skip_block_zeroing \n';
      if (call === `dmsetup status ${pool}`)
        return '0 4194304 thin-pool 24 1683/16384 2523/4096 - rw discard_passdown queue_if_no_space - 1024 \n';
      throw new Error(`unexpected ${call}`);
    };
    const rig = new DevicemapperRig('direct-lvm', { poolBytes: 2 * 1024 ** 3, workDir: dir }, { run });
    const handles = [];
    for (const [id, mountId] of [
      ['1'.repeat(64), mountB],
      ['2'.repeat(64), mountC],
      ['3'.repeat(64), 'd'.repeat(64)],
    ] as const) {
      const mounts = path.join(rig.dockerd.dataRoot, 'image', 'devicemapper', 'layerdb', 'mounts', id);
      mkdirSync(mounts, { recursive: true });
      writeFileSync(path.join(mounts, 'mount-id'), `${mountId}\n`);
      handles.push(await rig.register(id));
    }
    // a grown 256M container, a 32M base-size one, a stopped one (inactive: no sample)
    expect(await rig.readLimits(handles)).toEqual(
      new Map([
        ['1'.repeat(64), 256 * MiB],
        ['2'.repeat(64), 32 * MiB],
      ]),
    );
    // 512 KiB blocks (1024 sectors), 4096 of them, 2523 used
    expect(await rig.poolUsage()).toEqual({
      totalBytes: 2 * 1024 ** 3,
      freeBytes: (4096 - 2523) * 512 * 1024,
    });
  });

  // Found in the guest (seed 6, --ops 40, loop-lvm): the soak could not remove its pool (a device
  // the agent's kernel hold kept open), so the control in the same boot saw two Docker pools, read
  // none, excused all 7 of its write errors as "pool at its reserve" and did not bite. Names, the
  // thin line and the losetup/dmsetup info columns are the guest's.
  it("finds its own loop-lvm pool beside a stale one, and detaches the agent's holds before removing it", async () => {
    const mountB = '6cdee5f655ca8b6c8e0375a096596db5cf44a12e4337233050a538fc17cb7768';
    const mine = `docker-254:16-393235-${mountA}`;
    const dir = mkdtempSync(path.join(workDir, 'dm-two-'));
    const calls: string[] = [];
    const run = async (binary: string, args: readonly string[]) => {
      const call = [path.basename(binary), ...args].join(' ');
      calls.push(call);
      if (call === 'dmsetup ls --target thin-pool')
        return 'docker-254:16-393234-pool\t(253:0)\ndocker-254:16-393235-pool\t(253:5)\n';
      if (call === 'dmsetup table --target thin')
        return [
          `docker-254:16-393234-${mountB}: 0 655360 thin 253:0 16`,
          // a device Docker is making: no table yet (the line the agent's parser refused)
          `docker-254:16-393235-5b769cf2b90c320f2bbb3f0627c050f55e88d33c43829be2ea0c5f603b738677: `,
          `${mine}: 0 65536 thin 253:5 4`,
          '',
        ].join('\n');
      if (call === 'dmsetup table docker-254:16-393235-pool')
        return '0 8388608 thin-pool 7:3 7:2 128 32768 1 skip_block_zeroing \n';
      if (call === 'dmsetup status docker-254:16-393235-pool')
        return '0 8388608 thin-pool 65 4138/65536 3442/65536 - rw discard_passdown queue_if_no_space - 1024 \n';
      if (call.startsWith('dmsetup info -c'))
        return [
          `docker-254:16-393234-${mountB};253;6;L--w;1;`,
          `${mine};253;8;L--w;1;`,
          'docker-254:16-393235-pool;253;5;L--w;2;',
          '',
        ].join('\n');
      if (call === 'losetup --list --noheadings --output NAME,BACK-FILE')
        return [
          '/dev/loop1 /dev/dm-6',
          '/dev/loop4 /dev/dm-8',
          `/dev/loop2 ${dir}/docker/devicemapper/devicemapper/data`,
          '',
        ].join('\n');
      if (call === 'dmsetup ls') return `${mine}\t(253:8)\ndocker-254:16-393235-pool\t(253:5)\n`;
      return '';
    };
    const rig = new DevicemapperRig(
      'loop-lvm',
      { poolBytes: 4 * 1024 ** 3, workDir: dir },
      { run, readMountinfo: () => '' },
    );
    const mounts = path.join(rig.dockerd.dataRoot, 'image', 'devicemapper', 'layerdb', 'mounts', idA);
    mkdirSync(mounts, { recursive: true });
    writeFileSync(path.join(mounts, 'mount-id'), mountA);
    // before any container of its own, two pools are one too many
    await expect(rig.poolUsage()).rejects.toThrow(/expected one Docker loop-lvm thin pool/);
    const a = await rig.register(idA);
    expect(await rig.readLimits([a])).toEqual(new Map([[idA, 32 * MiB]]));
    expect(await rig.poolUsage()).toEqual({
      totalBytes: 65536 * 64 * 1024,
      freeBytes: (65536 - 3442) * 64 * 1024,
    });
    calls.length = 0;
    await rig.destroy();
    const removals = calls.filter(
      (call) => call.startsWith('losetup -d') || call.startsWith('dmsetup remove'),
    );
    // the hold over this rig's device goes first; the stale run's hold (dm-6) is not this rig's
    expect(removals).toEqual([
      'losetup -d /dev/loop4',
      `dmsetup remove ${mine}`,
      'dmsetup remove docker-254:16-393235-pool',
    ]);
  });

  // Found in the guest (seed 6, --ops 40, direct-lvm): after dockerd stopped, its data root stayed
  // bind-mounted onto itself, rmdir of it failed with EBUSY and the soak died before writing its
  // figures. The mountinfo lines are the guest's (seed 38, 18:32 UTC), rebased onto the test's dir.
  it('unmounts what dockerd left at and below its data root, deepest first, before removing the pool', async () => {
    const mountB = 'bbbf444827ad4dfc70bff22e5e6017778387e0d420175785f80e1a812384654e';
    const { rig, calls } = setUp('direct-lvm', (dir) => {
      const root = path.join(dir, 'docker');
      return [
        `37 29 254:16 / ${dir} rw,relatime shared:30 - ext4 /dev/vdb rw`,
        `38 37 254:16 /agsoak-1Fu9dv/fs/docker ${root} rw,relatime shared:1 - ext4 /dev/vdb rw`,
        `39 38 253:3 / ${root}/devicemapper/mnt/${mountB} rw,relatime shared:2 - ext4 /dev/mapper/docker-254:16-393235-${mountB} rw,stripe=512`,
        `81 29 0:5 / ${root}-other rw - tmpfs tmpfs rw`,
        '',
      ].join('\n');
    });
    await rig.destroy();
    const root = rig.dockerd.dataRoot;
    expect(calls.filter((call) => call.startsWith('umount'))).toEqual([
      `umount ${root}/devicemapper/mnt/${mountB}`,
      `umount ${root}`,
    ]);
    // before the volume group goes
    expect(calls.findIndex((call) => call.startsWith('lvm vgremove'))).toBeGreaterThan(
      calls.findIndex((call) => call === `umount ${root}`),
    );
    expect(
      mountPointsAtOrBelow('/a/b/', '1 0 0:1 / /a/bc rw - x x rw\n2 1 0:2 / /a/b/c\\040d rw - x x rw\n'),
    ).toEqual(['/a/b/c d']);
  });

  // Found in the guest (seed 6, --ops 40, direct-lvm): the agent's devicemapper backend keeps its
  // grow journal, its record of grown devices and per-device locks in the state directory across
  // restarts (src/storage/devicemapper/journal.ts, lock.ts); the soak called all three a leak.
  it("keeps the agent's devicemapper state, but not a held device lock or a grow left unfinished", () => {
    const { rig } = setUp('direct-lvm');
    const stateDir = mkdtempSync(path.join(workDir, 'state-'));
    writeFileSync(path.join(stateDir, 'devicemapper-grown.json'), '{"devices":[]}\n');
    const done = [
      {
        step: 'intent',
        atMs: 1,
        intent: { kind: 'device', intentId: 'i1', deviceName: `docker-254:16-131091-${mountA}` },
      },
      { step: 'loaded', atMs: 2, intentId: 'i1' },
      { step: 'done', atMs: 3, intentId: 'i1' },
    ];
    writeFileSync(
      path.join(stateDir, 'devicemapper-intents.jsonl'),
      done.map((record) => `${JSON.stringify(record)}\n`).join(''),
    );
    // the agent's own lock code makes the device locks: one taken and released, one still held
    const released = tryAcquireProcessLock(path.join(stateDir, 'locks', `${mountA}.lock.d`), {
      role: mountA,
    });
    if (!('held' in released)) throw new Error('lock busy');
    released.held.release();
    expect(rig.checkAgentState(stateDir, 1)).toEqual({
      allowed: [/^devicemapper-intents\.jsonl$/, /^devicemapper-grown\.json$/, /^locks$/],
      violations: [],
    });
    const held = tryAcquireProcessLock(path.join(stateDir, 'locks', `${idA}.lock.d`), { role: idA });
    if (!('held' in held)) throw new Error('lock busy');
    expect(rig.checkAgentState(stateDir, 1).violations.map((violation) => violation.detail)).toEqual([
      expect.stringMatching(new RegExp(`^locks/${idA}\\.lock\\.d: generation \\d+ is still held$`)),
    ]);
    held.held.release();
    expect(rig.checkAgentState(stateDir, 1).violations).toEqual([]);

    // a grow the agent left between its table load and its end: unfinished; a cut line: unreadable
    const open = [
      { step: 'intent', atMs: 4, intent: { kind: 'device', intentId: 'i2', deviceName: 'dev-2' } },
      { step: 'loaded', atMs: 5, intentId: 'i2' },
    ];
    const text = [...done, ...open].map((record) => `${JSON.stringify(record)}\n`).join('') + '{"step":\n';
    expect(checkGrowIntents(5, text).map((violation) => violation.detail)).toEqual([
      'devicemapper-intents.jsonl: not a JSON record: {"step":',
      'devicemapper grow i2 of dev-2 unfinished after the clean stop (steps: loaded)',
    ]);
  });
});
