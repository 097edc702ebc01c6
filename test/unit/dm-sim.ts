/**
 * A device-mapper kernel in miniature for the devicemapper backend's fault-injection tests: it
 * holds each device's live and inactive tables, suspended flag and open count, and answers
 * `dmsetup table`, `dmsetup status --noflush` and `dmsetup info -c` in the exact formats of the
 * recorded outputs (test/support/dm-lines.ts). Mutating commands are scripted per test on a strict
 * ScriptedRunner with `effect` hooks that change this state, so a test can fail or "kill" any step;
 * the step builders below (`loadStep`, `resumeStep`, ...) give each command its argv and its kernel
 * effect once, for dm-backend.test.ts and dm-pool.test.ts.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ScriptedRunner, type ScriptedReply } from '../support/scripted-runner.js';
import type { ContainerInfo, DockerInfo } from '../../src/docker/model.js';
import type { DockerApi } from '../../src/docker/inventory-port.js';
import { silentLogger } from '../../src/log/logger.js';
import {
  createDevicemapperBackend,
  lvsPoolArgs,
  vgsFreeArgs,
  type DevicemapperBackend,
  type DevicemapperOptions,
  type FsStats,
} from '../../src/storage/devicemapper/index.js';
import {
  HOLD_OFFSET_BYTES,
  HOLD_SIZE_BYTES,
  holdLosetupArgs,
} from '../../src/storage/devicemapper/persistence.js';
import {
  REFERENCE_LVM_DRIVER_STATUS,
  REFERENCE_LVM_POOL,
  REFERENCE_THIN_MAPPED_SECTORS,
  dmInfoLine,
  dmTableLine,
  thinPoolStatusLine,
  thinStatusLine,
} from '../support/dm-lines.js';

export const HASH = '83cf663f6a72c24c6e6a005fd35d6a5448236a2a76ca69d512cbe51fc53591b5';
export const DEVICE = `docker-254:0-15931-${HASH}`;
export const CONTAINER_ID = '3e9bdc8c32d322f6af58a403505a6b47641449a6b9f66c0376bb07e90c08baf7';
export const POOL = 'docker-thinpool';
export const POOL_UUID = 'LVM-LPTZpzC5p0fhkU3m9HPVFUVFpiWZIcycWK0R5SAPxR39WFvm0hIxkhtYI21rDxhN-tpool';
export const GIB = 1024 ** 3;
export const OLD_TABLE = '0 2097152 thin 253:2 4';
export const NEW_TABLE_3G = '0 6291456 thin 253:2 4';
export const INFO_ARGS = [
  'info',
  '-c',
  '--noheadings',
  '--separator',
  ';',
  '-o',
  'name,major,minor,attr,open,uuid',
];

export interface SimDevice {
  major: number;
  minor: number;
  uuid: string;
  live: string;
  inactive: string | null;
  suspended: boolean;
  open: number;
}

/** XFS on a Docker thin device: what statfs reports is a little smaller than the device (the log). */
export function xfsSizeFor(deviceBytes: number): number {
  return deviceBytes - 64 * 1024 * 1024 - (deviceBytes % 4096);
}

export class DmSim {
  readonly devices = new Map<string, SimDevice>();
  poolMode = 'rw';
  poolNeedsCheck = false;
  /** Pool data blocks (1024-sector blocks, as the direct-lvm capture). */
  poolDataTotalBlocks = 8184;
  /** Filesystem size inside the container device, as statfs reports it. */
  fsSizeBytes = xfsSizeFor(GIB);
  fsAvailableBytes = xfsSizeFor(GIB) - 900 * 1024 * 1024;
  /** Every statfs asserts the invariant: the filesystem is never larger than the device. */
  invariantViolations: string[] = [];
  /** The /sys/block the backend reads: kernel holds (loop devices) and dm-N/dev. */
  readonly sysBlockDir = mkdtempSync(path.join(os.tmpdir(), 'autogrow-sys-'));

  constructor() {
    this.devices.set(POOL, {
      major: 253,
      minor: 2,
      uuid: POOL_UUID,
      live: `0 ${this.poolDataTotalBlocks * 1024} thin-pool 253:0 253:1 1024 0 1 skip_block_zeroing`,
      inactive: null,
      suspended: false,
      open: 2,
    });
    this.devices.set(DEVICE, {
      major: 253,
      minor: 3,
      uuid: '',
      live: OLD_TABLE,
      inactive: null,
      suspended: false,
      open: 1,
    });
  }

  device(name = DEVICE): SimDevice {
    const device = this.devices.get(name);
    if (!device) throw new Error(`sim: no device ${name}`);
    return device;
  }

  deviceBytes(name = DEVICE): number | null {
    const device = this.devices.get(name);
    return device ? Number(device.live.split(' ')[1]) * 512 : null;
  }

  tableText(): string {
    return [...this.devices].map(([name, device]) => `${dmTableLine(name, device.live)}\n`).join('');
  }

  statusText(): string {
    return [...this.devices]
      .map(([name, device]) => {
        const [, length, target] = device.live.split(' ');
        const lengthSectors = Number(length);
        if (target === 'thin-pool') {
          return `${thinPoolStatusLine(name, {
            ...REFERENCE_LVM_POOL,
            lengthSectors,
            mode: this.poolMode,
            needsCheck: this.poolNeedsCheck,
            dataTotalBlocks: this.poolDataTotalBlocks,
          })}\n`;
        }
        return `${thinStatusLine(name, lengthSectors, REFERENCE_THIN_MAPPED_SECTORS, lengthSectors - 1)}\n`;
      })
      .join('');
  }

  infoText(): string {
    return [...this.devices]
      .map(([name, device]) => `${dmInfoLine(name, { ...device, inactive: device.inactive !== null })}\n`)
      .join('');
  }

  /** A runner whose reads answer from this state; mutating commands must be scripted. */
  runner(): ScriptedRunner {
    const tableText = () => this.tableText();
    const statusText = () => this.statusText();
    const infoText = () => this.infoText();
    const runner = new ScriptedRunner();
    runner.allow('dmsetup', ['table'], {
      get stdout() {
        return tableText();
      },
    });
    runner.allow('dmsetup', ['status', '--noflush'], {
      get stdout() {
        return statusText();
      },
    });
    runner.allow('dmsetup', INFO_ARGS, {
      get stdout() {
        return infoText();
      },
    });
    return runner;
  }

  // Kernel effects of each command, applied by scripted replies.
  load(name: string, table: string): void {
    this.device(name).inactive = table;
  }
  resume(name: string): void {
    const device = this.device(name);
    if (device.inactive) device.live = device.inactive;
    device.inactive = null;
    device.suspended = false;
  }
  clear(name: string): void {
    this.device(name).inactive = null;
  }
  /** `dmsetup create`: a new, unopened device with one live table (Docker's container minor). */
  create(name: string, table: string): void {
    this.devices.set(name, {
      major: 253,
      minor: 3,
      uuid: '',
      live: table,
      inactive: null,
      suspended: false,
      open: 0,
    });
  }
  /** A resume that failed in preresume (or was killed there): the table is live, the device suspended. */
  stuckInResume(name: string, table: string): void {
    const device = this.device(name);
    device.live = table;
    device.inactive = null;
    device.suspended = true;
  }
  /**
   * `losetup --read-only --offset 4096 --sizelimit 4096 --find --show /dev/mapper/<name>`: a loop
   * device (the first free from loop9) that keeps `name` open; /sys/block shows it as the kernel does.
   */
  addHold(name: string): string {
    const held = this.device(name);
    held.open += 1;
    let index = 9;
    while (this.holdNames().includes(`loop${index}`)) index += 1;
    const loop = `loop${index}`;
    const dmName = `dm-${held.minor}`;
    mkdirSync(path.join(this.sysBlockDir, dmName), { recursive: true });
    writeFileSync(path.join(this.sysBlockDir, dmName, 'dev'), `${held.major}:${held.minor}\n`);
    mkdirSync(path.join(this.sysBlockDir, loop, 'loop'), { recursive: true });
    writeFileSync(path.join(this.sysBlockDir, loop, 'ro'), '1\n');
    writeFileSync(path.join(this.sysBlockDir, loop, 'loop', 'backing_file'), `/dev/${dmName}\n`);
    writeFileSync(path.join(this.sysBlockDir, loop, 'loop', 'offset'), `${HOLD_OFFSET_BYTES}\n`);
    writeFileSync(path.join(this.sysBlockDir, loop, 'loop', 'sizelimit'), `${HOLD_SIZE_BYTES}\n`);
    this.holdBacking.set(loop, name);
    return `/dev/${loop}`;
  }
  /** Which device each hold (loop name) keeps open. */
  readonly holdBacking = new Map<string, string>();
  /** `losetup -d /dev/loopN`: the hold goes, and with it its open of the device under it. */
  removeHold(loop: string): void {
    const backing = this.holdBacking.get(loop);
    if (backing === undefined) throw new Error(`sim: no hold ${loop}`);
    this.holdBacking.delete(loop);
    rmSync(path.join(this.sysBlockDir, loop), { recursive: true, force: true });
    const device = this.devices.get(backing);
    if (device) device.open = Math.max(0, device.open - 1);
  }
  /** `dmsetup remove <name>`, or a hold's `losetup -d` when `name` is a loop device. */
  remove(name: string): void {
    if (/^loop\d+$/.test(name)) {
      this.removeHold(name);
      return;
    }
    this.device(name);
    this.devices.delete(name);
  }
  /** Hold loop devices present (`loop9`, ...). */
  holdNames(): string[] {
    return readdirSync(this.sysBlockDir)
      .filter((name) => this.holdBacking.has(name))
      .sort();
  }
  xfsGrow(): void {
    this.fsSizeBytes = xfsSizeFor(this.deviceBytes() ?? 0);
  }

  statfs(): FsStats {
    const deviceBytes = this.deviceBytes();
    if (deviceBytes !== null && this.fsSizeBytes > deviceBytes) {
      this.invariantViolations.push(`fs ${this.fsSizeBytes} > device ${deviceBytes}`);
    }
    return {
      blockSizeBytes: 4096,
      totalBlocks: this.fsSizeBytes / 4096,
      freeBlocks: this.fsAvailableBytes / 4096,
      availableBlocks: this.fsAvailableBytes / 4096,
      totalInodes: 1_000_000,
      freeInodes: 999_000,
    };
  }
}

export type Outcome = 'ok' | 'fail' | 'hang';

/** Replies for scripted commands: apply a kernel effect, optionally fail or hang (an agent kill). */
export function reply(effect: () => void, outcome: Outcome = 'ok', stderr = ''): ScriptedReply {
  return {
    effect: () => {
      effect();
      // A kill: the agent never sees the command return. The promise is abandoned by the test.
      if (outcome === 'hang') return new Promise<void>(() => undefined);
    },
    ...(outcome === 'fail' ? { exitCode: 1, stderr } : {}),
  };
}

export function container(overrides: Partial<ContainerInfo> = {}): ContainerInfo {
  return {
    id: CONTAINER_ID,
    name: 'c1',
    image: 'autogrow-busybox:test',
    labels: {},
    state: 'running',
    running: true,
    pid: 1234,
    storageDriver: 'devicemapper',
    graphDriverData: { DeviceId: '4', DeviceName: DEVICE, DeviceSize: '1073741824' },
    storageOptSizeBytes: null,
    ...overrides,
  };
}

export const LVM_DOCKER_INFO: DockerInfo = {
  serverVersion: '20.10.24+dfsg1',
  apiVersion: '1.41',
  driver: 'devicemapper',
  driverStatus: REFERENCE_LVM_DRIVER_STATUS,
  dockerRootDir: '/var/lib/docker',
  liveRestoreEnabled: true,
  containersRunning: 1,
};

export interface Host {
  sim: DmSim;
  stateDir: string;
  dataRoot: string;
  mountPath: string;
  metadataFile: string;
  /** The mountinfo file the backend reads (the container's XFS mount is on mountPath). */
  mountinfoPath: string;
  /** What inspect returns for the container (null: removed), and how many inspects ran. */
  docker: { current: ContainerInfo | null; inspections: number };
  backend(runner: ScriptedRunner, options?: DevicemapperOptions): DevicemapperBackend;
}

export function host(dockerInfo: DockerInfo = LVM_DOCKER_INFO): Host {
  const root = mkdtempSync(path.join(os.tmpdir(), 'autogrow-dm-'));
  const dataRoot = path.join(root, 'docker');
  const stateDir = path.join(root, 'state');
  const mountPath = path.join(dataRoot, 'devicemapper', 'mnt', HASH);
  const metadataFile = path.join(dataRoot, 'devicemapper', 'metadata', HASH);
  mkdirSync(mountPath, { recursive: true });
  mkdirSync(path.dirname(metadataFile), { recursive: true });
  writeFileSync(
    metadataFile,
    '{"device_id":4,"size":1073741824,"transaction_id":4,"initialized":false,"deleted":false}',
  );
  const mountinfoPath = path.join(root, 'mountinfo');
  writeFileSync(
    mountinfoPath,
    `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n33 32 253:3 / ${mountPath} rw,relatime shared:2 - xfs /dev/mapper/${DEVICE} rw,nouuid,attr2,inode64,logbufs=8,logbsize=32k,sunit=1024,swidth=1024,noquota\n`,
  );
  const sim = new DmSim();
  const docker = { current: container() as ContainerInfo | null, inspections: 0 };
  const dockerApi: DockerApi = {
    info: async () => dockerInfo,
    listContainerIds: async () => (docker.current ? [docker.current.id] : []),
    inspectContainer: async (id) => {
      docker.inspections += 1;
      return docker.current && docker.current.id === id ? docker.current : null;
    },
    ping: async () => true,
  };
  return {
    sim,
    stateDir,
    dataRoot,
    mountPath,
    metadataFile,
    mountinfoPath,
    docker,
    backend: (runner, options = {}) =>
      createDevicemapperBackend(
        { runner, docker: dockerApi, dockerInfo, logger: silentLogger(), stateDir, commandTimeoutMs: 5000 },
        {
          dataRoot,
          mountinfoPath,
          statfs: async () => sim.statfs(),
          sleep: async () => undefined,
          binaryPresent: () => true,
          sysBlockDir: sim.sysBlockDir,
          ...options,
        },
      ),
  };
}

/** One scripted command, to spread into `ScriptedRunner.expect(...)`. */
export type Step = readonly [tool: string, args: readonly string[], reply: ScriptedReply];

export interface StepOptions {
  /** The device (default: the container's). */
  name?: string;
  /** The table to load or create (default: the container's device grown to 3 GiB). */
  table?: string;
  outcome?: Outcome;
  stderr?: string;
  /** Replaces the command's kernel effect, e.g. `noEffect` for a command that changed nothing. */
  effect?: () => void;
}

/** The command did not reach the kernel (it failed early, or the agent was killed before it ran). */
export const noEffect = (): void => undefined;

function dmsetupStep(args: string[], effect: () => void, options: StepOptions): Step {
  return ['dmsetup', args, reply(options.effect ?? effect, options.outcome, options.stderr)];
}

/** `dmsetup load <name> --table <table>`: the table lands in the inactive slot. */
export function loadStep(sim: DmSim, options: StepOptions = {}): Step {
  const { name = DEVICE, table = NEW_TABLE_3G } = options;
  return dmsetupStep(['load', name, '--table', table], () => sim.load(name, table), options);
}

/** `dmsetup resume <name>`: the inactive table (if any) goes live and the device runs again. */
export function resumeStep(sim: DmSim, options: StepOptions = {}): Step {
  const { name = DEVICE } = options;
  return dmsetupStep(['resume', name], () => sim.resume(name), options);
}

/** `dmsetup resume <name>` stuck in preresume: `table` is live, the device is still suspended. */
export function stuckResumeStep(sim: DmSim, options: StepOptions & { outcome: 'fail' | 'hang' }): Step {
  const { name = DEVICE, table = NEW_TABLE_3G } = options;
  return dmsetupStep(['resume', name], () => sim.stuckInResume(name, table), options);
}

/** `dmsetup clear <name>`: the inactive slot is emptied. */
export function clearStep(sim: DmSim, options: StepOptions = {}): Step {
  const { name = DEVICE } = options;
  return dmsetupStep(['clear', name], () => sim.clear(name), options);
}

/** `dmsetup create <name> --table <table>`: the device exists again, unopened. */
export function createStep(sim: DmSim, options: StepOptions = {}): Step {
  const { name = DEVICE, table = NEW_TABLE_3G } = options;
  return dmsetupStep(['create', name, '--table', table], () => sim.create(name, table), options);
}

/** `losetup --read-only --offset 4096 --sizelimit 4096 --find --show /dev/mapper/<name>`: the kernel hold. */
export function holdStep(sim: DmSim, options: StepOptions = {}): Step {
  const { name = DEVICE } = options;
  let loopPath = '';
  const base = reply(
    options.effect ?? (() => (loopPath = sim.addHold(name))),
    options.outcome,
    options.stderr,
  );
  return [
    'losetup',
    holdLosetupArgs(name),
    {
      ...base,
      get stdout() {
        return `${loopPath}\n`;
      },
    },
  ];
}

/** `dmsetup remove <name>` (a deleted container's device), or `losetup -d /dev/<name>` for a hold. */
export function removeStep(sim: DmSim, name: string, options: StepOptions = {}): Step {
  if (/^loop\d+$/.test(name))
    return [
      'losetup',
      ['-d', `/dev/${name}`],
      reply(options.effect ?? (() => sim.remove(name)), options.outcome, options.stderr),
    ];
  return dmsetupStep(['remove', name], () => sim.remove(name), options);
}

/** `xfs_growfs -d <mount>`: the filesystem fills its (possibly grown) device. */
export function xfsGrowStep(h: Host, options: Omit<StepOptions, 'name' | 'table'> = {}): Step {
  return [
    'xfs_growfs',
    ['-d', h.mountPath],
    reply(options.effect ?? (() => h.sim.xfsGrow()), options.outcome, options.stderr),
  ];
}

/** Scripts the steps in order on a strict runner. */
export function expectSteps(runner: ScriptedRunner, ...steps: Step[]): ScriptedRunner {
  for (const step of steps) runner.expect(...step);
  return runner;
}

/** A grow that works: load the 3 GiB table, resume, xfs_growfs, then the kernel hold. */
export function happyGrowSteps(h: Host): Step[] {
  return [loadStep(h.sim), resumeStep(h.sim), xfsGrowStep(h), holdStep(h.sim)];
}

/** The backend's rollback of a suspended device: load the saved table again, resume. */
export function restoreSteps(sim: DmSim, name: string, savedTable: string): Step[] {
  return [loadStep(sim, { name, table: savedTable }), resumeStep(sim, { name })];
}

// ---------------------------------------------------------------- pools

/** Pool data block of the simulated pools: 1024 sectors (512 KiB), as the direct-lvm capture. */
export const POOL_BLOCK_BYTES = 1024 * 512;

/**
 * `lvs` and `vgs` JSON in lvm2's `--reportformat json` layout for the simulated pool (LV
 * docker/thinpool of 8184 blocks); the field values are the simulated ones, not a recording.
 */
function lvsReport(): string {
  const lv = {
    vg_name: 'docker',
    lv_name: 'thinpool',
    lv_size: String(8184 * POOL_BLOCK_BYTES),
    lv_metadata_size: '83886080',
    lv_attr: 'twi-aot---',
  };
  return JSON.stringify({ report: [{ lv: [lv] }] });
}
function vgsReport(freeBytes: number): string {
  const vg = { vg_name: 'docker', vg_free: String(freeBytes), vg_extent_size: String(4 * 1024 * 1024) };
  return JSON.stringify({ report: [{ vg: [vg] }] });
}

/**
 * What a direct-lvm pool grow reads first: `lvs` (finds the pool LV) and `vgs` (free space), with
 * the backend's own argv builders so the script is the command the backend runs.
 */
export function lvmReportSteps(vgFreeBytes: number): Step[] {
  return [
    ['lvs', lvsPoolArgs(), { stdout: lvsReport() }],
    ['vgs', vgsFreeArgs('docker'), { stdout: vgsReport(vgFreeBytes) }],
  ];
}

export const LOOP_DATA_FILE = '/var/lib/docker/devicemapper/devicemapper/data';
export const LOOP_DOCKER_INFO: DockerInfo = {
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

export interface LoopHost {
  h: Host;
  /** A /sys/block tree holding loop0 (7:0) backed by LOOP_DATA_FILE. */
  sysBlockDir: string;
  setLoopBytes: (bytes: number) => void;
  /** The sparse data file's size, as the backend sees it. */
  file: { sizeBytes: number };
  /** Backend options that point the backend at this loop device and file. */
  options: DevicemapperOptions;
}

/** A loop-lvm host: the simulated pool on loop devices 7:1 (metadata) and 7:0 (data). */
export function loopHost(): LoopHost {
  const h = host(LOOP_DOCKER_INFO);
  const pool = h.sim.device(POOL);
  pool.uuid = '';
  pool.live = `0 ${8184 * 1024} thin-pool 7:1 7:0 1024 0 1 skip_block_zeroing`;
  const sysBlockDir = h.sim.sysBlockDir;
  mkdirSync(path.join(sysBlockDir, 'loop0', 'loop'), { recursive: true });
  writeFileSync(path.join(sysBlockDir, 'loop0', 'dev'), '7:0\n');
  writeFileSync(path.join(sysBlockDir, 'loop0', 'loop', 'backing_file'), `${LOOP_DATA_FILE}\n`);
  const setLoopBytes = (bytes: number) =>
    writeFileSync(path.join(sysBlockDir, 'loop0', 'size'), `${bytes / 512}\n`);
  setLoopBytes(8184 * POOL_BLOCK_BYTES);
  const file = { sizeBytes: 8184 * POOL_BLOCK_BYTES };
  return {
    h,
    sysBlockDir,
    setLoopBytes,
    file,
    options: { sysBlockDir, fileSizeBytes: () => file.sizeBytes },
  };
}

/** The online loop-lvm grow up to the pool reload: extend the sparse file, refresh the loop device, load. */
export function loopGrowSteps(loop: LoopHost, toBytes: number, newTable: string): Step[] {
  return [
    ['truncate', ['-s', `>${toBytes}`, LOOP_DATA_FILE], reply(() => (loop.file.sizeBytes = toBytes))],
    ['losetup', ['-c', '/dev/loop0'], reply(() => loop.setLoopBytes(loop.file.sizeBytes))],
    loadStep(loop.h.sim, { name: POOL, table: newTable }),
  ];
}
