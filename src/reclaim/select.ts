/**
 * What each rung of the reclaim ladder removes: a pure function of (rung, inventory, now). The
 * dry run prints exactly this, and the real run removes exactly this (read afresh before each
 * rung), so the two list the same items when nothing changed in between.
 *
 * Safety is decided here first and enforced by Docker second (every removal is without force):
 * never an image any container (running or stopped) was created from, never an image another
 * image is built on, never a running, paused or restarting container, never a volume a container
 * mounts, never a named volume unless the rung says `named: true`.
 */
import type {
  ContainerFacts,
  ImageFacts,
  LabelFilter,
  ReclaimInventory,
  ReclaimItem,
  ReclaimRung,
} from '../contracts/reclaim.js';

/** Container states the ladder may remove (`docker container prune` removes the same). */
const STOPPED_STATES: ReadonlySet<string> = new Set(['created', 'exited', 'dead']);

/** An anonymous volume is named by 64 hex digits (Docker generates the name). */
const ANONYMOUS_VOLUME = /^[0-9a-f]{64}$/;

export function labelsMatch(
  labels: Readonly<Record<string, string>>,
  filter: LabelFilter | undefined,
): boolean {
  if (!filter) return true;
  return Object.entries(filter).every(
    ([key, value]) => key in labels && (value === '*' || labels[key] === value),
  );
}

function labelsExcluded(labels: Readonly<Record<string, string>>, filter: LabelFilter | undefined): boolean {
  if (!filter) return false;
  return Object.entries(filter).some(
    ([key, value]) => key in labels && (value === '*' || labels[key] === value),
  );
}

function passesLabels(
  labels: Readonly<Record<string, string>>,
  rung: { labels?: LabelFilter; exceptLabels?: LabelFilter },
): boolean {
  return labelsMatch(labels, rung.labels) && !labelsExcluded(labels, rung.exceptLabels);
}

function oldEnough(createdAtMs: number, olderThanMs: number | undefined, nowMs: number): boolean {
  return olderThanMs === undefined || createdAtMs <= nowMs - olderThanMs;
}

/** Images that must stay: created-from by a container, or the parent of another image. */
function protectedImageIds(inventory: ReclaimInventory): Set<string> {
  const ids = new Set<string>();
  for (const container of inventory.containers) ids.add(container.imageId);
  for (const image of inventory.images) if (image.parentId) ids.add(image.parentId);
  return ids;
}

const byAgeThenId = <T extends { createdAtMs: number; id: string }>(a: T, b: T): number =>
  a.createdAtMs - b.createdAtMs || a.id.localeCompare(b.id);

function imageItem(image: ImageFacts, kind: 'dangling-images' | 'unused-images'): ReclaimItem {
  return {
    kind,
    id: image.id,
    name: image.repoTags.length > 0 ? image.repoTags.join(', ') : `<none> (${image.id.slice(7, 19)})`,
    sizeBytes: image.sizeBytes,
    ...(kind === 'unused-images' ? { references: [...image.repoTags] } : {}),
  };
}

function containerItem(container: ContainerFacts): ReclaimItem {
  return { kind: 'stopped-containers', id: container.id, name: container.name, sizeBytes: null };
}

/** The items `rung` removes from `inventory` at `nowMs`, oldest first. */
export function selectRung(rung: ReclaimRung, inventory: ReclaimInventory, nowMs: number): ReclaimItem[] {
  switch (rung.kind) {
    case 'build-cache': {
      const records = inventory.buildCache ?? [];
      return records
        .filter((record) => !record.inUse)
        .filter(
          (record) =>
            rung.unusedForMs === undefined ||
            (record.lastUsedAtMs !== null && record.lastUsedAtMs <= nowMs - rung.unusedForMs),
        )
        .sort((a, b) => (a.lastUsedAtMs ?? 0) - (b.lastUsedAtMs ?? 0) || a.id.localeCompare(b.id))
        .map((record) => ({
          kind: 'build-cache',
          id: record.id,
          name: record.description || record.id,
          sizeBytes: record.sizeBytes,
        }));
    }
    case 'dangling-images':
    case 'unused-images': {
      const keep = protectedImageIds(inventory);
      const dangling = rung.kind === 'dangling-images';
      return inventory.images
        .filter((image) => !keep.has(image.id))
        .filter((image) => (image.repoTags.length === 0) === dangling)
        .filter((image) => oldEnough(image.createdAtMs, rung.olderThanMs, nowMs))
        .filter((image) => passesLabels(image.labels, rung))
        .sort(byAgeThenId)
        .map((image) => imageItem(image, rung.kind));
    }
    case 'stopped-containers':
      return inventory.containers
        .filter((container) => STOPPED_STATES.has(container.state))
        .filter((container) => oldEnough(container.createdAtMs, rung.olderThanMs, nowMs))
        .filter((container) => passesLabels(container.labels, rung))
        .sort(byAgeThenId)
        .map(containerItem);
    case 'volumes': {
      const mounted = new Set(inventory.containers.flatMap((container) => container.volumeNames));
      return (inventory.volumes ?? [])
        .filter((volume) => !mounted.has(volume.name))
        .filter((volume) => rung.named || ANONYMOUS_VOLUME.test(volume.name))
        .filter((volume) => passesLabels(volume.labels, rung))
        .sort((a, b) => (a.createdAtMs ?? 0) - (b.createdAtMs ?? 0) || a.name.localeCompare(b.name))
        .map((volume) => ({ kind: 'volumes', id: volume.name, name: volume.name, sizeBytes: null }));
    }
  }
}

/**
 * The inventory after `items` are gone: what a dry run shows the next rung (stopped containers
 * removed first free their images for a later unused-images rung).
 */
export function withoutItems(inventory: ReclaimInventory, items: readonly ReclaimItem[]): ReclaimInventory {
  const gone = new Set(items.map((item) => `${item.kind}\n${item.id}`));
  const isImageGone = (id: string) => gone.has(`dangling-images\n${id}`) || gone.has(`unused-images\n${id}`);
  return {
    images: inventory.images.filter((image) => !isImageGone(image.id)),
    containers: inventory.containers.filter((container) => !gone.has(`stopped-containers\n${container.id}`)),
    buildCache: inventory.buildCache?.filter((record) => !gone.has(`build-cache\n${record.id}`)) ?? null,
    volumes: inventory.volumes?.filter((volume) => !gone.has(`volumes\n${volume.name}`)) ?? null,
  };
}

/** Every rung's items when the whole ladder is climbed on `inventory` (the dry run's plan). */
export function planLadder(
  rungs: readonly ReclaimRung[],
  inventory: ReclaimInventory,
  nowMs: number,
): { rung: ReclaimRung; items: ReclaimItem[] }[] {
  const plan: { rung: ReclaimRung; items: ReclaimItem[] }[] = [];
  let current = inventory;
  for (const rung of rungs) {
    const items = selectRung(rung, current, nowMs);
    plan.push({ rung, items });
    current = withoutItems(current, items);
  }
  return plan;
}

/** Docker's sizes of `items` added up (items of unknown size count 0). */
export function knownBytes(items: readonly ReclaimItem[]): number {
  return items.reduce((sum, item) => sum + (item.sizeBytes ?? 0), 0);
}
