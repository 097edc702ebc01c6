/**
 * The Docker inventory against a real, private dockerd (Debian docker.io): lifecycle changes are
 * seen within 1 s, a daemon restart is survived without missing a container, and a burst of 500
 * events arrives with none lost or mis-split.
 */
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { DockerClient } from '../../src/docker/client.js';
import { DockerInventory } from '../../src/docker/inventory.js';
import type { ContainerEvent, ContainerInfo } from '../../src/docker/model.js';
import { silentLogger } from '../../src/log/logger.js';
import { TestDockerd } from '../support/dockerd.js';
import { describeWith, prereqs } from '../support/prereqs.js';

/** Raw Engine API calls for the test's own operations (the agent's path is DockerClient). */
function engine(socketPath: string, method: string, urlPath: string, body?: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const request = http.request(
      {
        socketPath,
        method,
        path: urlPath,
        headers: payload
          ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) }
          : {},
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if ((response.statusCode ?? 500) >= 300) {
            reject(new Error(`${method} ${urlPath}: HTTP ${response.statusCode} ${text}`));
          } else {
            resolve(text ? JSON.parse(text) : null);
          }
        });
      },
    );
    request.on('error', reject);
    request.end(payload);
  });
}

async function waitFor(what: string, condition: () => boolean, timeoutMs: number): Promise<number> {
  const started = performance.now();
  while (!condition()) {
    if (performance.now() - started > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return performance.now() - started;
}

/** Records every listener call, in order. */
class Recorder {
  readonly started: ContainerInfo[] = [];
  readonly stopped: ContainerInfo[] = [];
  readonly destroyed: string[] = [];
  readonly events: ContainerEvent[] = [];
  readonly streamStates: boolean[] = [];
  resyncs = 0;
  listener = {
    onStart: (info: ContainerInfo) => void this.started.push(info),
    onStop: (info: ContainerInfo) => void this.stopped.push(info),
    onDestroy: (id: string) => void this.destroyed.push(id),
    onEvent: (event: ContainerEvent) => void this.events.push(event),
    onStreamState: (connected: boolean) => void this.streamStates.push(connected),
    onResync: () => void (this.resyncs += 1),
  };
}

/**
 * A unix-socket proxy in front of dockerd that can cut every connection and refuse new ones, like
 * a socket proxy or a flaky link would: the daemon keeps running (and keeps changing) meanwhile.
 */
class CuttableProxy {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'agpx-'));
  readonly socketPath = path.join(this.dir, 'proxy.sock');
  private readonly sockets = new Set<net.Socket>();
  private cut = false;
  private readonly server: net.Server;

  constructor(private readonly target: string) {
    this.server = net.createServer((client) => {
      if (this.cut) {
        client.destroy();
        return;
      }
      const upstream = net.connect(this.target);
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.socketPath, resolve));
  }

  cutAll(): void {
    this.cut = true;
    for (const socket of this.sockets) socket.destroy();
  }

  restore(): void {
    this.cut = false;
  }

  async close(): Promise<void> {
    this.cutAll();
    await new Promise((resolve) => this.server.close(resolve));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const FOLLOW_BOUND_MS = 1000;

describeWith([prereqs.root, prereqs.dockerd, prereqs.busybox], 'docker inventory on a real dockerd', () => {
  let dockerd: TestDockerd;
  let image: string;
  let inventory: DockerInventory | null = null;

  beforeAll(async () => {
    dockerd = new TestDockerd();
    await dockerd.start();
    image = await dockerd.ensureBusyboxImage();
  });

  afterEach(async () => {
    await inventory?.stop();
    inventory = null;
  });

  afterAll(async () => {
    await dockerd?.destroy();
  });

  async function startInventory(
    recorder: Recorder,
    socketPath = dockerd.socketPath,
  ): Promise<DockerInventory> {
    const client = new DockerClient({ socketPath, timeoutMs: 10_000 });
    inventory = new DockerInventory({
      api: client,
      events: client,
      logger: silentLogger(),
      resyncIntervalMs: 60_000,
      // Short backoff so the restart test is quick; the policy itself is unit-tested.
      eventStream: { backoff: { initialMs: 100, maxMs: 1000 } },
    });
    inventory.subscribe(recorder.listener);
    await inventory.start();
    await waitFor('event stream connected', () => inventory?.streamConnected === true, 5000);
    return inventory;
  }

  async function createContainer(name: string, extra: Record<string, unknown> = {}): Promise<string> {
    const created = (await engine(dockerd.socketPath, 'POST', `/containers/create?name=${name}`, {
      Image: image,
      Cmd: ['sleep', '3600'],
      ...extra,
    })) as { Id: string };
    return created.Id;
  }

  it('follows create, start, stop and rm within 1 s each', async () => {
    const recorder = new Recorder();
    const inv = await startInventory(recorder);
    const timings: Record<string, number> = {};

    const id = await createContainer('follow-me', { Labels: { team: 'storage' } });
    timings['create'] = await waitFor('create', () => inv.get(id) !== undefined, FOLLOW_BOUND_MS);
    expect(inv.get(id)).toMatchObject({
      name: 'follow-me',
      state: 'created',
      running: false,
      labels: { team: 'storage' },
    });

    await engine(dockerd.socketPath, 'POST', `/containers/${id}/start`);
    timings['start'] = await waitFor(
      'start',
      () => recorder.started.some((c) => c.id === id),
      FOLLOW_BOUND_MS,
    );
    expect(inv.get(id)).toMatchObject({ state: 'running', running: true });
    expect(inv.get(id)?.pid).toBeGreaterThan(0);
    expect(inv.find('follow-me')?.id).toBe(id);
    expect(inv.find(id.slice(0, 12))?.id).toBe(id);

    await engine(dockerd.socketPath, 'POST', `/containers/${id}/stop?t=0`);
    timings['stop'] = await waitFor('stop', () => recorder.stopped.some((c) => c.id === id), FOLLOW_BOUND_MS);
    expect(inv.get(id)).toMatchObject({ state: 'exited', running: false, pid: 0 });
    expect(recorder.stopped.filter((c) => c.id === id)).toHaveLength(1);

    await engine(dockerd.socketPath, 'DELETE', `/containers/${id}`);
    timings['rm'] = await waitFor('rm', () => recorder.destroyed.includes(id), FOLLOW_BOUND_MS);
    expect(inv.get(id)).toBeUndefined();

    for (const [operation, elapsedMs] of Object.entries(timings)) {
      expect(elapsedMs, operation).toBeLessThan(FOLLOW_BOUND_MS);
    }
    console.info(
      `inventory follow latency (ms): ${JSON.stringify(timings, (_k, v: unknown) => (typeof v === 'number' ? Math.round(v) : v))}`,
    );
  });

  it('receives a burst of 500 events with none lost or mis-split', async () => {
    const recorder = new Recorder();
    const inv = await startInventory(recorder);
    // 120 containers through metadata-only operations (fast: a real burst) and 4 through a full
    // run, 500 events in all. Labels make events big: every 10th carries 150 KB, more than one
    // socket read, so lines are split across chunks; small ones arrive several per chunk.
    const padding = (index: number) => 'x'.repeat(index % 10 === 0 ? 150_000 : 300 + index * 7);
    const unicode = (index: number) => 'é→✓'.repeat(index % 5);
    const expected = new Map<string, string[]>();
    let next = 0;
    const worker = async () => {
      while (next < 124) {
        const index = next++;
        const id = await createContainer(`burst-${index}`, {
          Labels: { index: String(index), padding: padding(index), unicode: unicode(index) },
        });
        if (index < 4) {
          await engine(dockerd.socketPath, 'POST', `/containers/${id}/start`);
          await engine(dockerd.socketPath, 'POST', `/containers/${id}/kill`);
          await engine(dockerd.socketPath, 'DELETE', `/containers/${id}?force=1`);
          expected.set(id, ['create', 'start', 'kill', 'die', 'destroy']);
        } else {
          await engine(dockerd.socketPath, 'POST', `/containers/${id}/rename?name=burst-renamed-${index}`);
          await engine(dockerd.socketPath, 'POST', `/containers/${id}/update`, { CpuShares: 512 });
          await engine(dockerd.socketPath, 'DELETE', `/containers/${id}`);
          expected.set(id, ['create', 'rename', 'update', 'destroy']);
        }
      }
    };
    const started = performance.now();
    // Eight workers: events of different containers interleave in the stream, as on a busy host.
    await Promise.all(Array.from({ length: 8 }, worker));
    const operationsMs = performance.now() - started;
    const expectedCount = [...expected.values()].reduce((sum, actions) => sum + actions.length, 0);
    expect(expectedCount).toBe(500);

    const received = () => recorder.events.filter((event) => expected.has(event.containerId));
    const deliveryMs = await waitFor('500 events', () => received().length >= 500, 10_000);
    // Anything beyond 500 would be a duplicate or a mis-split line: give it a moment to show up.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(received()).toHaveLength(500);
    for (const [id, actions] of expected) {
      expect(
        received()
          .filter((event) => event.containerId === id)
          .map((event) => event.action),
      ).toEqual(actions);
    }
    // Attributes came through intact (a mis-split would have corrupted or dropped them).
    for (const event of received().filter((candidate) => candidate.action === 'create')) {
      const index = Number(event.attributes['index']);
      expect(event.attributes['padding']).toBe(padding(index));
      expect(event.attributes['unicode']).toBe(unicode(index));
    }
    const stats = inv.stats.stream;
    expect(stats.malformedEvents).toBe(0);
    expect(stats.oversizedLines).toBe(0);
    expect(stats.duplicatesDropped).toBe(0);
    await waitFor(
      'all burst containers forgotten',
      () => [...expected.keys()].every((id) => !inv.get(id)),
      5000,
    );
    console.info(
      `burst: 500 events in ${Math.round(operationsMs)} ms of operations; all delivered ` +
        `${Math.round(deliveryMs)} ms after the last one; ${stats.chunksReceived} chunks`,
    );
  });

  it('recovers more than the 256 events the daemon keeps for `since` by resyncing after a cut', async () => {
    const proxy = new CuttableProxy(dockerd.socketPath);
    await proxy.listen();
    try {
      const wasRunning = await createContainer('gap-was-running');
      await engine(dockerd.socketPath, 'POST', `/containers/${wasRunning}/start`);
      const willVanish = await createContainer('gap-will-vanish');
      const recorder = new Recorder();
      const inv = await startInventory(recorder, proxy.socketPath);
      recorder.started.length = 0;
      // one event seen before the cut, so the reconnect asks the daemon to replay from there
      const marker = await createContainer('gap-marker');
      await waitFor(
        'marker event',
        () => recorder.events.some((event) => event.containerId === marker),
        5000,
      );

      proxy.cutAll();
      await waitFor('stream lost', () => !inv.streamConnected, 5000);
      // While the agent is cut off: 300 creates, 2 starts, a stop, a removal (> 256 events).
      const created: string[] = [];
      for (let index = 0; index < 300; index += 1) created.push(await createContainer(`gap-${index}`));
      const startedInGap = created.slice(0, 2);
      for (const id of startedInGap) await engine(dockerd.socketPath, 'POST', `/containers/${id}/start`);
      await engine(dockerd.socketPath, 'POST', `/containers/${wasRunning}/stop?t=0`);
      await engine(dockerd.socketPath, 'DELETE', `/containers/${willVanish}`);
      const deliveredBefore = inv.stats.stream.eventsDelivered;
      const resyncsBefore = recorder.resyncs;

      proxy.restore();
      await waitFor(
        'reconnect and resync',
        () => inv.streamConnected && recorder.resyncs > resyncsBefore,
        30_000,
      );
      // let the `since` replay finish arriving
      await new Promise((resolve) => setTimeout(resolve, 500));
      const replayed = inv.stats.stream.eventsDelivered - deliveredBefore;
      // The daemon could not replay everything (it keeps 256 events); the resync made up for it.
      expect(replayed).toBeGreaterThan(0);
      expect(replayed).toBeLessThanOrEqual(256);
      const truth = (await engine(dockerd.socketPath, 'GET', '/containers/json?all=1')) as Array<{
        Id: string;
        State: string;
      }>;
      expect(new Map(inv.list().map((info) => [info.id, info.state as string]))).toEqual(
        new Map(truth.map((entry) => [entry.Id, entry.State])),
      );
      for (const id of created) expect(inv.get(id), id).toBeDefined();
      expect(recorder.started.map((info) => info.id).sort()).toEqual([...startedInGap].sort());
      expect(recorder.stopped.map((info) => info.id)).toEqual([wasRunning]);
      expect(recorder.destroyed).toEqual([willVanish]);
      console.info(
        `cut: 305+ container events while disconnected; the daemon replayed ${replayed} from \`since\` ` +
          `(${inv.stats.stream.duplicatesDropped} duplicates dropped); the resync filled the rest`,
      );
    } finally {
      await inventory?.stop();
      inventory = null;
      await proxy.close();
    }
  });

  it('reconnects and resyncs by itself across a dockerd restart, missing no container', async () => {
    // A daemon of its own: dockerd spends ~1 s per stale network sandbox at start, and the burst
    // above leaves a hundred of them behind.
    await dockerd.destroy();
    dockerd = new TestDockerd();
    await dockerd.start();
    image = await dockerd.ensureBusyboxImage();
    const stopped = await createContainer('will-stop');
    await engine(dockerd.socketPath, 'POST', `/containers/${stopped}/start`);
    const restarted = await createContainer('restart-always', {
      HostConfig: { RestartPolicy: { Name: 'always' } },
    });
    await engine(dockerd.socketPath, 'POST', `/containers/${restarted}/start`);
    const removedWhileAway = await createContainer('removed-after');
    const recorder = new Recorder();
    const inv = await startInventory(recorder);
    expect(recorder.started.map((c) => c.id).sort()).toEqual([stopped, restarted].sort());
    const pidBefore = inv.get(restarted)?.pid;

    await dockerd.stop();
    await waitFor('stream lost', () => !inv.streamConnected, 5000);
    const resyncsBefore = recorder.resyncs;
    await dockerd.start();
    // Changes made right after the daemon is back, likely before the agent reconnected.
    const createdAfter = await createContainer('created-after');
    await engine(dockerd.socketPath, 'POST', `/containers/${createdAfter}/start`);
    await engine(dockerd.socketPath, 'DELETE', `/containers/${removedWhileAway}`);

    await waitFor(
      'reconnect and resync',
      () => inv.streamConnected && recorder.resyncs > resyncsBefore,
      30_000,
    );
    // The DELETE returned before this point, but its destroy event may still be on the wire when
    // the resync lands: wait for both changes, not just the first (CI once compared too early).
    await waitFor(
      'inventory caught up',
      () => inv.get(createdAfter)?.running === true && inv.get(removedWhileAway) === undefined,
      10_000,
    );
    expect(inv.reconnects).toBeGreaterThanOrEqual(1);
    // what Node sees when dockerd stops mid-stream (Go's client calls it "unexpected EOF")
    expect(inv.lastDisconnectReason).not.toBeNull();
    console.info(
      `dockerd restart: stream ended with "${inv.lastDisconnectReason}"; reconnects=${inv.reconnects}; ` +
        `connect failures while down=${inv.stats.stream.connectFailures}`,
    );

    // The inventory equals the daemon's own truth.
    const truth = (await engine(dockerd.socketPath, 'GET', '/containers/json?all=1')) as Array<{
      Id: string;
      State: string;
    }>;
    const truthMap = new Map(truth.map((entry) => [entry.Id, entry.State]));
    const inventoryMap = new Map(inv.list().map((info) => [info.id, info.state as string]));
    expect(inventoryMap).toEqual(truthMap);

    expect(inv.get(stopped)).toMatchObject({ running: false });
    expect(recorder.stopped.map((c) => c.id)).toContain(stopped);
    expect(inv.get(restarted)).toMatchObject({ running: true });
    expect(inv.get(restarted)?.pid).not.toBe(pidBefore);
    expect(recorder.started.map((c) => c.id)).toContain(createdAfter);
    expect(recorder.destroyed).toContain(removedWhileAway);
    expect(inv.get(removedWhileAway)).toBeUndefined();
    expect(recorder.streamStates).toEqual([true, false, true]);
    // The restart-always container stopped and started again behind our back: listeners heard both.
    const restartedCalls = [
      ...recorder.stopped.filter((c) => c.id === restarted).map(() => 'stop'),
      ...recorder.started.filter((c) => c.id === restarted).map(() => 'start'),
    ];
    expect(restartedCalls.sort()).toEqual(['start', 'start', 'stop']);
  });
});
