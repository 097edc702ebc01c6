/**
 * DockerInventory with a fake DockerApi (fault injection, gated inspects) and a scripted event
 * source. The same behaviour against a real dockerd is in test/integration/docker-inventory.test.ts.
 */
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { DockerEventSource } from '../../src/docker/events.js';
import type { Timers } from '../../src/util/clock.js';
import type { DockerApi, InventoryListener } from '../../src/docker/inventory-port.js';
import { DockerInventory } from '../../src/docker/inventory.js';
import { DockerDataError } from '../../src/docker/mapping.js';
import type { ContainerInfo, DockerInfo } from '../../src/docker/model.js';
import { createLogger, silentLogger, type Logger } from '../../src/log/logger.js';
import { DockerApiError } from '../../src/docker/errors.js';

const idOf = (digit: string) => digit.repeat(64);
const A = idOf('a');
const B = idOf('b');
const C = idOf('c');
const D = idOf('d');

function container(id: string, name: string, running: boolean, pid = running ? 100 : 0): ContainerInfo {
  return {
    id,
    name,
    image: 'busybox',
    labels: {},
    state: running ? 'running' : 'exited',
    running,
    pid,
    storageDriver: 'btrfs',
    graphDriverData: {},
    storageOptSizeBytes: 64 * 1024 ** 2,
  };
}

/** The daemon's truth, editable by the test; inspects may be held back by a gate. */
class FakeApi implements DockerApi {
  readonly truth = new Map<string, ContainerInfo>();
  inspects: string[] = [];
  failing: Error | null = null;
  /** Fails only the next inspect (a daemon briefly too busy to answer). */
  failNextInspect: Error | null = null;
  unreadable = new Set<string>();
  gate: Promise<void> | null = null;
  inFlight = 0;
  maxInFlight = 0;

  set(info: ContainerInfo): void {
    this.truth.set(info.id, info);
  }
  async info(): Promise<DockerInfo> {
    throw new Error('not used');
  }
  async ping(): Promise<boolean> {
    return true;
  }
  async listContainerIds(): Promise<string[]> {
    if (this.failing) throw this.failing;
    return [...this.truth.keys()];
  }
  async inspectContainer(id: string): Promise<ContainerInfo | null> {
    this.inspects.push(id);
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      // read before waiting: what the daemon said when asked
      const answer = this.truth.get(id) ?? null;
      await new Promise((resolve) => setImmediate(resolve));
      if (this.gate) await this.gate;
      if (this.failing) throw this.failing;
      const once = this.failNextInspect;
      this.failNextInspect = null;
      if (once) throw once;
      if (this.unreadable.has(id)) throw new DockerDataError('StorageOpt.size unreadable');
      return answer;
    } finally {
      this.inFlight -= 1;
    }
  }
}

class FakeSource implements DockerEventSource {
  readonly bodies: PassThrough[] = [];
  async openEvents(): Promise<NodeJS.ReadableStream> {
    const body = new PassThrough();
    this.bodies.push(body);
    return body;
  }
  get current(): PassThrough {
    const body = this.bodies.at(-1);
    if (!body) throw new Error('not connected');
    return body;
  }
  emit(id: string, action: string, timeNano: number): void {
    this.current.write(
      `${JSON.stringify({ Type: 'container', Action: action, Actor: { ID: id, Attributes: {} }, timeNano })}\n`,
    );
  }
}

class ManualTimers implements Timers {
  private readonly pending: Array<() => void> = [];
  setTimeout(callback: () => void): unknown {
    this.pending.push(callback);
    return callback;
  }
  clearTimeout(handle: unknown): void {
    const index = this.pending.indexOf(handle as () => void);
    if (index >= 0) this.pending.splice(index, 1);
  }
  fire(): void {
    const callback = this.pending.shift();
    if (!callback) throw new Error('nothing scheduled');
    callback();
  }
}

class Recorder {
  readonly calls: string[] = [];
  readonly listener: InventoryListener = {
    onStart: (info) => void this.calls.push(`start ${info.name}`),
    onStop: (info) => void this.calls.push(`stop ${info.name}`),
    onDestroy: (id) => void this.calls.push(`destroy ${id.slice(0, 1)}`),
    onStreamState: (connected) => void this.calls.push(connected ? 'connected' : 'disconnected'),
    onResync: (list) => void this.calls.push(`resync ${list.length}`),
  };
  take(): string[] {
    return this.calls.splice(0);
  }
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000; i += 1) {
    if (condition()) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`never happened: ${what}`);
}

let inventory: DockerInventory | null = null;
afterEach(async () => {
  await inventory?.stop();
  inventory = null;
});

async function setup(
  api: FakeApi,
  options: { resyncIntervalMs?: number; maxPendingEvents?: number; logger?: Logger } = {},
) {
  const source = new FakeSource();
  const timers = new ManualTimers();
  const recorder = new Recorder();
  inventory = new DockerInventory({
    api,
    events: source,
    logger: options.logger ?? silentLogger(),
    resyncIntervalMs: options.resyncIntervalMs ?? 3_600_000,
    inspectConcurrency: 3,
    maxPendingEvents: options.maxPendingEvents,
    eventStream: { timers, random: () => 0 },
  });
  inventory.subscribe(recorder.listener);
  await inventory.start();
  // the connect also asks for a resync: let it finish so each test starts quiet
  await until(
    () => recorder.calls.filter((call) => call.startsWith('resync')).length >= 2,
    'both start resyncs',
  );
  return { inv: inventory, source, timers, recorder };
}

describe('DockerInventory', () => {
  it('reports running containers found by the first resync, once', async () => {
    const api = new FakeApi();
    api.set(container(A, 'web', true));
    api.set(container(B, 'batch', false));
    const { inv, recorder } = await setup(api);
    expect(recorder.take()).toEqual(['connected', 'start web', 'resync 2', 'resync 2']);
    expect(
      inv
        .list()
        .map((info) => info.name)
        .sort(),
    ).toEqual(['batch', 'web']);
    expect(inv.streamConnected).toBe(true);
  });

  it('applies events as hints: start, die+stop (one onStop), rename, destroy', async () => {
    const api = new FakeApi();
    api.set(container(B, 'batch', false));
    const { inv, source, recorder } = await setup(api);
    recorder.take();
    api.inspects = [];
    let timeNano = 0;
    // the daemon changes, then reports it; the next change waits until the event was applied
    const step = async (action: string, change: () => void) => {
      change();
      const applied = inv.stats.eventsApplied;
      source.emit(B, action, (timeNano += 1));
      await until(() => inv.stats.eventsApplied === applied + 1, action);
    };

    await step('start', () => api.set(container(B, 'batch', true, 321)));
    expect(inv.get(B)?.pid).toBe(321);
    await step('die', () => api.set(container(B, 'batch', false)));
    await step('stop', () => undefined);
    await step('rename', () => api.set(container(B, 'renamed', false)));
    expect(inv.find('renamed')?.id).toBe(B);
    await step('exec_start: sh -c ls', () => undefined);
    await step('destroy', () => api.truth.delete(B));
    expect(recorder.take()).toEqual(['start batch', 'stop batch', 'destroy b']);
    // start, die, stop, rename re-inspect; exec_start and destroy do not
    expect(api.inspects).toEqual([B, B, B, B]);
    expect(inv.get(B)).toBeUndefined();
  });

  it("forgets a container on Podman's `remove` event (its compat API never sends destroy)", async () => {
    const api = new FakeApi();
    api.set(container(B, 'batch', false));
    const { inv, source, recorder } = await setup(api);
    recorder.take();
    api.inspects = [];
    api.truth.delete(B);
    source.emit(B, 'remove', 1);
    await until(() => inv.stats.eventsApplied === 1, 'remove');
    expect(recorder.take()).toEqual(['destroy b']);
    expect(api.inspects).toEqual([]);
    expect(inv.get(B)).toBeUndefined();
  });

  it('reports a stop even when the container is already running again (restart policy)', async () => {
    const api = new FakeApi();
    api.set(container(A, 'web', true, 100));
    const { source, recorder } = await setup(api);
    recorder.take();
    api.set(container(A, 'web', true, 200));
    source.emit(A, 'die', 1);
    source.emit(A, 'start', 2);
    await until(() => recorder.calls.length === 2, 'stop and start');
    expect(recorder.take()).toEqual(['stop web', 'start web']);
  });

  it('after a reconnect, resyncs and reports everything missed while disconnected', async () => {
    const api = new FakeApi();
    api.set(container(A, 'stops', true));
    api.set(container(B, 'vanishes', false));
    api.set(container(D, 'restarts', true, 100));
    const { inv, source, timers, recorder } = await setup(api);
    recorder.take();

    source.current.destroy(new Error('aborted'));
    await until(() => !inv.streamConnected, 'disconnect');
    api.set(container(A, 'stops', false));
    api.truth.delete(B);
    api.set(container(C, 'new', true));
    api.set(container(D, 'restarts', true, 222));
    timers.fire();
    await until(() => recorder.calls.some((call) => call.startsWith('resync')), 'resync');
    expect(recorder.take()).toEqual([
      'disconnected',
      'connected',
      'destroy b',
      'stop stops',
      'stop restarts',
      'start restarts',
      'start new',
      'resync 3',
    ]);
    expect(inv.reconnects).toBe(1);
    expect(inv.get(D)?.pid).toBe(222);
  });

  it('keeps its state when a resync fails, and start() fails when the first resync does', async () => {
    const api = new FakeApi();
    api.set(container(A, 'web', true));
    const { inv, recorder } = await setup(api);
    recorder.take();
    api.failing = new Error('connect ENOENT /var/run/docker.sock');
    await expect(inv.resync()).rejects.toThrow(/ENOENT/);
    expect(inv.list()).toHaveLength(1);
    expect(recorder.take()).toEqual([]);
    expect(inv.stats.resyncFailures).toBe(1);
    await inv.stop();

    const broken = new FakeApi();
    broken.failing = new Error('connect ENOENT');
    const source = new FakeSource();
    const failing = new DockerInventory({
      api: broken,
      events: source,
      logger: silentLogger(),
      resyncIntervalMs: 1000,
    });
    await expect(failing.start()).rejects.toThrow(/ENOENT/);
    expect(failing.streamConnected).toBe(false);
  });

  it('retries a failed resync soon instead of waiting for the periodic one', async () => {
    const api = new FakeApi();
    api.set(container(A, 'web', true));
    const { inv, recorder } = await setup(api);
    recorder.take();
    api.failing = new Error('daemon starting');
    await expect(inv.resync()).rejects.toThrow(/starting/);
    api.failing = null;
    api.set(container(B, 'late', true));
    const started = performance.now();
    for (let i = 0; i < 300 && !recorder.calls.includes('resync 2'); i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const elapsedMs = performance.now() - started;
    expect(recorder.take()).toEqual(['start late', 'resync 2']);
    // first retry after 1 s (the periodic resync is an hour away here)
    expect(elapsedMs).toBeGreaterThanOrEqual(900);
    expect(elapsedMs).toBeLessThan(1500);
  });

  it('logs failed resync retries without a stack: quietly while Docker is away, a warning when it answers wrongly', async () => {
    const lines: Array<{ level: string; msg: string; err?: unknown; failures?: number }> = [];
    const logger = createLogger({
      level: 'debug',
      destination: { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) },
    });
    const api = new FakeApi();
    const { inv } = await setup(api, { logger });
    const retried = (count: number) => async () => {
      for (
        let i = 0;
        i < 400 && lines.filter((l) => l.msg === 'docker resync retry failed').length < count;
        i += 1
      )
        await new Promise((resolve) => setTimeout(resolve, 10));
    };
    // Docker away (garbage, a timeout): the client warned once already; the retries go to debug
    api.failing = new DockerApiError(
      'docker container list: unexpected answer: not an array',
      'garbage',
      'container list',
    );
    await expect(inv.resync()).rejects.toThrow(/not an array/);
    await retried(1)();
    // Docker answering with an error: a warning, still without a stack
    api.failing = new DockerApiError('docker container list: HTTP 500', 'http', 'container list', 500);
    await retried(2)();
    api.failing = null;
    const retries = lines.filter((line) => line.msg === 'docker resync retry failed');
    expect(retries.map((line) => line.level)).toEqual(['debug', 'warn']);
    for (const line of retries) expect(typeof line.err).toBe('string');
    expect(retries[0]?.failures).toBeGreaterThanOrEqual(1);
    expect(JSON.stringify(lines)).not.toMatch(/"stack"|\\n\s+at /);
  });

  it('resyncs soon when an event could not be applied', async () => {
    const api = new FakeApi();
    api.set(container(A, 'web', false));
    const { source, recorder } = await setup(api);
    recorder.take();
    api.set(container(A, 'web', true));
    api.failNextInspect = new Error('socket hang up');
    source.emit(A, 'start', 1);
    const started = performance.now();
    for (let i = 0; i < 300 && !recorder.calls.includes('resync 1'); i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(recorder.take()).toEqual(['start web', 'resync 1']);
    expect(performance.now() - started).toBeLessThan(1500);
  });

  it('logs an event it could not apply at debug while Docker is away (a stopping dockerd), as a warning otherwise', async () => {
    const lines: Array<{ level: string; msg: string; err?: unknown; action?: string }> = [];
    const logger = createLogger({
      level: 'debug',
      destination: { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) },
    });
    const api = new FakeApi();
    api.set(container(A, 'web', true));
    const { source } = await setup(api, { logger });
    const applied = () =>
      lines.filter((line) => line.msg === 'docker event could not be applied; resyncing soon');
    const waitFor = async (count: number) => {
      for (let i = 0; i < 300 && applied().length < count; i += 1)
        await new Promise((resolve) => setTimeout(resolve, 10));
    };
    // a departing daemon: die for a container, then its inspect finds nobody answering
    api.failNextInspect = new DockerApiError(
      'cannot reach Docker at unix:///x.sock',
      'unreachable',
      'inspect',
    );
    source.emit(A, 'die', 1);
    await waitFor(1);
    // Docker answered, and refused: worth a warning
    api.failNextInspect = new DockerApiError('docker inspect: HTTP 500', 'http', 'inspect', 500);
    source.emit(A, 'die', 2);
    await waitFor(2);
    expect(applied().map((line) => [line.level, line.action])).toEqual([
      ['debug', 'die'],
      ['warn', 'die'],
    ]);
    for (const line of applied()) expect(typeof line.err).toBe('string');
  });

  it('keeps the last view of a container whose inspect it cannot read', async () => {
    const api = new FakeApi();
    api.set(container(A, 'web', true));
    const { inv, recorder } = await setup(api);
    recorder.take();
    api.unreadable.add(A);
    await inv.resync();
    expect(inv.get(A)?.name).toBe('web');
    expect(recorder.take()).toEqual(['resync 1']);
  });

  it('inspects with bounded concurrency', async () => {
    const api = new FakeApi();
    for (let i = 0; i < 20; i += 1) api.set(container(i.toString(16).padStart(64, 'e'), `c${i}`, true));
    await setup(api);
    expect(api.maxInFlight).toBe(3);
  });

  it('never lets a resync undo a destroy event that arrived while it ran', async () => {
    const api = new FakeApi();
    api.set(container(A, 'web', true));
    const { inv, source, recorder } = await setup(api);
    recorder.take();
    let release!: () => void;
    api.gate = new Promise((resolve) => (release = resolve));
    const resync = inv.resync();
    await until(() => api.inFlight === 1, 'inspect in flight');
    // the container is removed while the resync holds an answer that still includes it
    api.truth.delete(A);
    source.emit(A, 'destroy', 1);
    await new Promise((resolve) => setTimeout(resolve, 10));
    api.gate = null;
    release();
    await resync;
    await until(() => recorder.calls.includes('destroy a'), 'destroy applied');
    expect(inv.get(A)).toBeUndefined();
  });

  it('replaces an overflowing event backlog by one resync', async () => {
    const api = new FakeApi();
    api.set(container(A, 'web', true));
    const { inv, source, recorder } = await setup(api, { maxPendingEvents: 5 });
    recorder.take();
    let release!: () => void;
    api.gate = new Promise((resolve) => (release = resolve));
    for (let i = 1; i <= 20; i += 1) source.emit(A, 'update', i);
    await until(() => inv.stats.eventsDroppedQueueFull > 0, 'overflow');
    api.gate = null;
    release();
    await until(() => recorder.calls.includes('resync 1'), 'resync after overflow');
    // every event was either applied or replaced by the resync; the backlog never exceeded the cap
    await until(() => inv.stats.eventsApplied + inv.stats.eventsDroppedQueueFull === 20, 'all accounted for');
    expect(inv.stats.eventsDroppedQueueFull).toBeGreaterThan(0);
  });

  it('resyncs on its timer', async () => {
    const api = new FakeApi();
    api.set(container(A, 'web', true));
    const { recorder } = await setup(api, { resyncIntervalMs: 30 });
    recorder.take();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(recorder.take().filter((call) => call === 'resync 1').length).toBeGreaterThanOrEqual(3);
  });

  it('finds by full id, name, /name, and unique prefix of 4+ hex digits', async () => {
    const api = new FakeApi();
    api.set(container(`abcd1${'0'.repeat(59)}`, 'one', true));
    api.set(container(`abcd2${'0'.repeat(59)}`, 'two', true));
    api.set(container(`ffff${'1'.repeat(60)}`, 'abcd', false));
    const { inv } = await setup(api);
    expect(inv.find(`abcd1${'0'.repeat(59)}`)?.name).toBe('one');
    expect(inv.find('two')?.name).toBe('two');
    expect(inv.find('/two')?.name).toBe('two');
    expect(inv.find('abcd2')?.name).toBe('two');
    // a name wins over an id prefix, as in the docker CLI
    expect(inv.find('abcd')?.name).toBe('abcd');
    expect(inv.find('abcd1')?.name).toBe('one');
    expect(inv.find('fff')).toBeUndefined();
    expect(inv.find('ffff')?.name).toBe('abcd');
    expect(inv.find('nope')).toBeUndefined();
  });

  it('isolates a throwing listener from the others', async () => {
    const api = new FakeApi();
    api.set(container(A, 'web', true));
    const source = new FakeSource();
    inventory = new DockerInventory({
      api,
      events: source,
      logger: silentLogger(),
      resyncIntervalMs: 3_600_000,
    });
    const seen: string[] = [];
    inventory.subscribe({
      onStart: () => {
        throw new Error('listener bug');
      },
    });
    const unsubscribe = inventory.subscribe({ onStart: (info) => void seen.push(info.name) });
    await inventory.start();
    expect(seen).toEqual(['web']);
    unsubscribe();
  });
});

describe('DockerInventory periodic resync', () => {
  it('runs through the injected timers as a chain: the next one is set only after a resync ends', async () => {
    const api = new FakeApi();
    api.set(container(A, 'web', true));
    const resyncTimers = new ManualTimers();
    const recorder = new Recorder();
    inventory = new DockerInventory({
      api,
      events: new FakeSource(),
      logger: silentLogger(),
      resyncIntervalMs: 1000,
      timers: resyncTimers,
      eventStream: { timers: new ManualTimers(), random: () => 0 },
    });
    inventory.subscribe(recorder.listener);
    await inventory.start();
    await until(
      () => recorder.calls.filter((call) => call.startsWith('resync')).length >= 2,
      'start resyncs',
    );
    recorder.take();
    api.set(container(B, 'batch', true));
    resyncTimers.fire(); // the period elapsed
    await until(() => recorder.calls.includes('resync 2'), 'periodic resync');
    expect(recorder.take()).toEqual(['start batch', 'resync 2']);
    // exactly one follow-up timer is armed, and stop() clears it
    resyncTimers.fire();
    await until(() => recorder.calls.includes('resync 2'), 'second periodic resync');
    await inventory.stop();
    expect(() => resyncTimers.fire()).toThrow('nothing scheduled');
  });
});
