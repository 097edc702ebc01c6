import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ManualGrowReport } from '../../src/agent/reconciler.js';
import { sendControlRequest, NoAgentError } from '../../src/control/client.js';
import { growContainer } from '../../src/control/grow-container.js';
import { createControlHandler } from '../../src/control/handlers.js';
import {
  acquireAgentLock,
  agentLockPath,
  controlSocketPath,
  routeToStorageOwner,
  StorageOwnedError,
} from '../../src/control/owner.js';
import {
  CONTROL_PROTOCOL_VERSION,
  ControlRequestError,
  MAX_REQUEST_BYTES,
  type ControlReply,
  type ControlRequest,
} from '../../src/control/protocol.js';
import { startControlServer, type ControlServer } from '../../src/control/server.js';
import { isContainerReference } from '../../src/docker/ids.js';
import type { PassReport } from '../../src/report/pass-report.js';
import { fakeContainer, FakeInventory } from '../support/fake-inventory.js';
import { transpileForNode } from '../support/transpile.js';

const V = CONTROL_PROTOCOL_VERSION;
const silent = pino({ level: 'silent' });
const directories: string[] = [];
const servers: ControlServer[] = [];
const children: ChildProcess[] = [];
let lockChild = '';

beforeAll(() => {
  lockChild = transpileForNode(['test/support/process-lock-child.ts']);
});
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});
afterAll(() => {
  for (const directory of directories) rmSync(directory, { recursive: true, force: true });
  rmSync(path.dirname(path.dirname(path.dirname(lockChild))), { recursive: true, force: true });
});

function stateDir(): string {
  const directory = mkdtempSync(path.join(os.tmpdir(), 'agctl-'));
  directories.push(directory);
  return directory;
}

const emptyPass: PassReport = {
  startedAtMs: 1,
  durationMs: 2,
  driver: 'btrfs',
  dryRun: false,
  pool: null,
  containers: [],
  probes: [],
  errors: [],
};

async function serve(
  directory: string,
  handle: (request: ControlRequest) => Promise<ControlReply>,
  requestTimeoutMs?: number,
) {
  const server = await startControlServer({
    socketPath: controlSocketPath(directory),
    handle,
    logger: silent,
    ...(requestTimeoutMs ? { requestTimeoutMs } : {}),
  });
  servers.push(server);
  return server;
}

/** Raw bytes to the socket; resolves with everything the server sent before closing. */
function raw(socketPath: string, payload: string, endAfterWrite = true): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ path: socketPath });
    let received = '';
    socket.on('connect', () => {
      if (payload) socket.write(payload);
      if (endAfterWrite) socket.end();
    });
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('utf8')));
    socket.on('close', () => resolve(received));
    socket.on('error', reject);
  });
}

async function holdLockInChild(lockPath: string, role: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [lockChild, lockPath, String(Date.now()), role], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  children.push(child);
  const line = await new Promise<string>((resolve) =>
    child.stdout!.once('data', (chunk: Buffer) => resolve(chunk.toString())),
  );
  expect(line).toMatch(/^won /);
  return child;
}

describe('control socket', () => {
  it('answers one request per connection, on a socket only its owner may open', async () => {
    const directory = stateDir();
    const seen: ControlRequest[] = [];
    await serve(directory, async (request) => {
      seen.push(request);
      return { v: V, ok: true, op: 'status', report: emptyPass };
    });
    expect(statSync(controlSocketPath(directory)).mode & 0o777).toBe(0o600);
    const reply = await sendControlRequest(controlSocketPath(directory), { v: V, op: 'status' });
    expect(reply).toEqual({ v: V, ok: true, op: 'status', report: emptyPass });
    expect(seen).toEqual([{ v: V, op: 'status' }]);
  });

  it('refuses garbage, unknown operations, other versions and oversized requests with exit 2', async () => {
    const directory = stateDir();
    let handled = 0;
    await serve(directory, async () => {
      handled += 1;
      return { v: V, ok: true, op: 'status', report: emptyPass };
    });
    const socketPath = controlSocketPath(directory);
    const answer = async (payload: string) => JSON.parse(await raw(socketPath, payload)) as ControlReply;
    expect(await answer('not json\n')).toMatchObject({ ok: false, exitCode: 2 });
    expect(await answer('{"v":1,"op":"rm -rf"}\n')).toMatchObject({ ok: false, exitCode: 2 });
    expect(await answer('{"v":99,"op":"status"}\n')).toMatchObject({
      ok: false,
      exitCode: 2,
      error: expect.stringMatching(/version/),
    });
    expect(await answer('{"v":1,"op":"grow","container":"a","target":{"toBytes":-1}}\n')).toMatchObject({
      ok: false,
      exitCode: 2,
    });
    expect(await answer(`${'x'.repeat(MAX_REQUEST_BYTES + 10)}`)).toMatchObject({
      ok: false,
      exitCode: 2,
      error: expect.stringMatching(/over/),
    });
    expect(handled).toBe(0);
  });

  it('times out a client that never sends a whole request', async () => {
    const directory = stateDir();
    await serve(directory, async () => ({ v: V, ok: true, op: 'status', report: emptyPass }), 200);
    const startedMs = Date.now();
    const answer = await raw(controlSocketPath(directory), '{"v":1,', false);
    expect(JSON.parse(answer)).toMatchObject({ ok: false, error: 'request timed out' });
    expect(Date.now() - startedMs).toBeLessThan(5_000);
  });

  it('replaces a dead agent socket, never a file that is not a socket', async () => {
    const directory = stateDir();
    const socketPath = controlSocketPath(directory);
    // an agent killed with SIGKILL leaves its socket file behind, with nobody accepting on it
    const dead = spawn(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => console.log('up'))`,
    ]);
    children.push(dead);
    await new Promise((resolve) => dead.stdout.once('data', resolve));
    dead.kill('SIGKILL');
    await new Promise((resolve) => dead.once('exit', resolve));
    expect(statSync(socketPath).isSocket()).toBe(true);
    await expect(sendControlRequest(socketPath, { v: V, op: 'once' })).rejects.toBeInstanceOf(NoAgentError);
    await serve(directory, async () => ({ v: V, ok: true, op: 'once', report: emptyPass }));
    expect((await sendControlRequest(socketPath, { v: V, op: 'once' })).ok).toBe(true);
    const other = stateDir();
    writeFileSync(controlSocketPath(other), 'precious');
    await expect(
      serve(other, async () => ({ v: V, ok: true, op: 'once', report: emptyPass })),
    ).rejects.toThrow(/not a socket/);
  });

  it('says there is no agent when nothing listens', async () => {
    await expect(
      sendControlRequest(controlSocketPath(stateDir()), { v: V, op: 'status' }),
    ).rejects.toBeInstanceOf(NoAgentError);
  });
});

describe('one owner for storage changes', () => {
  it('routes to the agent when one answers, else takes the agent lock to act in-process', async () => {
    const directory = stateDir();
    const local = await routeToStorageOwner(directory, { v: V, op: 'once' }, { role: 'once' });
    expect(local.kind).toBe('local');
    if (local.kind === 'local') local.lock.release();
    await serve(directory, async () => ({ v: V, ok: true, op: 'once', report: emptyPass }));
    const viaAgent = await routeToStorageOwner(directory, { v: V, op: 'once' }, { role: 'once' });
    expect(viaAgent).toEqual({ kind: 'agent', reply: { v: V, ok: true, op: 'once', report: emptyPass } });
  });

  it('refuses while another command holds the lock, and names it', async () => {
    const directory = stateDir();
    const child = await holdLockInChild(agentLockPath(directory), 'grow');
    await expect(routeToStorageOwner(directory, { v: V, op: 'once' }, { role: 'once' })).rejects.toThrow(
      new RegExp(`another docker-autogrow command .*pid ${child.pid} \\(grow\\)`),
    );
  });

  it('waits for a starting agent (lock held, socket not yet up), then gives up clearly', async () => {
    const directory = stateDir();
    const child = await holdLockInChild(agentLockPath(directory), 'run');
    const startedMs = Date.now();
    await expect(
      routeToStorageOwner(
        directory,
        { v: V, op: 'once' },
        { role: 'once', agentStartWaitMs: 400, pollMs: 50 },
      ),
    ).rejects.toThrow(new RegExp(`agent \\(pid ${child.pid} \\(run\\).*does not answer`));
    expect(Date.now() - startedMs).toBeGreaterThanOrEqual(400);
    // and when the socket comes up in time, the request goes there
    setTimeout(
      () => void serve(directory, async () => ({ v: V, ok: true, op: 'once', report: emptyPass })),
      200,
    );
    const route = await routeToStorageOwner(directory, { v: V, op: 'once' }, { role: 'once', pollMs: 50 });
    expect(route.kind).toBe('agent');
  });

  it('a second agent on the same state refuses to start; a one-shot command is waited for', async () => {
    const directory = stateDir();
    const agent = await holdLockInChild(agentLockPath(directory), 'run');
    await expect(acquireAgentLock(directory)).rejects.toThrow(
      new RegExp(`another docker-autogrow agent runs on this host .*pid ${agent.pid} \\(run\\)`),
    );
    await expect(acquireAgentLock(directory)).rejects.toBeInstanceOf(StorageOwnedError);
    agent.kill('SIGKILL');
    await new Promise((resolve) => agent.once('exit', resolve));
    const command = await holdLockInChild(agentLockPath(directory), 'grow');
    const waited: number[] = [];
    setTimeout(() => command.stdin!.write('release\n'), 300);
    const held = await acquireAgentLock(directory, { pollMs: 50, onWait: (owner) => waited.push(owner.pid) });
    expect(waited).toEqual([command.pid]);
    held.release();
  });
});

describe('grow requests', () => {
  const report = (id: string): ManualGrowReport => ({
    containerId: id,
    name: 'web',
    result: 'grown',
    why: 'manual',
    fromBytes: 1,
    toBytes: 2,
    warnings: [],
  });

  it('a missing container is a usage error, a stopped one a failure', async () => {
    const stopped = fakeContainer({ name: 'stopped', running: false, state: 'exited' });
    const deps = {
      inventory: new FakeInventory([stopped]),
      reconciler: { growNow: async () => report('x') },
      dockerInfo: { driver: 'btrfs', driverStatus: [] },
      requested: new Set<string>(),
    };
    await expect(growContainer(deps, 'nope', { byBytes: 1 }, {})).rejects.toMatchObject({ exitCode: 2 });
    await expect(growContainer(deps, 'stopped', { byBytes: 1 }, {})).rejects.toMatchObject({ exitCode: 1 });
    await expect(growContainer(deps, 'nope', { byBytes: 1 }, {})).rejects.toBeInstanceOf(ControlRequestError);
  });

  it('two concurrent grows of one container through the agent: one runs, the other is refused', async () => {
    const container = fakeContainer({ name: 'web' });
    let calls = 0;
    let finish!: () => void;
    const handle = createControlHandler({
      inventory: new FakeInventory([container]),
      dockerInfo: { driver: 'btrfs', driverStatus: [] },
      reconciler: {
        growNow: async () => {
          calls += 1;
          await new Promise<void>((resolve) => (finish = resolve));
          return report(container.id);
        },
        runPass: async () => emptyPass,
        lastReport: null,
      },
    });
    const directory = stateDir();
    await serve(directory, handle);
    const request: ControlRequest = {
      v: V,
      op: 'grow',
      container: 'web',
      target: { byBytes: 1 },
      dryRun: false,
      force: false,
    };
    const first = sendControlRequest(controlSocketPath(directory), request);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const second = await sendControlRequest(controlSocketPath(directory), request);
    expect(second).toMatchObject({ ok: true, report: { result: 'refused', reason: 'in-flight' } });
    finish();
    expect(await first).toMatchObject({ ok: true, report: { result: 'grown' } });
    expect(calls).toBe(1);
  });

  it("answers status with the agent's latest pass and the Docker endpoint it watches", async () => {
    const handle = createControlHandler({
      inventory: new FakeInventory([]),
      dockerInfo: { driver: 'btrfs', driverStatus: [] },
      reconciler: { growNow: async () => report('x'), runPass: async () => emptyPass, lastReport: emptyPass },
      dockerEndpoint: 'unix:///run/x/docker.sock (from DOCKER_HOST)',
    });
    expect(await handle({ v: V, op: 'status' })).toEqual({
      v: V,
      ok: true,
      op: 'status',
      report: emptyPass,
      dockerEndpoint: 'unix:///run/x/docker.sock (from DOCKER_HOST)',
    });
  });

  it('validates what a user may type as a container before anything is contacted', () => {
    for (const good of ['web', '/web', 'my_app.1-2', 'a'.repeat(64), '0123abcd'])
      expect(isContainerReference(good), good).toBe(true);
    for (const bad of ['', '-rm', '$(reboot)', 'a;b', 'a b', 'a\nb', '../etc', 'x'.repeat(256), '.hidden'])
      expect(isContainerReference(bad), JSON.stringify(bad)).toBe(false);
  });
});
