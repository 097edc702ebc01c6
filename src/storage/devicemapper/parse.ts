/**
 * Pure parsers for what the devicemapper backend reads: `dmsetup table|status` (all devices,
 * `name: start length target args...`), `dmsetup info -c`, thin and thin-pool target lines,
 * Docker's DriverStatus pairs, LVM JSON reports, /proc/self/mountinfo and Docker's per-device
 * metadata files. No I/O here: everything is a function of text.
 */
import { ToolOutputError, refuseNul } from '../tool-output-error.js';
import { isDockerDmDeviceName, isLayerHash, isSafeUint } from '../../docker/ids.js';

export const SECTOR_BYTES = 512;
/** Thin-pool metadata blocks are always 4 KiB (kernel thin-provisioning.rst). */
export const POOL_METADATA_BLOCK_BYTES = 4096;

/** One segment of a device's table or status line. */
export interface DmSegment {
  startSector: number;
  lengthSectors: number;
  target: string;
  /** Target arguments (table) or status fields (status), split on whitespace. */
  args: string[];
}

function parseUint(text: string | undefined, what: string): number {
  if (text === undefined || !/^\d+$/.test(text))
    throw new ToolOutputError(`${what}: not an unsigned integer: ${JSON.stringify(text)}`);
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new ToolOutputError(`${what}: too large: ${text}`);
  return value;
}

/** Parses `start length target args...` (one segment, no device name prefix). */
export function parseDmSegment(line: string): DmSegment {
  const fields = line.trim().split(/\s+/);
  if (fields.length < 3)
    throw new ToolOutputError(`not a device-mapper table/status line: ${JSON.stringify(line)}`);
  return {
    startSector: parseUint(fields[0], 'start sector'),
    lengthSectors: parseUint(fields[1], 'length'),
    target: fields[2] ?? '',
    args: fields.slice(3),
  };
}

/**
 * Parses `dmsetup table` or `dmsetup status` over all devices: each line is `name: segment`
 * (a device with several segments has several lines). Device names may contain `:` (Docker's
 * `docker-253:0-...`), never `: `, so the name ends at the first `: `.
 */
export function parseDmsetupAllDevices(text: string): Map<string, DmSegment[]> {
  refuseNul(text, 'dmsetup');
  const devices = new Map<string, DmSegment[]>();
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trimEnd();
    if (!line.trim() || line.trim() === 'No devices found') continue;
    const separator = line.indexOf(': ');
    // A device without a table yet (being created or removed) prints as `name: ` and nothing
    // after it: it has no segment to read, and must not make the whole listing unreadable
    // (seen in the guest soak: one such line failed a pass for every container).
    if (separator < 0 && line.length > 1 && line.endsWith(':') && !/\s/.test(line)) continue;
    if (separator <= 0)
      throw new ToolOutputError(`dmsetup line without a device name: ${JSON.stringify(line)}`);
    const name = line.slice(0, separator);
    const segments = devices.get(name) ?? [];
    segments.push(parseDmSegment(line.slice(separator + 2)));
    devices.set(name, segments);
  }
  return devices;
}

/** `dmsetup table <one device>`: segments without a name prefix. */
export function parseDmsetupOneDevice(text: string): DmSegment[] {
  refuseNul(text, 'dmsetup');
  return text
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => parseDmSegment(line));
}

/** The columns the backend asks `dmsetup info -c` for, in this order. */
export const DM_INFO_FIELDS = 'name,major,minor,attr,open,uuid';
export const DM_INFO_SEPARATOR = ';';

export interface DmDeviceInfo {
  name: string;
  major: number;
  minor: number;
  /** A live table is loaded (attr L). */
  live: boolean;
  /** A table sits in the inactive slot (attr I): loaded but never resumed. */
  inactive: boolean;
  /** The device is suspended (attr s): all its I/O is blocked. */
  suspended: boolean;
  readOnly: boolean;
  openCount: number;
  uuid: string;
}

/**
 * Parses `dmsetup info -c --noheadings --separator ';' -o name,major,minor,attr,open,uuid`.
 * attr is 4 characters: (L)ive, (I)nactive, (s)uspended, (r)ead-only or (w)ritable.
 */
export function parseDmInfoColumns(text: string): Map<string, DmDeviceInfo> {
  refuseNul(text, 'dmsetup info');
  const devices = new Map<string, DmDeviceInfo>();
  for (const line of text.split('\n')) {
    if (!line.trim() || line.trim() === 'No devices found') continue;
    const fields = line.trim().split(DM_INFO_SEPARATOR);
    if (fields.length < 6)
      throw new ToolOutputError(`dmsetup info line has ${fields.length} fields: ${JSON.stringify(line)}`);
    const [name, major, minor, attr, open, ...uuidParts] = fields as [string, string, string, string, string];
    if (!/^[L-][I-][s-][rw]/.test(attr))
      throw new ToolOutputError(`dmsetup info: unknown attr ${JSON.stringify(attr)}`);
    devices.set(name, {
      name,
      major: parseUint(major, 'major'),
      minor: parseUint(minor, 'minor'),
      live: attr[0] === 'L',
      inactive: attr[1] === 'I',
      suspended: attr[2] === 's',
      readOnly: attr[3] === 'r',
      openCount: parseUint(open, 'open count'),
      // A uuid cannot contain the separator in practice; join defensively.
      uuid: uuidParts.join(DM_INFO_SEPARATOR).trim(),
    });
  }
  return devices;
}

/** `thin-pool <metadata dev> <data dev> <block size sectors> <low water mark blocks> [<n> <features>...]` */
export interface ThinPoolTable {
  metadataDevice: string;
  dataDevice: string;
  dataBlockSizeSectors: number;
  lowWaterMarkBlocks: number;
  features: string[];
}

export function parseThinPoolTable(segment: DmSegment): ThinPoolTable {
  if (segment.target !== 'thin-pool')
    throw new ToolOutputError(`not a thin-pool table: target ${segment.target}`);
  const [metadataDevice, dataDevice, blockSize, lowWater, featureCount, ...rest] = segment.args;
  if (!metadataDevice || !dataDevice) throw new ToolOutputError('thin-pool table without devices');
  const count = featureCount === undefined ? 0 : parseUint(featureCount, 'thin-pool feature count');
  return {
    metadataDevice,
    dataDevice,
    dataBlockSizeSectors: parseUint(blockSize, 'thin-pool block size'),
    lowWaterMarkBlocks: parseUint(lowWater, 'thin-pool low water mark'),
    features: rest.slice(0, count),
  };
}

/** Renders a thin-pool table segment (the inverse of parseThinPoolTable, for reloads). */
export function formatThinPoolTable(lengthSectors: number, table: ThinPoolTable): string {
  const features = table.features.length > 0 ? ` ${table.features.length} ${table.features.join(' ')}` : ' 0';
  return `0 ${lengthSectors} thin-pool ${table.metadataDevice} ${table.dataDevice} ${table.dataBlockSizeSectors} ${table.lowWaterMarkBlocks}${features}`;
}

export type ThinPoolMode = 'rw' | 'ro' | 'out_of_data_space' | 'fail';

export interface ThinPoolStatus {
  mode: ThinPoolMode;
  /** Null in Fail mode (the kernel prints only `Fail`). */
  transactionId: number | null;
  metadataUsedBlocks: number | null;
  metadataTotalBlocks: number | null;
  dataUsedBlocks: number | null;
  dataTotalBlocks: number | null;
  needsCheck: boolean;
  errorIfNoSpace: boolean | null;
}

/**
 * Thin-pool status: `<transaction id> <used meta>/<total meta> <used data>/<total data> <held root|->
 * rw|ro|out_of_data_space [no_]discard_passdown error|queue_if_no_space needs_check|- <meta low water>`,
 * or just `Fail`. Older kernels omit the trailing fields; they default to absent.
 */
export function parseThinPoolStatus(segment: DmSegment): ThinPoolStatus {
  if (segment.target !== 'thin-pool')
    throw new ToolOutputError(`not a thin-pool status: target ${segment.target}`);
  const fields = segment.args;
  if (fields[0] === 'Fail' || fields[0] === 'Error') {
    return {
      mode: 'fail',
      transactionId: null,
      metadataUsedBlocks: null,
      metadataTotalBlocks: null,
      dataUsedBlocks: null,
      dataTotalBlocks: null,
      needsCheck: false,
      errorIfNoSpace: null,
    };
  }
  const fraction = (text: string | undefined, what: string): [number, number] => {
    const match = /^(\d+)\/(\d+)$/.exec(text ?? '');
    if (!match)
      throw new ToolOutputError(`thin-pool status: ${what} is not used/total: ${JSON.stringify(text)}`);
    return [parseUint(match[1], what), parseUint(match[2], what)];
  };
  const [metaUsed, metaTotal] = fraction(fields[1], 'metadata');
  const [dataUsed, dataTotal] = fraction(fields[2], 'data');
  const modeField = fields[4];
  if (modeField !== 'rw' && modeField !== 'ro' && modeField !== 'out_of_data_space') {
    throw new ToolOutputError(`thin-pool status: unknown mode ${JSON.stringify(modeField)}`);
  }
  const rest = fields.slice(5);
  return {
    mode: modeField,
    transactionId: parseUint(fields[0], 'transaction id'),
    metadataUsedBlocks: metaUsed,
    metadataTotalBlocks: metaTotal,
    dataUsedBlocks: dataUsed,
    dataTotalBlocks: dataTotal,
    needsCheck: rest.includes('needs_check'),
    errorIfNoSpace: rest.includes('error_if_no_space')
      ? true
      : rest.includes('queue_if_no_space')
        ? false
        : null,
  };
}

/** `thin <pool dev> <dev id> [<external origin>]` */
export interface ThinTable {
  poolDevice: string;
  deviceId: number;
  externalOrigin: string | null;
}

export function parseThinTable(segment: DmSegment): ThinTable {
  if (segment.target !== 'thin') throw new ToolOutputError(`not a thin table: target ${segment.target}`);
  const [poolDevice, deviceId, externalOrigin] = segment.args;
  if (!poolDevice) throw new ToolOutputError('thin table without a pool device');
  // the kernel's thin target takes at most 3 arguments: more is not a thin table we can read
  if (segment.args.length > 3)
    throw new ToolOutputError(`thin table with ${segment.args.length} arguments: ${segment.args.join(' ')}`);
  return {
    poolDevice,
    deviceId: parseUint(deviceId, 'thin device id'),
    externalOrigin: externalOrigin ?? null,
  };
}

export function formatThinTable(lengthSectors: number, table: ThinTable): string {
  const origin = table.externalOrigin ? ` ${table.externalOrigin}` : '';
  return `0 ${lengthSectors} thin ${table.poolDevice} ${table.deviceId}${origin}`;
}

export interface ThinStatus {
  failed: boolean;
  mappedSectors: number | null;
  /** Null when nothing was ever written (`-`). */
  highestMappedSector: number | null;
}

/** Thin status: `<nr mapped sectors> <highest mapped sector|->`, or `Fail`. */
export function parseThinStatus(segment: DmSegment): ThinStatus {
  if (segment.target !== 'thin') throw new ToolOutputError(`not a thin status: target ${segment.target}`);
  const [mapped, highest] = segment.args;
  if (mapped === 'Fail') return { failed: true, mappedSectors: null, highestMappedSector: null };
  return {
    failed: false,
    mappedSectors: parseUint(mapped, 'mapped sectors'),
    highestMappedSector:
      highest === '-' || highest === undefined ? null : parseUint(highest, 'highest mapped'),
  };
}

/** What `docker info` DriverStatus says about a devicemapper host. */
export interface DockerDmDriverStatus {
  poolName: string;
  udevSyncSupported: boolean | null;
  deferredRemovalEnabled: boolean | null;
  deferredDeletionEnabled: boolean | null;
  backingFilesystem: string | null;
  /** loop-lvm only: `/dev/loopN` and the sparse files behind them. */
  dataLoopDevice: string | null;
  metadataLoopDevice: string | null;
  dataLoopFile: string | null;
  metadataLoopFile: string | null;
}

export function parseDockerDmDriverStatus(
  pairs: ReadonlyArray<readonly [string, string]>,
): DockerDmDriverStatus {
  const values = new Map(pairs.map(([key, value]) => [key.trim(), value.trim()]));
  const poolName = values.get('Pool Name');
  if (!poolName)
    throw new ToolOutputError(
      'docker info DriverStatus has no "Pool Name": is the storage driver devicemapper?',
    );
  const bool = (key: string): boolean | null => {
    const value = values.get(key);
    return value === undefined ? null : value === 'true';
  };
  return {
    poolName,
    udevSyncSupported: bool('Udev Sync Supported'),
    deferredRemovalEnabled: bool('Deferred Removal Enabled'),
    deferredDeletionEnabled: bool('Deferred Deletion Enabled'),
    backingFilesystem: values.get('Backing Filesystem') ?? null,
    dataLoopDevice: values.get('Data file') || null,
    metadataLoopDevice: values.get('Metadata file') || null,
    dataLoopFile: values.get('Data loop file') || null,
    metadataLoopFile: values.get('Metadata loop file') || null,
  };
}

/** A container's device as Docker reports it in GraphDriver.Data, validated. */
export interface DockerThinDevice {
  deviceName: string;
  deviceId: number;
  /** DeviceSize: what dockerd believes (cached in memory; stale after a grow). */
  dockerSizeBytes: number | null;
  /** The mount hash: the last component of the device name, also the mnt/ and metadata/ file name. */
  hash: string;
}

export function parseGraphDriverData(data: Readonly<Record<string, string>>): DockerThinDevice {
  const deviceName = data.DeviceName;
  if (!isDockerDmDeviceName(deviceName))
    throw new ToolOutputError(
      `GraphDriver.Data.DeviceName is not a Docker thin device: ${JSON.stringify(deviceName)}`,
    );
  if (deviceName.endsWith('-init')) throw new ToolOutputError(`refusing an -init device: ${deviceName}`);
  const deviceId = Number(data.DeviceId);
  if (!/^\d+$/.test(data.DeviceId ?? '') || !isSafeUint(deviceId))
    throw new ToolOutputError(`GraphDriver.Data.DeviceId is not an id: ${JSON.stringify(data.DeviceId)}`);
  const hash = deviceName.slice(deviceName.lastIndexOf('-') + 1);
  if (!isLayerHash(hash)) throw new ToolOutputError(`device name hash is not 64 hex digits: ${deviceName}`);
  const sizeText = data.DeviceSize;
  const dockerSizeBytes = sizeText && /^\d+$/.test(sizeText) ? Number(sizeText) : null;
  return { deviceName, deviceId, dockerSizeBytes, hash };
}

/** One row of `lvs --reportformat json --units b --nosuffix -o vg_name,lv_name,lv_size,lv_metadata_size,lv_attr`. */
export interface LvsRow {
  vgName: string;
  lvName: string;
  sizeBytes: number;
  metadataSizeBytes: number | null;
  attr: string;
}

/** JSON.parse whose failure is a {@link ToolOutputError} (a truncated or garbage report). */
function parseJson(text: string, what: string): unknown {
  refuseNul(text, what);
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new ToolOutputError(`${what}: not JSON (${(error as Error).message})`);
  }
}

function reportRows(json: string, section: 'lv' | 'vg'): Record<string, string>[] {
  const parsed = parseJson(json, `LVM ${section}s report`) as { report?: unknown } | null;
  if (parsed === null || typeof parsed !== 'object' || !Array.isArray(parsed.report))
    throw new ToolOutputError('LVM JSON report without "report"');
  const rows: Record<string, string>[] = [];
  for (const entry of parsed.report as unknown[]) {
    const list =
      entry !== null && typeof entry === 'object' ? (entry as Record<string, unknown>)[section] : null;
    if (!Array.isArray(list)) continue;
    for (const row of list as unknown[]) {
      // every field of --reportformat json is a string: anything else is not LVM's report
      if (
        row === null ||
        typeof row !== 'object' ||
        !Object.values(row as Record<string, unknown>).every((value) => typeof value === 'string')
      )
        throw new ToolOutputError(
          `LVM JSON report: a ${section} row that is not strings: ${JSON.stringify(row)}`,
        );
      rows.push(row as Record<string, string>);
    }
  }
  return rows;
}

function lvmBytes(value: string | undefined, what: string): number {
  // --units b --nosuffix prints plain byte counts; an empty field means "not applicable".
  return parseUint(value?.trim(), what);
}

export function parseLvsReport(json: string): LvsRow[] {
  return reportRows(json, 'lv').map((row) => ({
    vgName: row.vg_name ?? '',
    lvName: row.lv_name ?? '',
    sizeBytes: lvmBytes(row.lv_size, 'lv_size'),
    metadataSizeBytes: row.lv_metadata_size?.trim()
      ? lvmBytes(row.lv_metadata_size, 'lv_metadata_size')
      : null,
    attr: row.lv_attr ?? '',
  }));
}

export interface VgsRow {
  vgName: string;
  freeBytes: number;
  extentSizeBytes: number;
}

export function parseVgsReport(json: string): VgsRow[] {
  return reportRows(json, 'vg').map((row) => ({
    vgName: row.vg_name ?? '',
    freeBytes: lvmBytes(row.vg_free, 'vg_free'),
    extentSizeBytes: lvmBytes(row.vg_extent_size, 'vg_extent_size'),
  }));
}

/** The dm name LVM gives vg/lv: each `-` inside a name doubled, joined by `-`. */
export function lvmDmName(vgName: string, lvName: string): string {
  return `${vgName.replace(/-/g, '--')}-${lvName.replace(/-/g, '--')}`;
}

/** `lvm config --typeconfig full activation/thin_pool_autoextend_threshold` → `thin_pool_autoextend_threshold=100`. */
export function parseLvmConfigValue(text: string, key: string): string | null {
  for (const line of text.split('\n')) {
    const match = /^\s*([\w/]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (match && (match[1] === key || match[1]?.endsWith(`/${key}`)))
      return (match[2] ?? '').replace(/^"|"$/g, '');
  }
  return null;
}

/**
 * One mountinfo parser for every backend (src/storage/filesystem.ts). The devicemapper name stays
 * until src/storage/devicemapper/index.ts imports parseMountInfo itself (it is being split).
 */
export { parseMountInfo as parseMountinfo, type MountEntry } from '../filesystem.js';

/** Docker's `<root>/devicemapper/metadata/<hash>`: `{"device_id":4,"size":1073741824,...}`. */
export interface DockerDeviceMetadata {
  deviceId: number;
  sizeBytes: number;
}

export function parseDockerDeviceMetadata(text: string): DockerDeviceMetadata {
  const parsed = parseJson(text, 'devicemapper metadata') as Record<string, unknown> | null;
  if (
    parsed === null ||
    typeof parsed !== 'object' ||
    !isSafeUint(parsed.device_id) ||
    !isSafeUint(parsed.size)
  ) {
    throw new ToolOutputError(`devicemapper metadata without device_id/size: ${text.slice(0, 200)}`);
  }
  return { deviceId: parsed.device_id, sizeBytes: parsed.size };
}

/**
 * Returns the metadata text with only "size" changed. Every other field keeps its value and order
 * (JSON.parse keeps key order; Docker writes compact JSON without a newline, as we do).
 */
export function patchDockerDeviceMetadataSize(text: string, sizeBytes: number): string {
  const parsed = JSON.parse(text) as Record<string, unknown>;
  if (!('size' in parsed)) throw new ToolOutputError('devicemapper metadata has no "size" field');
  parsed.size = sizeBytes;
  return JSON.stringify(parsed);
}

/** `major:minor` of a device, as tables reference it. */
export function majorMinor(info: Pick<DmDeviceInfo, 'major' | 'minor'>): string {
  return `${info.major}:${info.minor}`;
}
