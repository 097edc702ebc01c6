/**
 * Helpers for tests that run INSIDE the VM (vitest project `guest`, files under test/guest/). The
 * harness prepared one environment before vitest started and described it in environment variables
 * (docs/vm.md lists them); this module reads them into a typed value and drives the guest's dockerd.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { VM_ENVIRONMENTS, type VmEnvironment } from './run.js';

const execFileAsync = promisify(execFile);

export interface GuestEnvironment {
  environment: VmEnvironment;
  /** Checkout path inside the guest (same as on the host; mounted read-only). */
  checkoutDir: string;
  /** Scratch disk, e.g. /dev/vdb, and its size. */
  scratchDevice: string;
  scratchSizeBytes: number;
  /** Where guest tests may leave files for the host (the run's artifacts directory). */
  artifactsDir: string;
  /** Helper script: `<dockerdCtl> start|stop|restart|status`. */
  dockerdCtl: string;
  /** Docker environments only. */
  docker?: {
    host: string;
    dataRoot: string;
    configFile: string;
    busyboxImage: string;
  };
  /** dm-thin-raw, docker-dm-lvm, docker-dm-loop: the pool's dm name (e.g. docker-thinpool). */
  thinPool?: string;
  /** dm-thin-raw: the pool's linear legs and geometry (for growing the pool in tests). */
  rawPool?: {
    metaDevice: string;
    dataDevice: string;
    blockSectors: number;
    lowWaterBlocks: number;
    dataOffsetSectors: number;
    dataMaxSectors: number;
  };
  /** docker-dm-lvm: volume group and thin pool LV. */
  lvm?: { volumeGroup: string; thinPoolLv: string };
  /** overlay2-xfs: XFS (mounted pquota) under the data root. */
  xfs?: { device: string; mountPoint: string };
  /** btrfs: the btrfs data root. */
  btrfs?: { device: string; mountPoint: string };
}

/** True inside the test VM (set by the guest's environment setup). */
export const inGuest = process.env.AUTOGROW_VM === '1';

function required(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  if (value === undefined || value === '') throw new Error(`guest environment variable ${name} is not set`);
  return value;
}

/** Reads the environment description; throws outside the VM or when a promised variable is missing. */
export function guestEnvironment(env: NodeJS.ProcessEnv = process.env): GuestEnvironment {
  if (env.AUTOGROW_VM !== '1') throw new Error('not inside the autogrow test VM (AUTOGROW_VM != 1)');
  const environment = required(env, 'AUTOGROW_VM_ENV');
  if (!(VM_ENVIRONMENTS as readonly string[]).includes(environment)) {
    throw new Error(`unknown AUTOGROW_VM_ENV '${environment}'`);
  }
  const result: GuestEnvironment = {
    environment: environment as VmEnvironment,
    checkoutDir: required(env, 'AUTOGROW_SRC'),
    scratchDevice: required(env, 'AUTOGROW_SCRATCH_DEV'),
    scratchSizeBytes: Number(required(env, 'AUTOGROW_SCRATCH_SIZE_BYTES')),
    artifactsDir: required(env, 'AUTOGROW_ARTIFACTS_DIR'),
    dockerdCtl: required(env, 'AUTOGROW_DOCKERD_CTL'),
  };
  if (env.DOCKER_HOST) {
    result.docker = {
      host: env.DOCKER_HOST,
      dataRoot: required(env, 'AUTOGROW_DATA_ROOT'),
      configFile: required(env, 'AUTOGROW_DOCKERD_CONFIG'),
      busyboxImage: required(env, 'AUTOGROW_BUSYBOX_IMAGE'),
    };
  }
  if (env.AUTOGROW_THIN_POOL) result.thinPool = env.AUTOGROW_THIN_POOL;
  if (environment === 'dm-thin-raw') {
    result.rawPool = {
      metaDevice: required(env, 'AUTOGROW_THIN_POOL_META'),
      dataDevice: required(env, 'AUTOGROW_THIN_POOL_DATA'),
      blockSectors: Number(required(env, 'AUTOGROW_THIN_POOL_BLOCK_SECTORS')),
      lowWaterBlocks: Number(required(env, 'AUTOGROW_THIN_POOL_LOW_WATER_BLOCKS')),
      dataOffsetSectors: Number(required(env, 'AUTOGROW_THIN_POOL_DATA_OFFSET_SECTORS')),
      dataMaxSectors: Number(required(env, 'AUTOGROW_THIN_POOL_DATA_MAX_SECTORS')),
    };
  }
  if (env.AUTOGROW_VG) {
    result.lvm = { volumeGroup: env.AUTOGROW_VG, thinPoolLv: required(env, 'AUTOGROW_THIN_LV') };
  }
  if (env.AUTOGROW_XFS_MOUNT) {
    result.xfs = { device: required(env, 'AUTOGROW_XFS_DEV'), mountPoint: env.AUTOGROW_XFS_MOUNT };
  }
  if (env.AUTOGROW_BTRFS_MOUNT) {
    result.btrfs = { device: required(env, 'AUTOGROW_BTRFS_DEV'), mountPoint: env.AUTOGROW_BTRFS_MOUNT };
  }
  return result;
}

/**
 * Starts, stops or restarts the guest's dockerd (test/vm/guest/dockerd-ctl.sh): it reads
 * /etc/docker/daemon.json, so a test may rewrite that file (e.g. live-restore) and restart.
 */
export async function dockerdCtl(action: 'start' | 'stop' | 'restart' | 'status'): Promise<void> {
  const { dockerdCtl: script } = guestEnvironment();
  await execFileAsync('/bin/bash', [script, action], { timeout: 300_000 });
}
