/**
 * The metrics endpoint against hostile clients, over real TCP sockets: malformed requests, huge
 * headers, slow clients (dribbled headers, bodies that never end, answers never read), idle
 * sockets and more connections than allowed. Each must end in a bounded time with the server
 * still answering /healthz; memory is bounded by construction (at most maxConnections sockets,
 * each holding at most maxHeaderSize and one answer), which the tests check as counts.
 *
 * Timeouts are shortened (limits) so the tests run in seconds; the bounds asserted are generous
 * multiples of them (a loaded 2-core machine), never tight timings.
 */
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_HTTP_LIMITS,
  startMetricsServer,
  type HttpLimits,
  type MetricsServer,
} from '../../src/http/server.js';
import { silentLogger } from '../../src/log/logger.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { samplePassReport } from './metrics-sample-report.js';

const servers: MetricsServer[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

const TEST_LIMITS: Partial<HttpLimits> = {
  headersTimeoutMs: 500,
  requestTimeoutMs: 1_000,
  idleTimeoutMs: 700,
  keepAliveTimeoutMs: 500,
  connectionsCheckingIntervalMs: 100,
};

async function start(limits: Partial<HttpLimits> = {}) {
  const metrics = createMetrics({ processMetrics: false });
  metrics.applyPassReport(samplePassReport());
  const server = await startMetricsServer({
    listen: '127.0.0.1:0',
    registry: metrics.registry,
    isReady: () => true,
    logger: silentLogger(),
    limits: { ...TEST_LIMITS, ...limits },
  });
  servers.push(server);
  return server;
}

/** A raw client: what it received, and when the server closed it. */
interface RawClient {
  socket: Socket;
  received: () => string;
  closed: Promise<{ afterMs: number }>;
}

function rawClient(port: number): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const chunks: Buffer[] = [];
    const socket = connect({ host: '127.0.0.1', port });
    sockets.push(socket);
    const closed = new Promise<{ afterMs: number }>((done) => {
      socket.on('close', () => done({ afterMs: performance.now() - started }));
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {}); // a reset by the server is an expected outcome here
    socket.once('connect', () =>
      resolve({ socket, received: () => Buffer.concat(chunks).toString('latin1'), closed }),
    );
    socket.once('error', reject);
  });
}

async function healthz(port: number): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${port}/healthz`);
  await response.text();
  return response.status;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('metrics endpoint: malformed requests', () => {
  it.each([
    ['a garbage request line', 'GARBAGE\r\n\r\n', /^HTTP\/1\.1 400 /],
    ['binary noise', '\u0000\u0001\u00ff\u00fe\r\n\r\n', /^HTTP\/1\.1 400 /],
    ['a header without a colon', 'GET / HTTP/1.1\r\nHost x\r\n\r\n', /^HTTP\/1\.1 400 /],
    [
      'an invalid absolute URL',
      'GET http://[ HTTP/1.1\r\nHost: x\r\n\r\n',
      /^HTTP\/1\.1 400 [^]*bad request target/,
    ],
    ['HTTP/9.9', 'GET / HTTP/9.9\r\nHost: x\r\n\r\n', /^HTTP\/1\.1 (400|505) /],
    [
      'a conflicting Content-Length',
      'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
      /^HTTP\/1\.1 400 /,
    ],
    ['an unknown method', 'BREW /metrics HTTP/1.1\r\nHost: x\r\n\r\n', /^HTTP\/1\.1 (400|405) /],
  ])(
    '%s: a 4xx/5xx answer, the connection closed, the server still serving',
    async (_what, bytes, answer) => {
      const server = await start();
      const client = await rawClient(server.port);
      client.socket.write(bytes, 'latin1');
      const { afterMs } = await client.closed;
      expect(client.received()).toMatch(answer);
      expect(afterMs).toBeLessThan(5_000);
      expect(await healthz(server.port)).toBe(200);
    },
  );
});

describe('metrics endpoint: huge headers', () => {
  it('headers above maxHeaderSize get 431 and the connection is closed; just below is served', async () => {
    const server = await start();
    const limit = DEFAULT_HTTP_LIMITS.maxHeaderSize;
    const small = await rawClient(server.port);
    small.socket.write(
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(limit - 200)}\r\nConnection: close\r\n\r\n`,
    );
    await small.closed;
    expect(small.received()).toMatch(/^HTTP\/1\.1 200 /);

    const huge = await rawClient(server.port);
    // 1 MiB of headers, written without waiting: the server stops at maxHeaderSize.
    huge.socket.write(`GET /metrics HTTP/1.1\r\nHost: x\r\n`);
    for (let index = 0; index < 1024; index++) huge.socket.write(`X-H${index}: ${'b'.repeat(1010)}\r\n`);
    const { afterMs } = await huge.closed;
    expect(huge.received()).toMatch(/^HTTP\/1\.1 431 /);
    expect(afterMs).toBeLessThan(5_000);
    expect(await healthz(server.port)).toBe(200);
  });
});

describe('metrics endpoint: slow clients', () => {
  it('a slowloris (one header byte every 50 ms, never done) is cut at headersTimeout', async () => {
    const server = await start();
    const client = await rawClient(server.port);
    client.socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    const dribble = setInterval(() => {
      if (!client.socket.destroyed) client.socket.write('a');
    }, 50);
    try {
      const { afterMs } = await client.closed;
      // headersTimeout 500 ms, checked every 100 ms; generous for a loaded machine.
      expect(afterMs).toBeGreaterThanOrEqual(400);
      expect(afterMs).toBeLessThan(5_000);
    } finally {
      clearInterval(dribble);
    }
    expect(await healthz(server.port)).toBe(200);
  });

  it('a connection that never sends a byte is closed', async () => {
    const server = await start();
    const client = await rawClient(server.port);
    const { afterMs } = await client.closed;
    // Node answers 408 when headersTimeout passes with no request at all.
    expect(client.received()).toMatch(/^(|HTTP\/1\.1 408 [^]*)$/);
    expect(afterMs).toBeLessThan(5_000);
  });

  it('a body that never ends is cut at requestTimeout (bytes keep coming, so the socket is not idle)', async () => {
    const server = await start();
    const client = await rawClient(server.port);
    client.socket.write('POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n');
    const drip = setInterval(() => {
      if (!client.socket.destroyed) client.socket.write('x'.repeat(100));
    }, 50);
    try {
      const { afterMs } = await client.closed;
      expect(afterMs).toBeLessThan(6_000);
    } finally {
      clearInterval(drip);
    }
    expect(await healthz(server.port)).toBe(200);
  });

  it('a client that pipelines 2,000 scrapes and never reads gets at most maxPipelinedRequests answers', async () => {
    expect(DEFAULT_HTTP_LIMITS.maxPipelinedRequests).toBeLessThanOrEqual(16);
    const server = await start({ maxPipelinedRequests: 8 });
    const client = await rawClient(server.port);
    client.socket.pause(); // never read: the answers back up into the server's socket
    for (let index = 0; index < 2000; index++)
      client.socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
    // Node parses a whole 64 KiB read before its backpressure applies and would buffer an answer
    // (13 KB) for each of the ~1,800 requests in it; past maxPipelinedRequests unanswered the
    // server destroys the connection instead. Read what reached the kernel, then the end.
    await sleep(1_000);
    client.socket.resume();
    const { afterMs } = await client.closed;
    expect(afterMs).toBeLessThan(10_000);
    const answers = client.received().match(/HTTP\/1\.1 200 /g)?.length ?? 0;
    expect(answers).toBeLessThanOrEqual(8);
    expect(await healthz(server.port)).toBe(200);
  });

  it('a kept-alive connection left idle after a scrape is closed at keepAliveTimeout', async () => {
    const server = await start();
    const client = await rawClient(server.port);
    client.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const { afterMs } = await client.closed;
    expect(client.received()).toMatch(/^HTTP\/1\.1 200 [^]*\r\nok\n/);
    expect(afterMs).toBeLessThan(5_000);
  });
});

describe('metrics endpoint: many connections', () => {
  it('beyond maxConnections new sockets are closed at accept; the held ones time out; then it serves again', async () => {
    const maxConnections = 20;
    const server = await start({
      maxConnections,
      headersTimeoutMs: 1_500,
      requestTimeoutMs: 2_000,
      idleTimeoutMs: 1_500,
    });
    const clients: RawClient[] = [];
    for (let index = 0; index < maxConnections + 30; index++) clients.push(await rawClient(server.port));
    // Every socket is connected at the TCP level (the kernel accepts); Node closes the extras.
    const closedEarly = await Promise.all(
      clients.map((client) => Promise.race([client.closed.then(() => true), sleep(800).then(() => false)])),
    );
    const heldOpen = closedEarly.filter((closed) => !closed).length;
    expect(heldOpen).toBeLessThanOrEqual(maxConnections);
    expect(closedEarly.filter(Boolean).length).toBeGreaterThanOrEqual(30);
    // The held ones send nothing: all closed within the timeouts, then the endpoint answers.
    await Promise.all(clients.map((client) => client.closed));
    expect(await healthz(server.port)).toBe(200);
  });

  it('200 concurrent scrapes are all answered (the limit leaves room for real load)', async () => {
    const server = await start({ maxConnections: DEFAULT_HTTP_LIMITS.maxConnections });
    const statuses = await Promise.all(
      Array.from({ length: 200 }, async () => {
        const response = await fetch(`http://127.0.0.1:${server.port}/metrics`);
        await response.arrayBuffer();
        return response.status;
      }),
    );
    expect(statuses.filter((status) => status === 200)).toHaveLength(200);
  });
});
