/**
 * Pure mapping from raw Docker Engine API JSON (container inspect, /info, /version) to the agent's
 * typed model. Every field is read defensively: Docker versions differ, and fields the agent does
 * not understand must never crash it. Kept apart from src/docker/client.ts (the only dockerode
 * importer) so it can be tested on JSON recorded from a real daemon (test/fixtures/docker/).
 */
import { errorMessage } from '../util/errors.js';
import { parseSizeBytes } from '../util/units.js';
import { isContainerId, isContainerName } from './ids.js';
import type { ContainerInfo, ContainerState, DockerInfo } from './model.js';

/** Raw Docker data that cannot be turned into the model (for instance an inspect without a valid Id). */
export class DockerDataError extends Error {
  override readonly name = 'DockerDataError';
}

type JsonRecord = Record<string, unknown>;

function asRecord(value: unknown): JsonRecord {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as JsonRecord) : {};
}

function asString(value: unknown, fallback = ''): string {
  return typeof value === 'string' ? value : fallback;
}

/** Keeps only string values: labels and GraphDriver.Data are string maps in every Docker version. */
function stringMap(value: unknown): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [key, entry] of Object.entries(asRecord(value))) {
    if (typeof entry === 'string') result[key] = entry;
  }
  return result;
}

/** Docker's container states (inspect State.Status, list State). */
export const CONTAINER_STATES: ReadonlySet<string> = new Set<ContainerState>([
  'created',
  'running',
  'paused',
  'restarting',
  'removing',
  'exited',
  'dead',
]);

/**
 * Parses HostConfig.StorageOpt.size as Docker accepts it (`64M`, `10G`, `10GiB`, `1073741824`).
 * Returns null when absent; throws a {@link DockerDataError} when present but unreadable, because a
 * limit we cannot read must not be mistaken for "no limit".
 */
export function parseStorageOptSizeBytes(storageOpt: unknown): number | null {
  // The graph drivers match the key case-insensitively (`--storage-opt Size=10G` works) and keep
  // it as typed in HostConfig.StorageOpt.
  const entry = Object.entries(asRecord(storageOpt)).find(([key]) => key.toLowerCase() === 'size');
  const size = entry?.[1];
  if (size === undefined || size === null || size === '') return null;
  if (typeof size !== 'string')
    throw new DockerDataError(`StorageOpt.size is not a string: ${JSON.stringify(size)}`);
  try {
    return parseSizeBytes(size);
  } catch (error) {
    throw new DockerDataError(`StorageOpt.size unreadable: ${errorMessage(error)}`);
  }
}

/**
 * Docker's name rule holds for every real daemon; a name that breaks it (a garbage or hostile
 * daemon: newlines, escapes) never reaches status, logs or metric labels: the short id stands in.
 */
function displayName(name: string, id: string): string {
  return isContainerName(name) ? name : id.slice(0, 12);
}

/** Maps `GET /containers/{id}/json` (never with size=true) to a {@link ContainerInfo}. */
export function mapContainerInspect(raw: unknown): ContainerInfo {
  const root = asRecord(raw);
  const id = root['Id'];
  if (!isContainerId(id))
    throw new DockerDataError(`container inspect without a valid Id: ${JSON.stringify(id)}`);
  const state = asRecord(root['State']);
  const config = asRecord(root['Config']);
  const graphDriver = asRecord(root['GraphDriver']);
  const hostConfig = asRecord(root['HostConfig']);
  const running = state['Running'] === true;
  const status = asString(state['Status']);
  const pid = state['Pid'];
  return {
    id,
    name: displayName(asString(root['Name']).replace(/^\//, ''), id),
    image: asString(config['Image']),
    labels: stringMap(config['Labels']),
    state: CONTAINER_STATES.has(status) ? (status as ContainerState) : running ? 'running' : 'exited',
    running,
    pid: running && typeof pid === 'number' && Number.isSafeInteger(pid) && pid > 0 ? pid : 0,
    // API >= 1.52 under the containerd image store: no GraphDriver, Storage.RootFS.Snapshot.Name instead
    storageDriver: asString(
      graphDriver['Name'],
      asString(
        asRecord(asRecord(asRecord(root['Storage'])['RootFS'])['Snapshot'])['Name'],
        asString(root['Driver']),
      ),
    ),
    graphDriverData: stringMap(graphDriver['Data']),
    storageOptSizeBytes: parseStorageOptSizeBytes(hostConfig['StorageOpt']),
  };
}

/** DriverStatus is a list of [key, value] pairs; anything else in it is skipped. */
function driverStatusPairs(value: unknown): Array<readonly [string, string]> {
  if (!Array.isArray(value)) return [];
  const pairs: Array<readonly [string, string]> = [];
  for (const entry of value) {
    if (Array.isArray(entry) && typeof entry[0] === 'string' && typeof entry[1] === 'string') {
      pairs.push([entry[0], entry[1]] as const);
    }
  }
  return pairs;
}

/**
 * Maps `GET /info` and `GET /version` to a {@link DockerInfo}. The API version only appears in
 * /version; when that is unavailable the field is empty.
 */
export function mapDockerInfo(rawInfo: unknown, rawVersion: unknown = {}): DockerInfo {
  const info = asRecord(rawInfo);
  const version = asRecord(rawVersion);
  const running = info['ContainersRunning'];
  return {
    serverVersion: asString(info['ServerVersion'], asString(version['Version'])),
    apiVersion: asString(version['ApiVersion']),
    driver: asString(info['Driver']),
    driverStatus: driverStatusPairs(info['DriverStatus']),
    dockerRootDir: asString(info['DockerRootDir']),
    liveRestoreEnabled: info['LiveRestoreEnabled'] === true,
    containersRunning:
      typeof running === 'number' && Number.isSafeInteger(running) && running >= 0 ? running : 0,
  };
}
