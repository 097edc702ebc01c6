/**
 * Docker's layer store on disk: which layer directory (the "mount id") holds a container's
 * writable layer. btrfs and overlay2 give no usable GraphDriver data for this (btrfs: null), but
 * Docker records it in `<dataRoot>/image/<driver>/layerdb/mounts/<containerId>/mount-id`.
 *
 * Everything read here comes from Docker and ends up in paths and commands, so it is validated:
 * the container id and the mount id must be 64 hex digits, the file is opened without following
 * a symlink, and every derived path must stay under the data root.
 */
import { constants as fsConstants } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { assertContainerId, isLayerHash } from '../docker/ids.js';

/** Storage drivers whose layer directories this module knows how to find. */
export type LayerDriver = 'btrfs' | 'overlay2';

/** A data root must be an absolute, normalised path (it comes from `docker info`). */
export function assertDataRoot(dataRoot: unknown): string {
  if (typeof dataRoot !== 'string' || !path.isAbsolute(dataRoot) || path.normalize(dataRoot) !== dataRoot) {
    throw new Error(`Docker data root is not an absolute normalised path: ${JSON.stringify(dataRoot)}`);
  }
  if (dataRoot.length > 1 && dataRoot.endsWith('/')) {
    throw new Error(`Docker data root ends with a slash: ${JSON.stringify(dataRoot)}`);
  }
  return dataRoot;
}

/** Joins parts under the data root and refuses any result that escapes it. */
export function pathUnderDataRoot(dataRoot: string, ...parts: string[]): string {
  const joined = path.join(dataRoot, ...parts);
  const prefix = dataRoot === '/' ? '/' : `${dataRoot}/`;
  if (!joined.startsWith(prefix)) {
    throw new Error(`path ${JSON.stringify(joined)} escapes the data root ${dataRoot}`);
  }
  return joined;
}

export function mountIdFile(dataRoot: string, driver: LayerDriver, containerId: string): string {
  return pathUnderDataRoot(
    dataRoot,
    'image',
    driver,
    'layerdb',
    'mounts',
    assertContainerId(containerId),
    'mount-id',
  );
}

/** Docker writes the mount id as exactly 64 hex digits, no newline. Anything else is refused. */
export function parseMountId(content: string, source: string): string {
  if (!isLayerHash(content)) {
    const shown: string = content;
    throw new Error(
      `${source} does not hold a layer id (64 hex digits): ${JSON.stringify(shown.slice(0, 80))}`,
    );
  }
  return content;
}

/**
 * Reads a container's mount id. Throws an Error with code 'ENOENT' when the container has no
 * layer (removed meanwhile), and a plain Error when the content is not a layer id.
 */
export async function readMountId(
  dataRoot: string,
  driver: LayerDriver,
  containerId: string,
): Promise<string> {
  const file = mountIdFile(dataRoot, driver, containerId);
  // O_NOFOLLOW: a symlink planted in the layer store must not redirect the read.
  const handle = await open(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  try {
    // a mount id is 64 bytes; reading a little more lets a longer file fail validation
    const buffer = Buffer.alloc(128);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return parseMountId(buffer.subarray(0, bytesRead).toString('utf8'), file);
  } finally {
    await handle.close();
  }
}
