/**
 * Identifiers that come from Docker and end up in paths or command arguments are validated here
 * before use: strict patterns first, live state second (the caller checks the kernel or Docker).
 */

const CONTAINER_ID = /^[0-9a-f]{64}$/;
const DM_DEVICE_NAME = /^docker-\d+:\d+-\d+-[0-9a-f]{64}(?:-init)?$/;
const HEX_ID = /^[0-9a-f]{64}$/;
/** Docker's container name rule ([a-zA-Z0-9][a-zA-Z0-9_.-]+), used only for display and matching. */
const CONTAINER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function isContainerId(value: unknown): value is string {
  return typeof value === 'string' && CONTAINER_ID.test(value);
}

export function assertContainerId(value: unknown): string {
  if (!isContainerId(value)) throw new Error(`not a Docker container id: ${JSON.stringify(value)}`);
  return value;
}

/** devicemapper thin device names Docker makes: `docker-<maj>:<min>-<inode>-<hash>`. */
export function isDockerDmDeviceName(value: unknown): value is string {
  return typeof value === 'string' && DM_DEVICE_NAME.test(value);
}

/** Layer / mount hashes used as directory names under the data root (btrfs subvolumes, dm mnt). */
export function isLayerHash(value: unknown): value is string {
  return typeof value === 'string' && HEX_ID.test(value);
}

export function isContainerName(value: unknown): value is string {
  return typeof value === 'string' && CONTAINER_NAME.test(value);
}

/** A non-negative integer that fits in a JS number exactly (device ids, qgroup ids, project ids). */
export function isSafeUint(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Longest container reference the CLI sends on (Docker sets no limit; real names are far shorter). */
const MAX_REFERENCE_LENGTH = 255;

/**
 * What a user may type to name a container (`grow <container>`): a name (with or without
 * Docker's leading slash) or a full or abbreviated hex id. Checked before anything is sent to
 * Docker or the agent, so a hostile string never reaches either.
 */
export function isContainerReference(value: unknown): value is string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_REFERENCE_LENGTH) return false;
  return CONTAINER_NAME.test(value.startsWith('/') ? value.slice(1) : value);
}
