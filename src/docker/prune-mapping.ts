/**
 * Docker API answers (image, container, volume lists, /system/df build cache, /build/prune) into
 * the reclaim ladder's facts. Pure and defensive: an entry without a valid id is dropped, never
 * guessed at, since the ladder deletes by these ids.
 */
import { isContainerId } from './ids.js';
import { CONTAINER_STATES } from './mapping.js';
import type {
  BuildCacheFacts,
  ContainerFacts,
  ContainerState,
  ImageFacts,
  VolumeFacts,
} from '../contracts/reclaim.js';

const IMAGE_ID = /^sha256:[0-9a-f]{64}$/;
/** A build-cache record id (BuildKit: lower-case base36). */
const CACHE_ID = /^[a-z0-9]{1,128}$/;
/** A volume name as Docker allows it. */
const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$/;
/** An image reference: no whitespace or control characters, not absurdly long. */
const REFERENCE = {
  test: (value: string) => value.length >= 1 && value.length <= 512 && !/[\s\p{Cc}]/u.test(value),
};

type Raw = Record<string, unknown>;
const isRecord = (value: unknown): value is Raw =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function asArray(value: unknown, what: string): unknown[] {
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value)) throw new Error(`docker ${what}: unexpected answer (not an array)`);
  return value;
}

function stringLabels(value: unknown): Record<string, string> {
  const labels: Record<string, string> = {};
  if (!isRecord(value)) return labels;
  for (const [key, label] of Object.entries(value)) if (typeof label === 'string') labels[key] = label;
  return labels;
}

const seconds = (value: unknown) => (typeof value === 'number' && Number.isFinite(value) ? value * 1000 : 0);

function isoMs(value: unknown): number | null {
  if (typeof value !== 'string') return null;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms : null;
}

export function mapImageList(raw: unknown): ImageFacts[] {
  const images: ImageFacts[] = [];
  for (const entry of asArray(raw, 'image list')) {
    if (!isRecord(entry) || typeof entry.Id !== 'string' || !IMAGE_ID.test(entry.Id)) continue;
    const tags = asArray(entry.RepoTags, 'image tags').filter(
      (tag): tag is string => typeof tag === 'string' && tag !== '<none>:<none>' && REFERENCE.test(tag),
    );
    const parent =
      typeof entry.ParentId === 'string' && IMAGE_ID.test(entry.ParentId) ? entry.ParentId : null;
    images.push({
      id: entry.Id,
      parentId: parent,
      repoTags: tags,
      createdAtMs: seconds(entry.Created),
      sizeBytes: typeof entry.Size === 'number' && entry.Size >= 0 ? entry.Size : 0,
      labels: stringLabels(entry.Labels),
    });
  }
  return images;
}

export function mapContainerList(raw: unknown): ContainerFacts[] {
  const containers: ContainerFacts[] = [];
  for (const entry of asArray(raw, 'container list')) {
    if (!isRecord(entry) || !isContainerId(entry.Id)) continue;
    const state = typeof entry.State === 'string' && CONTAINER_STATES.has(entry.State) ? entry.State : null;
    const imageId = typeof entry.ImageID === 'string' ? entry.ImageID : '';
    // a container whose state or image Docker does not say is kept (and its image with it)
    const names = asArray(entry.Names, 'container names').filter(
      (name): name is string => typeof name === 'string',
    );
    const volumeNames = asArray(entry.Mounts, 'container mounts')
      .filter(isRecord)
      .filter((mount) => mount.Type === 'volume' && typeof mount.Name === 'string')
      .map((mount) => mount.Name as string);
    containers.push({
      id: entry.Id,
      name: (names[0] ?? entry.Id.slice(0, 12)).replace(/^\//, ''),
      state: (state ?? 'running') as ContainerState,
      createdAtMs: seconds(entry.Created),
      imageId,
      labels: stringLabels(entry.Labels),
      volumeNames,
    });
  }
  return containers;
}

/** `GET /system/df` (its `BuildCache`). */
export function mapBuildCache(raw: unknown): BuildCacheFacts[] {
  if (!isRecord(raw)) throw new Error('docker system df: unexpected answer (not an object)');
  const records: BuildCacheFacts[] = [];
  for (const entry of asArray(raw.BuildCache, 'build cache')) {
    if (!isRecord(entry) || typeof entry.ID !== 'string' || !CACHE_ID.test(entry.ID)) continue;
    records.push({
      id: entry.ID,
      // a record whose use Docker does not say counts as in use
      inUse: entry.InUse !== false,
      sizeBytes: typeof entry.Size === 'number' && entry.Size >= 0 ? entry.Size : 0,
      lastUsedAtMs: isoMs(entry.LastUsedAt) ?? isoMs(entry.CreatedAt),
      description: typeof entry.Description === 'string' ? entry.Description : '',
    });
  }
  return records;
}

export function mapVolumeList(raw: unknown): VolumeFacts[] {
  if (!isRecord(raw)) throw new Error('docker volume list: unexpected answer (not an object)');
  const volumes: VolumeFacts[] = [];
  for (const entry of asArray(raw.Volumes, 'volume list')) {
    if (!isRecord(entry) || typeof entry.Name !== 'string' || !VOLUME_NAME.test(entry.Name)) continue;
    volumes.push({
      name: entry.Name,
      labels: stringLabels(entry.Labels),
      createdAtMs: isoMs(entry.CreatedAt),
    });
  }
  return volumes;
}

export function mapBuildPrune(raw: unknown): { deletedIds: string[]; reclaimedBytes: number } {
  if (!isRecord(raw)) throw new Error('docker build prune: unexpected answer (not an object)');
  return {
    deletedIds: asArray(raw.CachesDeleted, 'build prune').filter(
      (id): id is string => typeof id === 'string',
    ),
    reclaimedBytes:
      typeof raw.SpaceReclaimed === 'number' && raw.SpaceReclaimed >= 0 ? raw.SpaceReclaimed : 0,
  };
}

/** Checks a reference before it goes into a DELETE path (ids, tags, names from Docker itself). */
export function assertRemovable(kind: 'image' | 'container' | 'volume', reference: string): void {
  const ok =
    kind === 'image'
      ? IMAGE_ID.test(reference) || REFERENCE.test(reference)
      : kind === 'container'
        ? isContainerId(reference)
        : VOLUME_NAME.test(reference);
  if (!ok)
    throw new Error(`refusing to remove ${kind} ${JSON.stringify(reference)}: not a valid ${kind} reference`);
}
