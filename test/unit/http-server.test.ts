import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import bcrypt from 'bcryptjs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parseListenAddress } from '../../src/config/listen.js';
import { startMetricsServer, type MetricsServer } from '../../src/http/server.js';
import { silentLogger } from '../../src/log/logger.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { samplePassReport } from './metrics-sample-report.js';

const dir = mkdtempSync(path.join(tmpdir(), 'aghttp-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const servers: MetricsServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function start(options: { webConfigFile?: string; isReady?: () => boolean } = {}) {
  const metrics = createMetrics({ processMetrics: false });
  metrics.applyPassReport(samplePassReport());
  const server = await startMetricsServer({
    listen: '127.0.0.1:0',
    registry: metrics.registry,
    isReady: options.isReady ?? (() => true),
    logger: silentLogger(),
    ...(options.webConfigFile ? { webConfigFile: options.webConfigFile } : {}),
  });
  servers.push(server);
  return { server, metrics, base: `http://127.0.0.1:${server.port}` };
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** Rewrites a file with a new mtime so the server notices the change even within one second. */
let bump = 0;
function rewrite(file: string, text: string): void {
  writeFileSync(file, text);
  bump += 10;
  const when = new Date(Date.now() + bump * 1000);
  utimesSync(file, when, when);
}

describe('metrics HTTP endpoint (plain HTTP)', () => {
  it('serves the registry on /metrics with the Prometheus content type, on the ephemeral port it reports', async () => {
    const { server, metrics, base } = await start();
    expect(server.port).toBeGreaterThan(0);
    const response = await fetch(`${base}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(await response.text()).toBe(await metrics.registry.metrics());
  });

  it('compresses /metrics for clients that accept gzip (Prometheus does)', async () => {
    const { server, metrics } = await start();
    const body = await new Promise<{ encoding: string | undefined; data: Buffer }>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port: server.port, path: '/metrics', headers: { 'Accept-Encoding': 'gzip' } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () =>
            resolve({ encoding: res.headers['content-encoding'], data: Buffer.concat(chunks) }),
          );
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(body.encoding).toBe('gzip');
    expect(gunzipSync(body.data).toString('utf8')).toBe(await metrics.registry.metrics());
  });

  it('answers /healthz always and /readyz from the readiness callback', async () => {
    let ready = false;
    const { base } = await start({ isReady: () => ready });
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const notReady = await fetch(`${base}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.text()).toBe('not ready\n');
    ready = true;
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
  });

  it('refuses unknown paths and methods other than GET and HEAD', async () => {
    const { base } = await start();
    expect((await fetch(`${base}/debug/pprof`)).status).toBe(404);
    const post = await fetch(`${base}/metrics`, { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    expect((await fetch(`${base}/`)).status).toBe(200);
  });

  it('requires basic auth on every path when users are configured: 401 with WWW-Authenticate', async () => {
    const file = path.join(dir, 'auth.yml');
    writeFileSync(
      file,
      `basic_auth_users:\n  prometheus: ${bcrypt.hashSync('good', 4)}\nhttp_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n`,
    );
    const { base } = await start({ webConfigFile: file });
    for (const pathname of ['/metrics', '/healthz', '/readyz']) {
      const anonymous = await fetch(`${base}${pathname}`);
      expect(anonymous.status).toBe(401);
      expect(anonymous.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    }
    const wrong = await fetch(`${base}/metrics`, { headers: { Authorization: basic('prometheus', 'bad') } });
    expect(wrong.status).toBe(401);
    expect(await wrong.text()).not.toContain('docker_autogrow_');
    const good = await fetch(`${base}/metrics`, { headers: { Authorization: basic('prometheus', 'good') } });
    expect(good.status).toBe(200);
    expect(good.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await good.text()).toContain('docker_autogrow_build_info');
  });

  it('picks up an edited web config at the next request, and fails closed while it is invalid', async () => {
    const file = path.join(dir, 'reload.yml');
    rewrite(file, `basic_auth_users:\n  a: ${bcrypt.hashSync('one', 4)}\n`);
    const { base } = await start({ webConfigFile: file });
    const get = (user: string, password: string) =>
      fetch(`${base}/metrics`, { headers: { Authorization: basic(user, password) } }).then((r) => r.status);
    expect(await get('a', 'one')).toBe(200);

    rewrite(file, `basic_auth_users:\n  b: ${bcrypt.hashSync('two', 4)}\n`);
    expect(await get('a', 'one')).toBe(401); // a revoked user is refused at once, cache or not
    expect(await get('b', 'two')).toBe(200);

    rewrite(file, 'basic_auth_users:\n  b: not-a-hash\n');
    expect(await get('b', 'two')).toBe(500);

    rewrite(file, `basic_auth_users:\n  b: ${bcrypt.hashSync('two', 4)}\n`);
    expect(await get('b', 'two')).toBe(200);
  });

  it('applies the rate limit of the web config', async () => {
    const file = path.join(dir, 'rate.yml');
    writeFileSync(file, 'rate_limit:\n  interval: 1m\n  burst: 2\n');
    const { base } = await start({ webConfigFile: file });
    const statuses = [];
    for (let i = 0; i < 4; i += 1) statuses.push((await fetch(`${base}/healthz`)).status);
    expect(statuses).toEqual([200, 200, 429, 429]);
  });

  it('refuses to start with an invalid web config, naming the problem', async () => {
    const file = path.join(dir, 'bad.yml');
    writeFileSync(file, 'tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n');
    await expect(
      startMetricsServer({
        listen: '127.0.0.1:0',
        webConfigFile: file,
        registry: createMetrics({ processMetrics: false }).registry,
        isReady: () => true,
        logger: silentLogger(),
      }),
    ).rejects.toThrow(/tls_server_config.cert_file: cannot read \/nonexistent.crt/);
  });

  it('reports a port already in use clearly, and stops listening on close', async () => {
    const { server } = await start();
    await expect(
      startMetricsServer({
        listen: `127.0.0.1:${server.port}`,
        registry: createMetrics({ processMetrics: false }).registry,
        isReady: () => true,
        logger: silentLogger(),
      }),
    ).rejects.toThrow(`metrics endpoint cannot listen on 127.0.0.1:${server.port}: EADDRINUSE`);
    await server.close();
    servers.splice(servers.indexOf(server), 1);
    await expect(fetch(`http://127.0.0.1:${server.port}/healthz`)).rejects.toThrow();
  });

  it.each([
    ['0.0.0.0:9839', { host: '0.0.0.0', port: 9839 }],
    ['127.0.0.1:0', { host: '127.0.0.1', port: 0 }],
    [':9839', { host: undefined, port: 9839 }],
    ['[::1]:9839', { host: '::1', port: 9839 }],
    ['localhost:80', { host: 'localhost', port: 80 }],
  ])('parses listen address %s', (listen, expected) => {
    expect(parseListenAddress(listen)).toEqual(expected);
  });

  it.each(['9839', '0.0.0.0', 'host:99999', '::1:9839', ''])('refuses listen address %j', (listen) => {
    expect(() => parseListenAddress(listen)).toThrow(/metrics.listen: expected host:port/);
  });
});
