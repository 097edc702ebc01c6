/**
 * DockerClient (the dockerode adapter) against a scripted HTTP server on a unix socket: the real
 * dockerode and docker-modem stack, with the daemon's answers taken from recorded JSON. Proves the
 * requests it makes (never size=true, container filter on events) and its failure handling.
 */
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DockerClient } from '../../src/docker/client.js';
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
});
