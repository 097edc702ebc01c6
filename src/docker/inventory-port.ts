/**
 * What the rest of the agent needs from the Docker inventory (implemented by
 * src/docker/inventory.ts over dockerode; faked in component tests).
 */
import type { ContainerEvent, ContainerInfo, DockerInfo } from './model.js';

export interface InventoryListener {
  /** A container started (or was found running by a resync): evaluate it at once. */
  onStart?(container: ContainerInfo): void;
  /** A container stopped (die/stop): devicemapper re-creates grown devices here. */
  onStop?(container: ContainerInfo): void;
  /** A container was destroyed: forget it, remove its metric series. */
  onDestroy?(containerId: string): void;
  /** Any event, after the inventory applied it. */
  onEvent?(event: ContainerEvent): void;
  /** The event stream connected (true) or was lost (false). */
  onStreamState?(connected: boolean): void;
  /** A full resync finished. */
  onResync?(containers: readonly ContainerInfo[]): void;
}

export interface Inventory {
  /** Every known container (running or not), from the last resync plus events since. */
  list(): readonly ContainerInfo[];
  get(id: string): ContainerInfo | undefined;
  /** Finds a container by full id, unique id prefix, or name. */
  find(idOrName: string): ContainerInfo | undefined;
  /** Starts the event stream and the periodic resync; resolves after the first resync. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Forces a full resync now. */
  resync(): Promise<void>;
  subscribe(listener: InventoryListener): () => void;
  /**
   * Asks Docker now whether the container exists (one inspect); a container found gone is
   * forgotten at once (listeners hear onDestroy). `unknown` when Docker did not answer.
   * Optional: ports without it are asked through `get`.
   */
  recheck?(id: string): Promise<'present' | 'gone' | 'unknown'>;
  readonly streamConnected: boolean;
  readonly reconnects: number;
}

/** The daemon-facing port under the inventory (also used by `doctor` and storage detection). */
export interface DockerApi {
  info(): Promise<DockerInfo>;
  /** Ids of all containers, running or not (never size=true). */
  listContainerIds(): Promise<string[]>;
  /** Null when the container no longer exists. */
  inspectContainer(id: string): Promise<ContainerInfo | null>;
  ping(): Promise<boolean>;
}
