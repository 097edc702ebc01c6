import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import bcrypt from 'bcryptjs';
import { BasicAuth, parseBasicAuthorization } from '../../src/http/basic-auth.js';
import { parseGoDurationMs, parseWebConfig, WebConfigError } from '../../src/http/web-config.js';

const dir = mkdtempSync(path.join(tmpdir(), 'agwebcfg-'));
// parseWebConfig reads the files it names but does not check them: these stand in for PEM files.
writeFileSync(path.join(dir, 'server.crt'), 'CERT');
writeFileSync(path.join(dir, 'server.key'), 'KEY');
writeFileSync(path.join(dir, 'ca.crt'), 'CA');
const source = path.join(dir, 'web.yml');

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HASH = bcrypt.hashSync('s3cret', 4);

function basicHeader(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

function problemOf(text: string): string {
  try {
    parseWebConfig(text, source);
  } catch (error) {
    expect(error).toBeInstanceOf(WebConfigError);
    return (error as Error).message;
  }
  throw new Error('expected the web config to be refused');
}

describe('exporter-toolkit web config', () => {
  it('accepts an empty file: plain HTTP, no authentication', () => {
    const config = parseWebConfig('', source);
    expect(config.tls).toBeNull();
    expect(config.basicAuthUsers.size).toBe(0);
    expect(config.headers).toEqual({});
  });

  it('reads a node_exporter-style file: TLS files relative to the config, users, headers, rate limit', () => {
    const config = parseWebConfig(
      [
        'tls_server_config:',
        '  cert_file: server.crt',
        '  key_file: server.key',
        '  client_auth_type: RequireAndVerifyClientCert',
        '  client_ca_file: ca.crt',
        '  min_version: TLS13',
        '  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]',
        '  curve_preferences: [X25519, CurveP256]',
        'http_server_config:',
        '  http2: false',
        '  headers:',
        '    X-Frame-Options: deny',
        '    Content-Security-Policy: ""',
        'basic_auth_users:',
        `  prometheus: ${HASH}`,
        'rate_limit:',
        '  interval: 100ms',
        '  burst: 5',
      ].join('\n'),
      source,
    );
    expect(config.tls?.context).toMatchObject({
      cert: 'CERT',
      key: 'KEY',
      ca: 'CA',
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      ciphers: 'ECDHE-RSA-AES128-GCM-SHA256',
      ecdhCurve: 'X25519:P-256',
      honorCipherOrder: true,
    });
    expect(config.tls?.clientCerts).toMatchObject({
      requestCert: true,
      rejectUnauthorized: true,
      requireCert: true,
    });
    expect(config.tls?.files).toEqual([
      path.join(dir, 'server.crt'),
      path.join(dir, 'server.key'),
      path.join(dir, 'ca.crt'),
    ]);
    expect(config.headers).toEqual({ 'X-Frame-Options': 'deny' });
    expect(config.basicAuthUsers.get('prometheus')).toBe(HASH);
    expect(config.rateLimit).toEqual({ intervalMs: 100, burst: 5 });
    expect(config.http2).toBe(false);
  });

  it.each([
    ['tls_config:\n  cert_file: a\n', 'tls_config: unknown key'],
    ['tls_server_config:\n  key_file: server.key\n', 'missing cert_file'],
    ['tls_server_config:\n  cert_file: server.crt\n  key_file: nope.key\n', 'cannot read'],
    [
      'tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: Always\n',
      'expected one of NoClientCert',
    ],
    [
      'tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n',
      'needs client_ca_file',
    ],
    [
      'tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n',
      'client CA configured without',
    ],
    [
      'tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: SSL3\n',
      'min_version',
    ],
    [
      'tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\n  max_version: TLS12\n',
      'min_version is above max_version',
    ],
    [
      'tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  cipher_suites: [RC4]\n',
      'unknown cipher suite',
    ],
    ['basic_auth_users:\n  prometheus: plaintext-password\n', 'expected a bcrypt hash'],
    ['http_server_config:\n  headers:\n    X-Powered-By: me\n', 'header not allowed'],
    ['http_server_config:\n  headers:\n    X-Frame-Options: allow\n', 'expected one of deny, sameorigin'],
    ['rate_limit:\n  interval: fast\n  burst: 1\n', 'expected a Go duration'],
    ['basic_auth_users: [oops\n', 'invalid YAML'],
    ['basic_auth_users:\n  a: x\n  a: y\n', 'invalid YAML'],
  ])('refuses %j with a clear message', (text, expected) => {
    const message = problemOf(text);
    expect(message).toContain(expected);
    expect(message).toContain(source);
  });

  it('never echoes a password or key value in an error message', () => {
    const message = problemOf('basic_auth_users:\n  prometheus: hunter2-plaintext\n');
    expect(message).toContain('basic_auth_users.prometheus');
    expect(message).not.toContain('hunter2');
    const keyMessage = problemOf('tls_server_config:\n  cert: CERT\n  key: 12345\n');
    expect(keyMessage).toContain('tls_server_config.key');
    expect(keyMessage).not.toContain('12345');
  });

  it('parses Go durations', () => {
    expect(parseGoDurationMs('1s')).toBe(1000);
    expect(parseGoDurationMs('1m30s')).toBe(90_000);
    expect(parseGoDurationMs('250ms')).toBe(250);
    expect(parseGoDurationMs('0')).toBe(0);
    expect(() => parseGoDurationMs('10')).toThrow();
  });
});

describe('basic auth against bcrypt hashes', () => {
  it('parses Authorization headers, including passwords with colons', () => {
    expect(parseBasicAuthorization(basicHeader('u', 'p:w'))).toEqual({ user: 'u', password: 'p:w' });
    expect(parseBasicAuthorization('Bearer abc')).toBeNull();
    expect(parseBasicAuthorization(undefined)).toBeNull();
    expect(parseBasicAuthorization(`Basic ${Buffer.from('nocolon').toString('base64')}`)).toBeNull();
  });

  it('allows the right password and refuses a wrong one, an unknown user or no header', async () => {
    const auth = new BasicAuth(new Map([['prometheus', HASH]]));
    expect(await auth.check(basicHeader('prometheus', 's3cret'))).toBe('ok');
    expect(await auth.check(basicHeader('prometheus', 'wrong'))).toBe('denied');
    expect(await auth.check(basicHeader('nobody', 's3cret'))).toBe('denied');
    expect(await auth.check(undefined)).toBe('denied');
  });

  it('accepts $2y$ hashes made by htpasswd', async () => {
    const auth = new BasicAuth(new Map([['p', HASH.replace(/^\$2b\$/, '$2y$')]]));
    expect(await auth.check(basicHeader('p', 's3cret'))).toBe('ok');
  });

  it('remembers a verified password briefly, then verifies again', async () => {
    const slowHash = bcrypt.hashSync('s3cret', 10);
    let now = 0;
    const auth = new BasicAuth(new Map([['p', slowHash]]), { cacheTtlMs: 1000, now: () => now });
    const header = basicHeader('p', 's3cret');
    const time = async (): Promise<number> => {
      const start = performance.now();
      expect(await auth.check(header)).toBe('ok');
      return performance.now() - start;
    };
    const first = await time();
    const cached = await time();
    now = 2000;
    const expired = await time();
    // bcrypt cost 10 takes tens of milliseconds in JavaScript; a cache hit is a SHA-256
    expect(first).toBeGreaterThan(20);
    expect(cached).toBeLessThan(first / 10);
    expect(expired).toBeGreaterThan(20);
    // a wrong password is never served from the cache
    expect(await auth.check(basicHeader('p', 'wrong'))).toBe('denied');
  });

  it('answers busy instead of queueing unbounded bcrypt work', async () => {
    const auth = new BasicAuth(new Map([['p', bcrypt.hashSync('x', 8)]]), { maxQueuedVerifications: 2 });
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, index) => auth.check(basicHeader('p', `guess-${index}`))),
    );
    expect(results.filter((result) => result === 'busy').length).toBe(3);
    expect(results.filter((result) => result === 'denied').length).toBe(2);
  });
});
