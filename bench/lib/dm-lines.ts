/**
 * Builders of `dmsetup table`, `dmsetup status` and `dmsetup info -c` lines in the exact formats of
 * the recorded outputs (test/fixtures/dm-thin, docker-dm-lvm, docker-dm-loop), shared by the unit
 * tests' simulated kernel (test/unit/dm-sim.ts) and the benchmark's replicated inputs
 * (bench/lib/replicate.ts). Pure string code without test dependencies: the bench build compiles it.
 * test/unit/bench-replicate.test.ts checks each builder reproduces a recorded line byte for byte.
 */
import { DM_INFO_SEPARATOR } from '../../src/storage/devicemapper/parse.js';

/**
 * One `dmsetup table` line (all-devices form). The kernel prints thin-pool tables with a trailing
 * space (after the feature list), and only those.
 */
export function dmTableLine(name: string, table: string): string {
  return `${name}: ${table}${table.split(' ')[2] === 'thin-pool' ? ' ' : ''}`;
}

/**
 * A thin device's `dmsetup status` line: mapped sectors and the highest mapped sector (`-` when
 * null: never written, or on a pool that switched to read-only).
 */
export function thinStatusLine(
  name: string,
  lengthSectors: number,
  mappedSectors: number,
  highestMappedSector: number | null,
): string {
  return `${name}: 0 ${lengthSectors} thin ${mappedSectors} ${highestMappedSector ?? '-'}`;
}

export interface ThinPoolStatusFields {
  lengthSectors: number;
  /** The kernel's word: `rw`, `ro`, `out_of_data_space`, or `Fail` (then nothing else is printed). */
  mode: string;
  transactionId: number;
  metadataUsedBlocks: number;
  metadataTotalBlocks: number;
  dataUsedBlocks: number;
  dataTotalBlocks: number;
  needsCheck: boolean;
  errorIfNoSpace: boolean;
  /** The metadata low water mark the kernel prints last, in metadata blocks. */
  metadataLowWaterBlocks: number;
}

/** A thin-pool `dmsetup status` line (trailing space included, as the kernel prints it). */
export function thinPoolStatusLine(name: string, pool: ThinPoolStatusFields): string {
  const head = `${name}: 0 ${pool.lengthSectors} thin-pool`;
  if (pool.mode === 'Fail') return `${head} Fail`;
  return [
    head,
    pool.transactionId,
    `${pool.metadataUsedBlocks}/${pool.metadataTotalBlocks}`,
    `${pool.dataUsedBlocks}/${pool.dataTotalBlocks}`,
    '-',
    pool.mode,
    'discard_passdown',
    pool.errorIfNoSpace ? 'error_if_no_space' : 'queue_if_no_space',
    pool.needsCheck ? 'needs_check' : '-',
    `${pool.metadataLowWaterBlocks} `,
  ].join(' ');
}

export interface DmInfoFields {
  major: number;
  minor: number;
  open: number;
  uuid: string;
  inactive?: boolean;
  suspended?: boolean;
}

/** A `dmsetup info -c --noheadings --separator ; -o name,major,minor,attr,open,uuid` line. */
export function dmInfoLine(name: string, info: DmInfoFields): string {
  const attr = `L${info.inactive ? 'I' : '-'}${info.suspended ? 's' : '-'}w`;
  return [name, info.major, info.minor, attr, info.open, info.uuid].join(DM_INFO_SEPARATOR);
}

/**
 * The direct-lvm pool of the reference capture docker-dm-lvm/13-container.txt
 * (/work/shared/reference/real-outputs), which the simulated kernel and the benchmark start from.
 */
export const REFERENCE_LVM_POOL: ThinPoolStatusFields = {
  lengthSectors: 8380416,
  mode: 'rw',
  transactionId: 6,
  metadataUsedBlocks: 2064,
  metadataTotalBlocks: 20480,
  dataUsedBlocks: 210,
  dataTotalBlocks: 8184,
  needsCheck: false,
  errorIfNoSpace: false,
  metadataLowWaterBlocks: 1024,
};
/** `docker info` DriverStatus of that capture's daemon (the fields the backend reads). */
export const REFERENCE_LVM_DRIVER_STATUS: Array<[string, string]> = [
  ['Pool Name', 'docker-thinpool'],
  ['Pool Blocksize', '524.3kB'],
  ['Base Device Size', '1.074GB'],
  ['Backing Filesystem', 'xfs'],
  ['Udev Sync Supported', 'true'],
  ['Deferred Removal Enabled', 'true'],
  ['Deferred Deletion Enabled', 'true'],
];
/** Mapped sectors of the running container's thin device in that capture. */
export const REFERENCE_THIN_MAPPED_SECTORS = 145408;
