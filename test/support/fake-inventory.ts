/**
 * A fake {@link Inventory} for component tests: containers are added and changed by the test, and
 * Docker events are emitted by hand (`emitStart`, `emitStop`, `emitDestroy`).
 */
import type { Inventory, InventoryListener } from '../../src/docker/inventory-port.js';
import type { ContainerInfo } from '../../src/docker/model.js';

let nextId = 1;

/** A running container with a valid 64-hex id; override any field. */
export function fakeContainer(overrides: Partial<ContainerInfo> = {}): ContainerInfo {
  const id = overrides.id ?? (nextId++).toString(16).padStart(64, '0');
  return {
    id,
    name: overrides.name ?? `c-${id.slice(-6)}`,
    image: 'busybox:latest',
    labels: {},
    state: 'running',
    running: true,
    pid: 100,
    storageDriver: 'btrfs',
    graphDriverData: {},
    storageOptSizeBytes: null,
    ...overrides,
  };
}

export class FakeInventory implements Inventory {
  private readonly containers = new Map<string, ContainerInfo>();
  private readonly listeners = new Set<InventoryListener>();
  streamConnected = true;
  reconnects = 0;

  constructor(containers: readonly ContainerInfo[] = []) {
    for (const container of containers) this.containers.set(container.id, container);
  }

  list(): readonly ContainerInfo[] {
    return [...this.containers.values()];
  }

  get(id: string): ContainerInfo | undefined {
    return this.containers.get(id);
  }

  find(idOrName: string): ContainerInfo | undefined {
    const exact = this.containers.get(idOrName);
    if (exact) return exact;
    const byName = [...this.containers.values()].find((container) => container.name === idOrName);
    if (byName) return byName;
    const byPrefix = [...this.containers.values()].filter((container) => container.id.startsWith(idOrName));
    return byPrefix.length === 1 ? byPrefix[0] : undefined;
  }

  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  async resync(): Promise<void> {}

  subscribe(listener: InventoryListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  /** Adds or replaces a container without an event. */
  put(container: ContainerInfo): void {
    this.containers.set(container.id, container);
  }

  emitStart(container: ContainerInfo): void {
    const running = { ...container, running: true, state: 'running' as const };
    this.containers.set(container.id, running);
    for (const listener of this.listeners) listener.onStart?.(running);
  }

  emitStop(id: string): void {
    const container = this.containers.get(id);
    if (!container) return;
    const stopped = { ...container, running: false, state: 'exited' as const, pid: 0 };
    this.containers.set(id, stopped);
    for (const listener of this.listeners) listener.onStop?.(stopped);
  }

  emitDestroy(id: string): void {
    this.containers.delete(id);
    for (const listener of this.listeners) listener.onDestroy?.(id);
  }
}
