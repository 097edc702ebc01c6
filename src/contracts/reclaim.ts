/**
 * What the reclaim ladder sees of Docker (facts mapped from the API by src/docker/prune-mapping.ts) and
 * what it reports. Types only: the selection (./select.ts) is pure over them, the effects
 * (./ladder.ts) go through {@link ReclaimDockerApi}.
 */

/** The rungs of the ladder, in the order a default configuration climbs them. */
export const RECLAIM_KINDS = [
  'build-cache',
  'dangling-images',
  'unused-images',
  'stopped-containers',
  'volumes',
] as const;
export type ReclaimKind = (typeof RECLAIM_KINDS)[number];

/** `key: value` must be present; value `*` matches any value. */
export type LabelFilter = Readonly<Record<string, string>>;

export type ReclaimRung =
  | { kind: 'build-cache'; unusedForMs?: number }
  | { kind: 'dangling-images'; olderThanMs?: number; labels?: LabelFilter; exceptLabels?: LabelFilter }
  | { kind: 'unused-images'; olderThanMs: number; labels?: LabelFilter; exceptLabels?: LabelFilter }
  | { kind: 'stopped-containers'; olderThanMs: number; labels?: LabelFilter; exceptLabels?: LabelFilter }
  | { kind: 'volumes'; named: boolean; labels?: LabelFilter; exceptLabels?: LabelFilter };

export interface ImageFacts {
  /** `sha256:<64 hex>`. */
  id: string;
  parentId: string | null;
  /** `repo:tag` references, without `<none>:<none>`. */
  repoTags: string[];
  createdAtMs: number;
  /** Docker's size of the image (its layers, shared ones included): an upper bound of what it frees. */
  sizeBytes: number;
  labels: Record<string, string>;
}

export type ContainerState = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

export interface ContainerFacts {
  id: string;
  name: string;
  state: ContainerState;
  createdAtMs: number;
  /** The image the container was created from (`sha256:...`). */
  imageId: string;
  labels: Record<string, string>;
  /** Names of the volumes it mounts. */
  volumeNames: string[];
}

export interface BuildCacheFacts {
  id: string;
  inUse: boolean;
  sizeBytes: number;
  lastUsedAtMs: number | null;
  description: string;
}

export interface VolumeFacts {
  name: string;
  labels: Record<string, string>;
  createdAtMs: number | null;
}

export interface ReclaimInventory {
  images: ImageFacts[];
  containers: ContainerFacts[];
  /** Null when no build-cache rung needs it (listing it costs a /system/df). */
  buildCache: BuildCacheFacts[] | null;
  /** Null when no volume rung needs it. */
  volumes: VolumeFacts[] | null;
}

/** One thing a rung removes (or, in a dry run, would remove). */
export interface ReclaimItem {
  kind: ReclaimKind;
  /** Image id, container id, build-cache record id, volume name. */
  id: string;
  /** For people: image tags, container name, cache description. */
  name: string;
  /** Docker's size of the item, null when Docker does not say (containers, volumes). */
  sizeBytes: number | null;
  /** The image references to delete (unused images are removed tag by tag, as `docker image prune -a`). */
  references?: string[];
}

/** The Docker calls the ladder makes: all but the listings refuse what is in use (no force). */
export interface ReclaimDockerApi {
  listImagesForReclaim(): Promise<ImageFacts[]>;
  listContainersForReclaim(): Promise<ContainerFacts[]>;
  /** `GET /system/df?type=build-cache` (engines before 23 ignore `type` and size everything). */
  listBuildCache(): Promise<BuildCacheFacts[]>;
  listVolumesForReclaim(): Promise<VolumeFacts[]>;
  /** `POST /build/prune?all=1` (with `unused-for`): every cache record not in use. */
  pruneBuildCache(options: {
    unusedForMs?: number;
  }): Promise<{ deletedIds: string[]; reclaimedBytes: number }>;
  /** `DELETE /images/{reference}` without force: Docker refuses an image a container uses. */
  removeImage(reference: string): Promise<void>;
  /** `DELETE /containers/{id}` without force and without its volumes: a running one is refused. */
  removeContainer(id: string): Promise<void>;
  /** `DELETE /volumes/{name}` without force: a volume in use is refused. */
  removeVolume(name: string): Promise<void>;
}
