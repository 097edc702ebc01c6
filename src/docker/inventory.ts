/**
 * The Docker inventory: every container the daemon knows, kept current by events (hints) and by
 * full resyncs (the truth): at start, after every reconnect of the event stream and on a timer.
 * A resync diffs against what listeners were told, so a container that started, stopped or
 * vanished while the stream was down is reported all the same.
 *
 * Events and resyncs run one at a time through a single queue: a resync that listed the daemon
 * before a `destroy` can never re-add the container after the event removed it.
 */
import type { Logger } from '../log/logger.js';
import { errorMessage } from '../util/errors.js';
import {
  EventStream,
  actionVerb,
  type DockerEventSource,
  type EventStreamOptions,
  type EventStreamStats,
} from './events.js';
import type { DockerApi, Inventory, InventoryListener } from './inventory-port.js';
import { DockerApiError } from './errors.js';
import { DockerDataError } from './mapping.js';
import type { ContainerEvent, ContainerInfo } from './model.js';
import { backoffDelayMs } from '../util/backoff.js';
import { realTimers, type Timers } from '../util/clock.js';

/** Actions after which the container is inspected again; the rest (exec_*, health_status...) are passed on. */
const REINSPECT_VERBS: ReadonlySet<string> = new Set([
  'create',
  'start',
  'restart',
  'die',
  'stop',
  'pause',
  'unpause',
  'rename',
  'update',
  'oom',
]);
const RESYNC_RETRY_INITIAL_MS = 1000;
const RESYNC_RETRY_MAX_MS = 30_000;
const START_VERBS: ReadonlySet<string> = new Set(['start', 'restart', 'unpause']);
const STOP_VERBS: ReadonlySet<string> = new Set(['die', 'stop']);
/**
 * The container is gone. Podman's Docker-compatible API (5.x) reports a removal as `remove`, never
 * `destroy` (test/fixtures/podman/events-stream.jsonl); Docker has no container action `remove`.
 */
const DESTROY_VERBS: ReadonlySet<string> = new Set(['destroy', 'remove']);

export interface DockerInventoryOptions {
  api: DockerApi;
  /** Where events come from (usually the same DockerClient as `api`). */
  events: DockerEventSource;
  logger: Logger;
  /** Full resync period, in addition to the resync after every (re)connect (config `resyncInterval`). */
  resyncIntervalMs: number;
  /** Inspects running at once during a resync. */
  inspectConcurrency?: number;
  /** Events waiting to be applied beyond this are dropped and replaced by one resync. */
  maxPendingEvents?: number;
  /** Timers of the periodic resync and its retry (tests drive them; default: the real ones). */
  timers?: Timers;
  /** Backoff, jitter, clock and timers of the event stream (tests). */
  eventStream?: Partial<
    Omit<EventStreamOptions, 'source' | 'logger' | 'onEvent' | 'onConnected' | 'onDisconnected'>
  >;
}

export interface InventoryStats {
  resyncs: number;
  resyncFailures: number;
  lastResyncDurationMs: number | null;
  eventsApplied: number;
  eventsDroppedQueueFull: number;
  stream: Readonly<EventStreamStats>;
}

type WorkItem = { kind: 'event'; event: ContainerEvent } | { kind: 'resync' };

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: unknown) => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A resync nobody awaits must not become an unhandled rejection; awaiting callers still see it.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/** Runs `work` over `items` with at most `limit` in flight; results keep the input order. */
async function mapWithConcurrency<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

export class DockerInventory implements Inventory {
  private containers = new Map<string, ContainerInfo>();
  /** Ids listeners were told are running (onStart sent, no onStop since). */
  private readonly runningNotified = new Set<string>();
  private readonly listeners = new Set<InventoryListener>();
  private readonly queue: WorkItem[] = [];
  private draining: Promise<void> | null = null;
  /** The resync waiting in the queue (not yet started), shared by everyone who asks for one. */
  private queuedResync: Deferred | null = null;
  private resyncTimer: unknown = null;
  /** A retry after a failed resync, sooner than the periodic one (the daemon may still be starting). */
  private retryTimer: unknown = null;
  private failedResyncsInRow = 0;
  private running = false;
  private readonly stream: EventStream;
  private readonly inspectConcurrency: number;
  private readonly maxPendingEvents: number;
  private readonly counters = {
    resyncs: 0,
    resyncFailures: 0,
    lastResyncDurationMs: null as number | null,
    eventsApplied: 0,
    eventsDroppedQueueFull: 0,
  };

  private readonly timers: Timers;

  constructor(private readonly options: DockerInventoryOptions) {
    this.timers = options.timers ?? realTimers;
    this.inspectConcurrency = options.inspectConcurrency ?? 8;
    this.maxPendingEvents = options.maxPendingEvents ?? 10_000;
    this.stream = new EventStream({
      ...options.eventStream,
      source: options.events,
      logger: options.logger,
      onEvent: (event) => this.enqueueEvent(event),
      onConnected: () => {
        this.emit('onStreamState', (listener) => listener.onStreamState?.(true));
        // Events missed while disconnected (or beyond the daemon's 256-event buffer) are recovered here.
        this.resync().catch((error: unknown) =>
          logQuietDuringOutage(options.logger, error, 'docker resync after reconnect failed'),
        );
      },
      onDisconnected: () => this.emit('onStreamState', (listener) => listener.onStreamState?.(false)),
    });
  }

  get streamConnected(): boolean {
    return this.stream.connected;
  }

  get reconnects(): number {
    return this.stream.reconnects;
  }

  get stats(): InventoryStats {
    return { ...this.counters, stream: this.stream.stats };
  }

  /** Why the event stream last ended (for logs and `status`), null before it ever did. */
  get lastDisconnectReason(): string | null {
    return this.stream.lastDisconnectReason;
  }

  list(): readonly ContainerInfo[] {
    return [...this.containers.values()];
  }

  get(id: string): ContainerInfo | undefined {
    return this.containers.get(id);
  }

  /** Full id first, then name (with or without the leading slash), then a unique id prefix of 4+ hex digits. */
  find(idOrName: string): ContainerInfo | undefined {
    const byId = this.containers.get(idOrName);
    if (byId) return byId;
    const name = idOrName.replace(/^\//, '');
    for (const container of this.containers.values()) {
      if (container.name === name) return container;
    }
    if (/^[0-9a-f]{4,63}$/.test(idOrName)) {
      const matches = [...this.containers.values()].filter((container) => container.id.startsWith(idOrName));
      if (matches.length === 1) return matches[0];
    }
    return undefined;
  }

  subscribe(listener: InventoryListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Starts the event stream first (so nothing between the list and the subscription is lost), then resyncs. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.stream.start();
    this.schedulePeriodicResync();
    try {
      await this.resync();
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.resyncTimer !== null) this.timers.clearTimeout(this.resyncTimer);
    if (this.retryTimer !== null) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.resyncTimer = null;
    await this.stream.stop();
    this.queue.length = 0;
    this.queuedResync?.reject(new Error('docker inventory stopped'));
    this.queuedResync = null;
    await this.draining;
  }

  /** Queues a full resync (coalesced with one already waiting) and resolves when it has been applied. */
  resync(): Promise<void> {
    const waiting = this.queuedResync ?? deferred();
    if (!this.queuedResync) {
      this.queuedResync = waiting;
      this.queue.push({ kind: 'resync' });
      // drain() may take the item (and clear queuedResync) before returning.
      this.drain();
    }
    return waiting.promise;
  }

  private enqueueEvent(event: ContainerEvent): void {
    if (!this.running) return;
    const pendingEvents = this.queue.length - (this.queuedResync ? 1 : 0);
    if (pendingEvents >= this.maxPendingEvents) {
      // Never hold an unbounded backlog: the resync re-reads everything these events hinted at.
      const dropped = this.queue.filter((item) => item.kind === 'event').length;
      this.counters.eventsDroppedQueueFull += dropped + 1;
      for (let index = this.queue.length - 1; index >= 0; index -= 1) {
        if (this.queue[index]?.kind === 'event') this.queue.splice(index, 1);
      }
      this.options.logger.warn({ dropped: dropped + 1 }, 'docker event backlog full; resyncing instead');
      void this.resync().catch(() => undefined);
      return;
    }
    this.queue.push({ kind: 'event', event });
    this.drain();
  }

  private drain(): void {
    if (this.draining) return;
    this.draining = (async () => {
      while (this.queue.length > 0) {
        const item = this.queue.shift() as WorkItem;
        if (item.kind === 'resync') {
          const waiting = this.queuedResync;
          this.queuedResync = null;
          try {
            await this.runResync();
            this.failedResyncsInRow = 0;
            waiting?.resolve();
          } catch (error) {
            this.counters.resyncFailures += 1;
            this.failedResyncsInRow += 1;
            this.scheduleResyncRetry();
            waiting?.reject(error);
          }
        } else {
          try {
            await this.applyEvent(item.event);
          } catch (error) {
            // A busy or departing daemon: a resync soon repairs what this event would have. A
            // stopping dockerd sends die/stop for every container and then stops answering their
            // inspects: the outage is logged once elsewhere, not once per container (measured: 763
            // warnings in a 60-minute soak with 26 daemon restarts).
            logQuietDuringOutage(
              this.options.logger,
              error,
              'docker event could not be applied; resyncing soon',
              {
                action: item.event.action,
                containerId: item.event.containerId,
              },
            );
            this.scheduleResyncRetry();
          }
        }
      }
    })().finally(() => {
      this.draining = null;
      if (this.queue.length > 0) this.drain();
    });
  }

  private scheduleResyncRetry(): void {
    if (!this.running || this.retryTimer !== null) return;
    const delayMs = Math.min(
      this.options.resyncIntervalMs,
      backoffDelayMs(Math.max(this.failedResyncsInRow, 1), {
        initialMs: RESYNC_RETRY_INITIAL_MS,
        maxMs: RESYNC_RETRY_MAX_MS,
      }),
    );
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = null;
      this.resync().catch((error: unknown) =>
        logQuietDuringOutage(this.options.logger, error, 'docker resync retry failed', {
          failures: this.failedResyncsInRow,
        }),
      );
    }, delayMs);
  }

  /** A timeout chain, not an interval: a resync slower than the period never piles up behind itself. */
  private schedulePeriodicResync(): void {
    this.resyncTimer = this.timers.setTimeout(() => {
      this.resyncTimer = null;
      this.resync()
        .catch((error: unknown) =>
          logQuietDuringOutage(this.options.logger, error, 'periodic docker resync failed'),
        )
        .finally(() => {
          if (this.running && this.resyncTimer === null) this.schedulePeriodicResync();
        });
    }, this.options.resyncIntervalMs);
  }

  private async runResync(): Promise<void> {
    const startedMs = performance.now();
    const ids = await this.options.api.listContainerIds();
    const inspected = await mapWithConcurrency(ids, this.inspectConcurrency, async (id) => {
      try {
        return await this.options.api.inspectContainer(id);
      } catch (error) {
        // One container Docker describes oddly must not fail the resync: keep what we knew of it.
        if (error instanceof DockerDataError) {
          this.options.logger.warn(
            { err: errorMessage(error), containerId: id },
            'docker inspect unreadable; keeping last view',
          );
          return this.containers.get(id) ?? null;
        }
        throw error;
      }
    });
    const next = new Map<string, ContainerInfo>();
    for (const info of inspected) if (info) next.set(info.id, info);

    const previous = this.containers;
    this.containers = next;
    for (const id of previous.keys()) {
      if (next.has(id)) continue;
      this.runningNotified.delete(id);
      this.emit('onDestroy', (listener) => listener.onDestroy?.(id));
    }
    for (const info of next.values()) {
      this.notifyRestartedUnseen(previous.get(info.id), info);
      this.notifyLevel(info);
    }
    this.counters.resyncs += 1;
    this.counters.lastResyncDurationMs = performance.now() - startedMs;
    const list = this.list();
    this.emit('onResync', (listener) => listener.onResync?.(list));
  }

  private async applyEvent(event: ContainerEvent): Promise<void> {
    const verb = actionVerb(event.action);
    const id = event.containerId;
    if (DESTROY_VERBS.has(verb)) {
      this.forget(id);
    } else if (REINSPECT_VERBS.has(verb)) {
      const info = await this.options.api.inspectContainer(id);
      if (!info) {
        this.forget(id);
      } else {
        // die/stop report the stop themselves; a start (or anything else) of a container we
        // believed running under another PID means a stop was missed.
        if (!STOP_VERBS.has(verb)) this.notifyRestartedUnseen(this.containers.get(id), info);
        this.containers.set(id, info);
        if (STOP_VERBS.has(verb)) {
          // The container did stop, even if it is already running again (restart policy): say so,
          // the next start event (or resync) reports the new start.
          if (this.runningNotified.delete(id)) this.emit('onStop', (listener) => listener.onStop?.(info));
        } else if (START_VERBS.has(verb)) {
          if (info.running && !this.runningNotified.has(id)) {
            this.runningNotified.add(id);
            this.emit('onStart', (listener) => listener.onStart?.(info));
          }
        } else {
          this.notifyLevel(info);
        }
      }
    }
    this.counters.eventsApplied += 1;
    this.emit('onEvent', (listener) => listener.onEvent?.(event));
  }

  /**
   * A container we reported running is running again under another PID: it stopped and started
   * while we were not looking (daemon restart with a restart policy, missed events). Listeners
   * hear the stop they missed, then the new start.
   */
  private notifyRestartedUnseen(before: ContainerInfo | undefined, after: ContainerInfo): void {
    if (!before || !this.runningNotified.has(after.id)) return;
    if (!before.running || !after.running || before.pid === 0 || after.pid === 0 || before.pid === after.pid)
      return;
    this.runningNotified.delete(after.id);
    this.emit('onStop', (listener) => listener.onStop?.(before));
    this.runningNotified.add(after.id);
    this.emit('onStart', (listener) => listener.onStart?.(after));
  }

  /** Tells listeners about a running-state change they have not heard about yet. */
  private notifyLevel(info: ContainerInfo): void {
    if (info.running && !this.runningNotified.has(info.id)) {
      this.runningNotified.add(info.id);
      this.emit('onStart', (listener) => listener.onStart?.(info));
    } else if (!info.running && this.runningNotified.delete(info.id)) {
      this.emit('onStop', (listener) => listener.onStop?.(info));
    }
  }

  async recheck(id: string): Promise<'present' | 'gone' | 'unknown'> {
    let info: ContainerInfo | null;
    try {
      info = await this.options.api.inspectContainer(id);
    } catch {
      return 'unknown';
    }
    // `docker rm -f` inspects as 'removing' until its destroy event: its storage is going away
    if (info?.state === 'removing') return 'gone';
    if (info) return 'present';
    this.forget(id);
    return 'gone';
  }

  private forget(id: string): void {
    const known = this.containers.delete(id);
    this.runningNotified.delete(id);
    if (known) this.emit('onDestroy', (listener) => listener.onDestroy?.(id));
  }

  private emit(hook: keyof InventoryListener, call: (listener: InventoryListener) => void): void {
    for (const listener of [...this.listeners]) {
      try {
        call(listener);
      } catch (error) {
        this.options.logger.error({ err: error, hook }, 'inventory listener failed');
      }
    }
  }
}

/** Factory for the composition root: `createDockerInventory({ api: client, events: client, logger, resyncIntervalMs })`. */
export function createDockerInventory(options: DockerInventoryOptions): DockerInventory {
  return new DockerInventory(options);
}

/**
 * A failed resync or event inspect: the message only (a stack per resync interval floods the
 * journal). While Docker is away the client already said so once (DockerClient's outage warning):
 * repeats go to debug. An HTTP error (Docker answered, and refused) stays a warning.
 */
function logQuietDuringOutage(
  logger: Logger,
  error: unknown,
  message: string,
  fields: Record<string, unknown> = {},
): void {
  const outage = error instanceof DockerApiError && error.kind !== 'http';
  if (outage) logger.debug({ ...fields, err: errorMessage(error) }, message);
  else logger.warn({ ...fields, err: errorMessage(error) }, message);
}
