/**
 * The kernel snapshot: every dm table, info and (optionally) status in two or three dmsetup
 * commands whatever the number of devices, and the checks that read a pool and a container's thin
 * device out of one.
 */
import type { PoolUsage } from '../types.js';
import {
  DM_INFO_FIELDS,
  DM_INFO_SEPARATOR,
  majorMinor,
  parseDmInfoColumns,
  parseDmsetupAllDevices,
  parseThinPoolStatus,
  parseThinPoolTable,
  parseThinTable,
  type DmDeviceInfo,
  type DmSegment,
  type DockerThinDevice,
  type ThinPoolStatus,
  type ThinPoolTable,
  type ThinTable,
} from './parse.js';
import { type DmContext } from './context.js';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { LoopFacts } from './persistence.js';

export interface DmSnapshot {
  tables: Map<string, DmSegment[]>;
  infos: Map<string, DmDeviceInfo>;
  statuses: Map<string, DmSegment[]> | null;
  /** Bound loop devices (where kernel holds live), from /sys/block: file reads, no process. */
  loops: LoopFacts[];
}

function readTrimmed(file: string): string | null {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
}

/** Every bound loop device in `sysBlockDir` (an unbound one has no loop/backing_file). */
export function readLoops(sysBlockDir: string): LoopFacts[] {
  let names: string[];
  try {
    names = readdirSync(sysBlockDir).filter((name) => /^loop\d+$/.test(name));
  } catch {
    return [];
  }
  const loops: LoopFacts[] = [];
  for (const name of names) {
    const dir = path.join(sysBlockDir, name);
    const backingFile = readTrimmed(path.join(dir, 'loop', 'backing_file'));
    if (backingFile === null || backingFile === '') continue;
    const base = path.basename(backingFile);
    const dmDev = /^dm-\d+$/.test(base) ? path.join(sysBlockDir, base, 'dev') : null;
    loops.push({
      name,
      backingFile,
      offsetBytes: Number(readTrimmed(path.join(dir, 'loop', 'offset')) ?? -1),
      sizeLimitBytes: Number(readTrimmed(path.join(dir, 'loop', 'sizelimit')) ?? -1),
      readOnly: readTrimmed(path.join(dir, 'ro')) === '1',
      backingMajorMinor: dmDev !== null && existsSync(dmDev) ? readTrimmed(dmDev) : null,
    });
  }
  return loops;
}

export interface PoolContext {
  name: string;
  kind: PoolUsage['kind'];
  info: DmDeviceInfo;
  majorMinor: string;
  lengthSectors: number;
  table: ThinPoolTable;
  status: ThinPoolStatus | null;
}

export interface LiveThin {
  lengthSectors: number;
  table: ThinTable;
  line: string;
  info: DmDeviceInfo;
}

const INFO_ARGS = ['info', '-c', '--noheadings', '--separator', DM_INFO_SEPARATOR, '-o', DM_INFO_FIELDS];

export function segmentLine(segment: DmSegment): string {
  return [segment.startSector, segment.lengthSectors, segment.target, ...segment.args].join(' ');
}

/** The container's live device, checked: exactly one thin target at 0 on our pool, with Docker's device id. */
export function liveThin(state: DmSnapshot, device: DockerThinDevice, pool: PoolContext): LiveThin | null {
  const info = state.infos.get(device.deviceName);
  const segments = state.tables.get(device.deviceName);
  if (!info || !segments) return null;
  const only = segments[0];
  if (segments.length !== 1 || !only || only.target !== 'thin' || only.startSector !== 0) {
    throw new Error(
      `${device.deviceName}: expected exactly one thin target, found ${segments.map((s) => s.target).join(',')}`,
    );
  }
  const table = parseThinTable(only);
  if (table.poolDevice !== pool.majorMinor) {
    throw new Error(
      `${device.deviceName}: thin target is on ${table.poolDevice}, not on pool ${pool.name} (${pool.majorMinor})`,
    );
  }
  if (table.deviceId !== device.deviceId) {
    throw new Error(
      `${device.deviceName}: live device id ${table.deviceId} differs from Docker's DeviceId ${device.deviceId}`,
    );
  }
  return { lengthSectors: only.lengthSectors, table, line: segmentLine(only), info };
}

export interface KernelSnapshot {
  snapshot: (withStatus: boolean) => Promise<DmSnapshot>;
  poolContext: (state: DmSnapshot) => PoolContext;
  rereadDevice: (deviceName: string) => Promise<{ info: DmDeviceInfo | undefined; line: string | null }>;
}

export function createKernelSnapshot(ctx: DmContext): KernelSnapshot {
  const { dmsetup, driverStatus, sysBlockDir } = ctx;
  /** Two or three commands, whatever the number of devices. */
  async function snapshot(withStatus: boolean): Promise<DmSnapshot> {
    const tables = parseDmsetupAllDevices(await dmsetup(['table']));
    const statuses = withStatus ? parseDmsetupAllDevices(await dmsetup(['status', '--noflush'])) : null;
    const infos = parseDmInfoColumns(await dmsetup(INFO_ARGS));
    return { tables, infos, statuses, loops: readLoops(sysBlockDir) };
  }

  function poolContext(state: DmSnapshot): PoolContext {
    const status = driverStatus();
    const name = status.poolName;
    const info = state.infos.get(name);
    const segments = state.tables.get(name);
    if (!info || !segments)
      throw new Error(`thin pool ${name} (docker info Pool Name) is not an active dm device`);
    if (segments.length !== 1 || segments[0]?.target !== 'thin-pool' || segments[0].startSector !== 0) {
      throw new Error(`device ${name} is not a single thin-pool target`);
    }
    const kind: PoolUsage['kind'] = info.uuid.startsWith('LVM-')
      ? 'thin-pool-lvm'
      : status.dataLoopFile
        ? 'thin-pool-loop'
        : 'thin-pool';
    const statusSegments = state.statuses?.get(name);
    return {
      name,
      kind,
      info,
      majorMinor: majorMinor(info),
      lengthSectors: segments[0].lengthSectors,
      table: parseThinPoolTable(segments[0]),
      status: statusSegments?.[0] ? parseThinPoolStatus(statusSegments[0]) : null,
    };
  }

  /** Re-reads a device after acting (two commands). */
  async function rereadDevice(
    deviceName: string,
  ): Promise<{ info: DmDeviceInfo | undefined; line: string | null }> {
    const state = await snapshot(false);
    const segments = state.tables.get(deviceName);
    return {
      info: state.infos.get(deviceName),
      line: segments && segments.length === 1 && segments[0] ? segmentLine(segments[0]) : null,
    };
  }

  return { snapshot, poolContext, rereadDevice };
}
