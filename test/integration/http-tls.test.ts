/**
 * The metrics endpoint with a real exporter-toolkit web config: certificates made by openssl here,
 * a real TLS listener, real TLS clients (node:https and curl). Proves: a good client scrapes, a
 * wrong password gets 401, plain HTTP is refused, client certificates are enforced, the minimum
 * TLS version holds, and a rotated certificate is served without a restart.
 */
import { execFile } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import bcrypt from 'bcryptjs';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { startMetricsServer, type MetricsServer } from '../../src/http/server.js';
import { silentLogger } from '../../src/log/logger.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { describeWith } from '../support/prereqs.js';
import {
  CLIENT_EXTENSIONS,
  SERVER_EXTENSIONS,
  TestCertificates,
  executable,
  opensslPrereq,
} from './http-certs.js';
import { samplePassReport } from '../unit/metrics-sample-report.js';

const execFileAsync = promisify(execFile);

const certs = new TestCertificates();
const file = (name: string) => certs.file(name);
const SERVER_EXT = SERVER_EXTENSIONS;
const CLIENT_EXT = CLIENT_EXTENSIONS;
const makeCa = (name: string) => certs.makeCa(name);
const makeCert = (name: string, ca: string, extensions: string) => certs.makeCert(name, ca, extensions);

interface Reply {
  status: number;
  body: string;
  peerFingerprint: string;
}

function httpsGet(port: number, options: RequestOptions & { path?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path: '/metrics',
        ca: readFileSync(file('ca.crt')),
        agent: false,
        ...options,
      },
      (res) => {
        const peerFingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, peerFingerprint }));
      },
    );
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

function basic(user: string, password: string): Record<string, string> {
  return { Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` };
}

const servers: MetricsServer[] = [];
async function start(webConfig: string): Promise<MetricsServer> {
  const configFile = file(`web-${servers.length}.yml`);
  writeFileSync(configFile, webConfig);
  const metrics = createMetrics({ processMetrics: false });
  metrics.applyPassReport(samplePassReport());
  const server = await startMetricsServer({
    listen: '127.0.0.1:0',
    webConfigFile: configFile,
    registry: metrics.registry,
    isReady: () => true,
    logger: silentLogger(),
  });
  servers.push(server);
  return server;
}

const HASH = bcrypt.hashSync('correct horse', 10);

describeWith(
  [opensslPrereq, executable('curl', '/usr/bin/curl')],
  'metrics endpoint with TLS and basic auth (real certificates)',
  () => {
    beforeAll(async () => {
      await makeCa('ca');
      await makeCa('rogue-ca');
      await makeCert('server', 'ca', SERVER_EXT);
      await makeCert('client', 'ca', CLIENT_EXT);
      await makeCert('rogue-client', 'rogue-ca', CLIENT_EXT);
    });

    afterEach(async () => {
      await Promise.all(servers.splice(0).map((server) => server.close()));
    });

    afterAll(() => certs.remove());

    const tlsAndAuth = [
      'tls_server_config:',
      '  cert_file: server.crt',
      '  key_file: server.key',
      'basic_auth_users:',
      `  prometheus: ${HASH}`,
    ].join('\n');

    it('lets a good client scrape over verified TLS with the right password', async () => {
      const server = await start(tlsAndAuth);
      const reply = await httpsGet(server.port, { headers: basic('prometheus', 'correct horse') });
      expect(reply.status).toBe(200);
      expect(reply.body).toContain('docker_autogrow_container_used_bytes{');
    });

    it('answers 401 to a wrong password and to no password, over TLS', async () => {
      const server = await start(tlsAndAuth);
      const wrong = await httpsGet(server.port, { headers: basic('prometheus', 'Tr0ub4dor&3') });
      expect(wrong.status).toBe(401);
      expect(wrong.body).not.toContain('docker_autogrow');
      expect((await httpsGet(server.port)).status).toBe(401);
    });

    it('refuses plain HTTP on the TLS port (no HTTP response at all)', async () => {
      const server = await start(tlsAndAuth);
      const outcome = await new Promise<string>((resolve) => {
        const req = httpRequest(
          { host: '127.0.0.1', port: server.port, path: '/metrics', agent: false },
          (res) => resolve(`HTTP ${res.statusCode}`),
        );
        req.on('error', (error: NodeJS.ErrnoException) => resolve(`error ${error.code ?? error.message}`));
        req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
        req.end();
      });
      expect(outcome).toMatch(/^error (ECONNRESET|EPIPE|socket hang up)/);
    });

    it('is verified by curl, a client operators use, against the CA', async () => {
      const server = await start(tlsAndAuth);
      const { stdout } = await execFileAsync('/usr/bin/curl', [
        '--silent',
        '--show-error',
        '--cacert',
        file('ca.crt'),
        '--user',
        'prometheus:correct horse',
        '--write-out',
        '\n%{http_code}',
        `https://localhost:${server.port}/metrics`,
      ]);
      expect(stdout.trim().split('\n').at(-1)).toBe('200');
      const insecure = await execFileAsync('/usr/bin/curl', [
        '--silent',
        '--write-out',
        '%{http_code}',
        '--output',
        '/dev/null',
        `http://localhost:${server.port}/metrics`,
      ]).catch((error: { code?: number; stdout?: string }) => error);
      // curl gets no HTTP answer from a TLS listener: status 000 and a non-zero exit
      expect((insecure as { stdout?: string }).stdout).toBe('000');
    });

    it('enforces RequireAndVerifyClientCert: no certificate or a foreign one fails, ours succeeds', async () => {
      const server = await start(
        [
          'tls_server_config:',
          '  cert_file: server.crt',
          '  key_file: server.key',
          '  client_auth_type: RequireAndVerifyClientCert',
          '  client_ca_file: ca.crt',
          '  client_allowed_sans: [prometheus.example]',
        ].join('\n'),
      );
      await expect(httpsGet(server.port)).rejects.toThrow();
      await expect(
        httpsGet(server.port, {
          cert: readFileSync(file('rogue-client.crt')),
          key: readFileSync(file('rogue-client.key')),
        }),
      ).rejects.toThrow();
      const good = await httpsGet(server.port, {
        cert: readFileSync(file('client.crt')),
        key: readFileSync(file('client.key')),
      });
      expect(good.status).toBe(200);
    });

    it('refuses a client certificate without an allowed SAN', async () => {
      const server = await start(
        [
          'tls_server_config:',
          '  cert_file: server.crt',
          '  key_file: server.key',
          '  client_auth_type: RequireAndVerifyClientCert',
          '  client_ca_file: ca.crt',
          '  client_allowed_sans: [scraper.other]',
        ].join('\n'),
      );
      await expect(
        httpsGet(server.port, {
          cert: readFileSync(file('client.crt')),
          key: readFileSync(file('client.key')),
        }),
      ).rejects.toThrow();
    });

    it('holds min_version: a TLS 1.2-only client cannot connect to a TLS13 listener', async () => {
      const server = await start(
        [
          'tls_server_config:',
          '  cert_file: server.crt',
          '  key_file: server.key',
          '  min_version: TLS13',
        ].join('\n'),
      );
      await expect(httpsGet(server.port, { maxVersion: 'TLSv1.2' })).rejects.toThrow();
      expect((await httpsGet(server.port)).status).toBe(200);
    });

    it('serves a rotated certificate to new connections without a restart', async () => {
      const server = await start(tlsAndAuth);
      const auth = basic('prometheus', 'correct horse');
      const before = await httpsGet(server.port, { headers: auth });
      // rotate: a new key and certificate replace the files atomically, as certbot-style tools do
      await makeCert('server-next', 'ca', SERVER_EXT);
      renameSync(file('server-next.key'), file('server.key'));
      renameSync(file('server-next.crt'), file('server.crt'));
      // the first request after the change reloads; the connection after it gets the new certificate
      await httpsGet(server.port, { headers: auth });
      const after = await httpsGet(server.port, { headers: auth });
      expect(after.status).toBe(200);
      expect(after.peerFingerprint).not.toBe(before.peerFingerprint);
    });
  },
);
