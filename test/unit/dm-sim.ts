/**
 * A device-mapper kernel in miniature for the devicemapper backend's fault-injection tests: it
 * holds each device's live and inactive tables, suspended flag and open count, and answers
 * `dmsetup table`, `dmsetup status --noflush` and `dmsetup info -c` in the exact formats of the
 * real captures (see dm-parse.test.ts). Mutating commands are scripted per test on a strict
 * ScriptedRunner with `effect` hooks that change this state, so a test can fail or "kill" any step.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ScriptedRunner, type ScriptedReply } from '../support/scripted-runner.js';
import type { ContainerInfo, DockerInfo } from '../../src/docker/model.js';
import type { DockerApi } from '../../src/docker/inventory-port.js';
import { silentLogger } from '../../src/log/logger.js';
import {
  createDevicemapperBackend,
  type DevicemapperBackend,
  type DevicemapperOptions,
  type FsStats,
} from '../../src/storage/devicemapper/index.js';

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
    // Real `dmsetup table` prints thin-pool lines with a trailing space.
    return [...this.devices]
      .map(([name, device]) => `${name}: ${device.live}${device.live.includes('thin-pool') ? ' ' : ''}\n`)
      .join('');
  }

  statusText(): string {
    return [...this.devices]
      .map(([name, device]) => {
        const [start, length, target] = device.live.split(' ');
        if (target === 'thin-pool') {
          if (this.poolMode === 'Fail') return `${name}: ${start} ${length} thin-pool Fail\n`;
          return `${name}: ${start} ${length} thin-pool 6 2064/20480 210/${this.poolDataTotalBlocks} - ${this.poolMode} discard_passdown queue_if_no_space ${this.poolNeedsCheck ? 'needs_check' : '-'} 1024 \n`;
        }
        return `${name}: ${start} ${length} thin 145408 ${Number(length) - 1}\n`;
      })
      .join('');
  }

  infoText(): string {
    return [...this.devices]
      .map(
        ([name, device]) =>
          `${name};${device.major};${device.minor};L${device.inactive ? 'I' : '-'}${device.suspended ? 's' : '-'}w;${device.open};${device.uuid}\n`,
      )
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

/** Replies for scripted commands: apply a kernel effect, optionally fail or hang (an agent kill). */
export function reply(
  effect: () => void,
  outcome: 'ok' | 'fail' | 'hang' = 'ok',
  stderr = '',
): ScriptedReply {
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
  driverStatus: [
    ['Pool Name', 'docker-thinpool'],
    ['Pool Blocksize', '524.3kB'],
    ['Base Device Size', '1.074GB'],
    ['Backing Filesystem', 'xfs'],
    ['Udev Sync Supported', 'true'],
    ['Deferred Removal Enabled', 'true'],
    ['Deferred Deletion Enabled', 'true'],
  ],
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
  /** What inspect returns for the container (null: removed). */
  docker: { current: ContainerInfo | null };
  /** Device paths the backend holds open (fake open/close). */
  held: Map<number, string>;
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
  const held = new Map<number, string>();
  let nextFd = 100;
  const docker = { current: container() as ContainerInfo | null };
  const dockerApi: DockerApi = {
    info: async () => dockerInfo,
    listContainerIds: async () => (docker.current ? [docker.current.id] : []),
    inspectContainer: async (id) => (docker.current && docker.current.id === id ? docker.current : null),
    ping: async () => true,
  };
  return {
    sim,
    stateDir,
    dataRoot,
    mountPath,
    metadataFile,
    docker,
    held,
    backend: (runner, options = {}) =>
      createDevicemapperBackend(
        { runner, docker: dockerApi, dockerInfo, logger: silentLogger(), stateDir, commandTimeoutMs: 5000 },
        {
          dataRoot,
          mountinfoPath,
          statfs: async () => sim.statfs(),
          sleep: async () => undefined,
          binaryPresent: () => true,
          openDevice: (devicePath) => {
            nextFd += 1;
            held.set(nextFd, devicePath);
            return nextFd;
          },
          closeDevice: (fd) => {
            held.delete(fd);
          },
          ...options,
        },
      ),
  };
}
