/**
 * DockerClient (the dockerode adapter) against a scripted HTTP server on a unix socket: the real
 * dockerode and docker-modem stack, with the daemon's answers taken from recorded JSON. Proves the
 * requests it makes (never size=true, container filter on events) and its failure handling.
 */
import http from 'node:http';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DockerApiError, DockerClient, negotiateApiVersion } from '../../src/docker/client.js';
import { createLogger } from '../../src/log/logger.js';
import { fixture } from '../support/scripted-runner.js';

type Handler = (request: http.IncomingMessage, response: http.ServerResponse) => void;

const RUNNING = fixture('docker/btrfs/inspect-running-sized.json');
const RUNNING_ID = (JSON.parse(RUNNING) as { Id: string }).Id;
const OTHER_ID = 'd'.repeat(64);
const VERSION = fixture('docker/btrfs/version.json');
/** The negotiated path prefix against the recorded 20.10 daemon (ApiVersion 1.41). */
const V = '/v1.41';

describe('DockerClient over a scripted unix-socket daemon', () => {
  let dir: string;
  let socketPath: string;
  let server: http.Server;
  let requests: string[];
  let handler: Handler;
  /** Answers the unversioned `GET /version` of the API negotiation (null: the handler does). */
  let negotiation: string | null;

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'agdc-'));
    socketPath = path.join(dir, 'docker.sock');
    requests = [];
    negotiation = VERSION;
    handler = (_request, response) => {
      response.statusCode = 500;
      response.end('{"message":"unscripted"}');
    };
    server = http.createServer((request, response) => {
      if (negotiation !== null && request.url === '/version') {
        response.writeHead(200, { 'Content-Type': 'application/json' });
        response.end(negotiation);
        return;
      }
      requests.push(`${request.method} ${request.url}`);
      handler(request, response);
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  });

  afterEach(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  const json = (response: http.ServerResponse, status: number, body: string) => {
    response.writeHead(status, { 'Content-Type': 'application/json' });
    response.end(body);
  };

  it('lists all containers without ever asking for sizes, skipping invalid ids', async () => {
    handler = (_request, response) =>
      json(response, 200, JSON.stringify([{ Id: RUNNING_ID }, { Id: 'not-an-id' }, {}, { Id: OTHER_ID }]));
    const client = new DockerClient({ socketPath, timeoutMs: 2000 });
    expect(await client.listContainerIds()).toEqual([RUNNING_ID, OTHER_ID]);
    expect(requests).toEqual([`GET ${V}/containers/json?all=true`]);
    expect(requests.join('\n')).not.toMatch(/size/);
  });

  it('inspects by validated id (no size), maps the answer, and turns 404 into null', async () => {
    handler = (request, response) => {
      if (request.url === `${V}/containers/${RUNNING_ID}/json`) json(response, 200, RUNNING);
      else json(response, 404, '{"message":"No such container"}');
    };
    const client = new DockerClient({ socketPath, timeoutMs: 2000 });
    expect(await client.inspectContainer(RUNNING_ID)).toMatchObject({
      id: RUNNING_ID,
      name: 'sized-running',
      storageOptSizeBytes: 64 * 1024 ** 2,
    });
    expect(await client.inspectContainer(OTHER_ID)).toBeNull();
    await expect(client.inspectContainer('../../../info')).rejects.toThrow(/not a Docker container id/);
    expect(requests).toEqual([
      `GET ${V}/containers/${RUNNING_ID}/json`,
      `GET ${V}/containers/${OTHER_ID}/json`,
    ]);
  });

  it('passes other daemon errors on', async () => {
    handler = (_request, response) => json(response, 500, '{"message":"boom"}');
    const client = new DockerClient({ socketPath, timeoutMs: 2000 });
    await expect(client.inspectContainer(RUNNING_ID)).rejects.toThrow(/boom/);
  });

  it('reads /info and /version together', async () => {
    handler = (request, response) => {
      if (request.url === `${V}/info`) json(response, 200, fixture('docker/btrfs/info.json'));
      else if (request.url === `${V}/version`) json(response, 200, VERSION);
      else json(response, 404, '{}');
    };
    const client = new DockerClient({ socketPath, timeoutMs: 2000 });
    expect(await client.info()).toMatchObject({
      driver: 'btrfs',
      apiVersion: '1.41',
      serverVersion: '20.10.24+dfsg1',
    });
    expect([...requests].sort()).toEqual([`GET ${V}/info`, `GET ${V}/version`]);
  });

  it('times API calls out after timeoutMs', async () => {
    handler = () => undefined; // never answers
    const client = new DockerClient({ socketPath, timeoutMs: 300 });
    const started = performance.now();
    await expect(client.listContainerIds()).rejects.toThrow();
    const elapsedMs = performance.now() - started;
    expect(elapsedMs).toBeGreaterThanOrEqual(250);
    expect(elapsedMs).toBeLessThan(2000);
  });

  it('pings: true when the daemon answers, false when it does not', async () => {
    handler = (_request, response) => {
      response.writeHead(200, { 'Content-Type': 'text/plain' });
      response.end('OK');
    };
    expect(await new DockerClient({ socketPath, timeoutMs: 2000 }).ping()).toBe(true);
    expect(
      await new DockerClient({ socketPath: path.join(dir, 'absent.sock'), timeoutMs: 2000 }).ping(),
    ).toBe(false);
  });

  it('opens a container-filtered event stream that an idle period does not cut, and aborts on demand', async () => {
    let open: http.ServerResponse | null = null;
    handler = (_request, response) => {
      response.writeHead(200, { 'Content-Type': 'application/json' });
      response.flushHeaders();
      open = response;
    };
    const client = new DockerClient({ socketPath, timeoutMs: 200 });
    const abort = new AbortController();
    const body = await client.openEvents({ since: '1795815190.000000001', signal: abort.signal });
    const url = new URL(`http://x${requests[0]?.slice(4)}`);
    expect(url.pathname).toBe(`${V}/events`);
    expect(JSON.parse(url.searchParams.get('filters') ?? '')).toEqual({ type: ['container'] });
    expect(url.searchParams.get('since')).toBe('1795815190.000000001');
    expect([...url.searchParams.keys()].sort()).toEqual(['filters', 'since']);

    const chunks: string[] = [];
    let closed = false;
    body.on('data', (chunk: Buffer) => chunks.push(chunk.toString('utf8')));
    body.on('close', () => (closed = true));
    // quiet for 3x the API timeout: an event stream must survive it
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(closed).toBe(false);
    (open as http.ServerResponse | null)?.write('{"Type":"container"}\n');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(chunks.join('')).toBe('{"Type":"container"}\n');
    abort.abort();
    (body as NodeJS.ReadableStream & { destroy(): void }).destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(closed).toBe(true);
  });

  it('fails to open the event stream within timeoutMs when the daemon never answers', async () => {
    handler = () => undefined;
    const client = new DockerClient({ socketPath, timeoutMs: 300 });
    const started = performance.now();
    await expect(client.openEvents({ signal: new AbortController().signal })).rejects.toThrow();
    expect(performance.now() - started).toBeLessThan(2000);
  });
  /** A logger whose JSON lines land in `lines`. */
  function capturingLogger(lines: Array<{ level: string; msg: string; err?: string }>) {
    return createLogger({
      level: 'debug',
      destination: { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) },
    });
  }

  it("negotiates the API version once: the daemon's, capped at ours, refused below 1.41", async () => {
    expect(negotiateApiVersion('1.41')).toBe('1.41');
    expect(negotiateApiVersion('1.51')).toBe('1.51');
    expect(negotiateApiVersion('1.99')).toBe('1.52');
    expect(negotiateApiVersion('2.0')).toBe('1.52');
    expect(() => negotiateApiVersion('1.40')).toThrow(/needs 1.41/);
    expect(() => negotiateApiVersion(undefined)).toThrow(/no usable ApiVersion/);
    let versionCalls = 0;
    negotiation = null;
    handler = (request, response) => {
      if (request.url === '/version') {
        versionCalls += 1;
        json(response, 200, '{"ApiVersion":"1.51","Version":"28.5.2"}');
      } else json(response, 200, '[]');
    };
    const client = new DockerClient({ socketPath, timeoutMs: 2000 });
    await client.listContainerIds();
    await client.listContainerIds();
    expect(versionCalls).toBe(1);
    expect(client.apiVersion).toBe('1.51');
    expect(requests).toEqual([
      'GET /version',
      'GET /v1.51/containers/json?all=true',
      'GET /v1.51/containers/json?all=true',
    ]);
  });

  it('never lets docker-modem take DOCKER_HOST from the environment over the endpoint it was given', async () => {
    const saved = process.env['DOCKER_HOST'];
    process.env['DOCKER_HOST'] = 'tcp://127.0.0.1:1';
    try {
      handler = (_request, response) => json(response, 200, '[]');
      expect(await new DockerClient({ socketPath, timeoutMs: 2000 }).listContainerIds()).toEqual([]);
    } finally {
      if (saved === undefined) delete process.env['DOCKER_HOST'];
      else process.env['DOCKER_HOST'] = saved;
    }
  });

  it('cuts a daemon that dribbles its answer at the whole-call deadline (the idle timeout never fires)', async () => {
    const timers: NodeJS.Timeout[] = [];
    handler = (_request, response) => {
      response.writeHead(200, { 'Content-Type': 'application/json' });
      response.write('[');
      // one byte every 50 ms: the socket is never idle for the 400 ms timeout
      timers.push(setInterval(() => response.write(' '), 50));
    };
    const client = new DockerClient({ socketPath, timeoutMs: 400 });
    const started = performance.now();
    const error = await client.listContainerIds().catch((caught: unknown) => caught);
    const elapsedMs = performance.now() - started;
    timers.forEach((timer) => clearInterval(timer));
    expect(error).toBeInstanceOf(DockerApiError);
    expect(error).toMatchObject({ kind: 'timeout', call: 'container list' });
    expect((error as Error).message).toMatch(/no complete answer to container list within 400 ms/);
    expect(elapsedMs).toBeGreaterThanOrEqual(380);
    expect(elapsedMs).toBeLessThan(1500);
  });

  it('treats garbage as garbage: text for JSON, a list that is no list, /info that is not Docker', async () => {
    const answers: Record<string, [number, string, string]> = {
      [`${V}/containers/json?all=true`]: [200, 'text/plain', 'hello, I am a web server'],
      [`${V}/info`]: [200, 'application/json', '{"Name":"proxy"}'],
      [`${V}/version`]: [200, 'application/json', '{}'],
    };
    handler = (request, response) => {
      const answer = answers[request.url ?? ''];
      if (!answer) return json(response, 404, '{}');
      response.writeHead(answer[0], { 'Content-Type': answer[1] });
      response.end(answer[2]);
    };
    const client = new DockerClient({ socketPath, timeoutMs: 2000 });
    await expect(client.listContainerIds()).rejects.toMatchObject({ kind: 'garbage' });
    const infoError = await client.info().catch((caught: unknown) => caught);
    expect(infoError).toMatchObject({ kind: 'garbage', call: 'info' });
    expect((infoError as Error).message).toMatch(
      /not a Docker daemon's answer \(no ServerVersion, no usable Driver, no absolute DockerRootDir\)/,
    );
    // a garbage /version at negotiation: retried on the next call, not cached
    negotiation = null;
    answers['/version'] = [200, 'text/html', '<html>'];
    const fresh = new DockerClient({ socketPath, timeoutMs: 2000 });
    await expect(fresh.listContainerIds()).rejects.toMatchObject({ kind: 'garbage', call: 'version' });
    answers['/version'] = [200, 'application/json', VERSION];
    answers[`${V}/containers/json?all=true`] = [200, 'application/json', '[]'];
    expect(await fresh.listContainerIds()).toEqual([]);
  });

  it('logs one warning per outage (no stack), repeats at debug, and one line on recovery', async () => {
    const lines: Array<{ level: string; msg: string; err?: string }> = [];
    handler = (_request, response) => json(response, 200, '[]');
    const client = new DockerClient({ socketPath, timeoutMs: 500, logger: capturingLogger(lines) });
    await client.listContainerIds();
    // the daemon goes away: every call fails, one warning
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    for (let call = 0; call < 5; call += 1) {
      await expect(client.listContainerIds()).rejects.toMatchObject({ kind: 'unreachable' });
    }
    expect(client.inOutage).toBe(true);
    const warnings = lines.filter((line) => line.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.msg).toBe('Docker is not answering; retrying quietly until it does');
    expect(warnings[0]?.err).toMatch(
      /^cannot reach Docker at unix:\/\/\S+ \(from docker.socketPath in the configuration\): /,
    );
    expect(JSON.stringify(lines)).not.toMatch(/"stack"|\\n\s+at /);
    expect(lines.filter((line) => line.level === 'debug')).toHaveLength(4);
    // back: one info line, and the next outage warns again
    server = http.createServer((_request, response) => json(response, 200, '[]'));
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    await client.listContainerIds();
    expect(lines.filter((line) => line.msg === 'Docker answers again')).toHaveLength(1);
    expect(client.inOutage).toBe(false);
    // an HTTP error is the daemon answering: no outage
    server.removeAllListeners('request');
    server.on('request', (_request: http.IncomingMessage, response: http.ServerResponse) =>
      json(response, 500, '{"message":"boom"}'),
    );
    await expect(client.listContainerIds()).rejects.toMatchObject({ kind: 'http', statusCode: 500 });
    expect(lines.filter((line) => line.level === 'warn')).toHaveLength(1);
  });

  it('does not warn before the daemon ever answered (the caller reports that failure)', async () => {
    const lines: Array<{ level: string; msg: string }> = [];
    const client = new DockerClient({
      socketPath: path.join(dir, 'absent.sock'),
      timeoutMs: 500,
      logger: capturingLogger(lines),
    });
    await expect(client.info()).rejects.toThrow(/cannot reach Docker at unix:\/\/.*absent.sock/);
    expect(lines.filter((line) => line.level === 'warn')).toHaveLength(0);
  });
});

describe('loading dockerode', () => {
  it('does not load the BuildKit session (gRPC) or ssh2 stacks until they are called, then forwards to them', async () => {
    await import('../../src/docker/client.js');
    const require = createRequire(import.meta.url);
    const loaded = () => Object.keys(require.cache);
    expect(loaded().filter((file) => /[/\\]dockerode[/\\]lib[/\\]docker\.js$/.test(file))).toHaveLength(1);
    expect(loaded().filter((file) => /[/\\](@grpc|protobufjs|ssh2)[/\\]/.test(file))).toEqual([]);
    const dockerodeMain = require.resolve('dockerode');
    const modemMain = createRequire(dockerodeMain).resolve('docker-modem');
    const ssh = createRequire(modemMain)('./ssh.js') as (options: object) => { createConnection: unknown };
    // the stand-in loads the real module on its first call and answers with what it answers
    expect(typeof ssh({ host: '127.0.0.1' }).createConnection).toBe('function');
    expect(loaded().some((file) => /[/\\]ssh2[/\\]/.test(file))).toBe(true);
  });
});
