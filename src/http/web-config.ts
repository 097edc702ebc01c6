/**
 * The Prometheus exporter-toolkit web configuration file (`--web.config.file` of node_exporter and
 * friends), so operators reuse the TLS and basic-auth files they already have:
 *
 *   tls_server_config: cert_file, key_file (or inline cert, key), client_auth_type, client_ca_file
 *     (or client_ca), client_allowed_sans, min_version, max_version, cipher_suites,
 *     prefer_server_cipher_suites, curve_preferences
 *   http_server_config: http2 (accepted; this server speaks HTTP/1.1), headers
 *   basic_auth_users: user -> bcrypt hash
 *   rate_limit: interval (Go duration), burst
 *
 * Unknown keys are errors, as in the toolkit (it unmarshals strictly). Relative file names are
 * resolved against the directory of the web config file. This module only parses and validates;
 * src/http/server.ts applies the result.
 */
import { errorMessage } from '../util/errors.js';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { SecureContextOptions } from 'node:tls';
import { z } from 'zod';
import { parseYamlBounded, readBoundedTextFile, YamlFileError } from '../config/bounded-yaml.js';
import { describeIssues } from '../config/load.js';

/** Go's tls.ClientAuthType names; only RequireAndVerifyClientCert really authenticates clients. */
export const CLIENT_AUTH_TYPES = [
  'NoClientCert',
  'RequestClientCert',
  'RequireAnyClientCert',
  'VerifyClientCertIfGiven',
  'RequireAndVerifyClientCert',
] as const;
export type ClientAuthType = (typeof CLIENT_AUTH_TYPES)[number];

const TLS_VERSIONS = {
  TLS10: 'TLSv1',
  TLS11: 'TLSv1.1',
  TLS12: 'TLSv1.2',
  TLS13: 'TLSv1.3',
} as const satisfies Record<string, SecureContextOptions['minVersion']>;
type TlsVersionName = keyof typeof TLS_VERSIONS;

/**
 * Go cipher suite names (crypto/tls CipherSuites()) mapped to OpenSSL names. The TLS 1.3 suites
 * cannot be configured in Go either, so they are accepted and left to the defaults.
 */
const GO_CIPHER_SUITES: Record<string, string | null> = {
  TLS_RSA_WITH_AES_128_CBC_SHA: 'AES128-SHA',
  TLS_RSA_WITH_AES_256_CBC_SHA: 'AES256-SHA',
  TLS_RSA_WITH_AES_128_GCM_SHA256: 'AES128-GCM-SHA256',
  TLS_RSA_WITH_AES_256_GCM_SHA384: 'AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_AES_128_GCM_SHA256: null,
  TLS_AES_256_GCM_SHA384: null,
  TLS_CHACHA20_POLY1305_SHA256: null,
};

/** Go's tls.CurveID names mapped to OpenSSL group names. */
const GO_CURVES: Record<string, string> = {
  CurveP256: 'P-256',
  CurveP384: 'P-384',
  CurveP521: 'P-521',
  X25519: 'X25519',
};

/** The security headers the toolkit allows, with the values it allows (null: any string). */
const ALLOWED_HEADERS: Record<string, readonly string[] | null> = {
  'Content-Security-Policy': null,
  'X-Frame-Options': ['deny', 'sameorigin'],
  'X-Content-Type-Options': ['nosniff'],
  'X-XSS-Protection': null,
  'Strict-Transport-Security': null,
};

const GO_DURATION_UNITS_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Parses a Go duration (`1s`, `100ms`, `1m30s`, `0`) into milliseconds. */
export function parseGoDurationMs(text: string): number {
  if (text === '0') return 0;
  const parts = text.match(/\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h)/g);
  if (!parts || parts.join('') !== text) throw new Error(`not a Go duration: ${JSON.stringify(text)}`);
  let total = 0;
  for (const part of parts) {
    const match = /^(\d+(?:\.\d+)?)(\D+)$/.exec(part);
    total += Number(match?.[1]) * (GO_DURATION_UNITS_MS[match?.[2] ?? ''] ?? Number.NaN);
  }
  return total;
}

const BCRYPT_HASH = /^\$2[aby]?\$\d{2}\$[./A-Za-z0-9]{53}$/;

const tlsVersion = z.enum(Object.keys(TLS_VERSIONS) as [TlsVersionName, ...TlsVersionName[]], {
  error: `expected one of ${Object.keys(TLS_VERSIONS).join(', ')}`,
});

const tlsServerConfigSchema = z
  .strictObject({
    cert: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    client_ca: z.string().min(1).optional(),
    cert_file: z.string().min(1).optional(),
    key_file: z.string().min(1).optional(),
    client_auth_type: z
      .enum(CLIENT_AUTH_TYPES, { error: `expected one of ${CLIENT_AUTH_TYPES.join(', ')}` })
      .default('NoClientCert'),
    client_ca_file: z.string().min(1).optional(),
    client_allowed_sans: z.array(z.string().min(1)).optional(),
    min_version: tlsVersion.default('TLS12'),
    max_version: tlsVersion.default('TLS13'),
    cipher_suites: z
      .array(
        z.string().refine((name) => name in GO_CIPHER_SUITES, {
          message:
            'unknown cipher suite (use Go crypto/tls names such as TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)',
        }),
      )
      .optional(),
    prefer_server_cipher_suites: z.boolean().default(true),
    curve_preferences: z
      .array(
        z.string().refine((name) => name in GO_CURVES, {
          message: `unknown curve (expected one of ${Object.keys(GO_CURVES).join(', ')})`,
        }),
      )
      .optional(),
  })
  .superRefine((tls, ctx) => {
    const problem = (message: string, key: string) => ctx.addIssue({ code: 'custom', message, path: [key] });
    if (!tls.cert && !tls.cert_file) problem('missing cert_file (or cert)', 'cert_file');
    if (!tls.key && !tls.key_file) problem('missing key_file (or key)', 'key_file');
    if (tls.cert && tls.cert_file) problem('give cert or cert_file, not both', 'cert');
    if (tls.key && tls.key_file) problem('give key or key_file, not both', 'key');
    if (tls.client_ca && tls.client_ca_file)
      problem('give client_ca or client_ca_file, not both', 'client_ca');
    const hasClientCa = Boolean(tls.client_ca || tls.client_ca_file);
    if (hasClientCa && tls.client_auth_type === 'NoClientCert') {
      problem(
        'client CA configured without a client_auth_type that asks for client certificates',
        'client_ca_file',
      );
    }
    const verifies =
      tls.client_auth_type === 'VerifyClientCertIfGiven' ||
      tls.client_auth_type === 'RequireAndVerifyClientCert';
    if (verifies && !hasClientCa) problem(`${tls.client_auth_type} needs client_ca_file`, 'client_ca_file');
    if (
      tls.client_allowed_sans?.length &&
      tls.client_auth_type !== 'RequireAnyClientCert' &&
      tls.client_auth_type !== 'RequireAndVerifyClientCert'
    ) {
      problem(
        'client_allowed_sans needs RequireAnyClientCert or RequireAndVerifyClientCert',
        'client_allowed_sans',
      );
    }
    if (tls.min_version > tls.max_version) problem('min_version is above max_version', 'min_version');
  });

const webConfigSchema = z.strictObject({
  tls_server_config: tlsServerConfigSchema.optional(),
  http_server_config: z
    .strictObject({
      http2: z.boolean().default(true),
      headers: z
        .record(z.string(), z.string())
        .superRefine((headers, ctx) => {
          for (const [name, value] of Object.entries(headers)) {
            if (!(name in ALLOWED_HEADERS)) {
              ctx.addIssue({
                code: 'custom',
                path: [name],
                message: `header not allowed (allowed: ${Object.keys(ALLOWED_HEADERS).join(', ')})`,
              });
              continue;
            }
            const allowedValues = ALLOWED_HEADERS[name];
            if (value !== '' && allowedValues && !allowedValues.includes(value.toLowerCase())) {
              ctx.addIssue({
                code: 'custom',
                path: [name],
                message: `expected one of ${allowedValues.join(', ')}`,
              });
            }
          }
        })
        .optional(),
    })
    .optional(),
  basic_auth_users: z
    .record(
      z.string().min(1),
      z
        .string()
        .regex(
          BCRYPT_HASH,
          'expected a bcrypt hash such as $2y$10$... (htpasswd -nBC 10 "" | tr -d \':\\n\')',
        ),
    )
    .nullish(),
  rate_limit: z
    .strictObject({
      interval: z.string().transform((text, ctx): number => {
        try {
          return parseGoDurationMs(text);
        } catch {
          ctx.addIssue({ code: 'custom', message: 'expected a Go duration such as 1s or 100ms' });
          return z.NEVER;
        }
      }),
      burst: z.number().int().min(0),
    })
    .optional(),
});

/** How the listener asks for and checks client certificates (fixed for the life of the listener). */
export interface ClientCertPolicy {
  type: ClientAuthType;
  /** Node `requestCert`. */
  requestCert: boolean;
  /** Node `rejectUnauthorized`: the TLS layer itself refuses unverified certificates. */
  rejectUnauthorized: boolean;
  /** Refuse the connection when the client sent no certificate. */
  requireCert: boolean;
  /** Refuse a certificate that was sent but does not verify against the client CA. */
  requireVerifiedIfGiven: boolean;
  /** When set, the client certificate must carry one of these SANs. */
  allowedSans: readonly string[] | null;
}

export interface TlsSettings {
  /** Everything `tls.createSecureContext` needs; files already read. */
  context: SecureContextOptions;
  clientCerts: ClientCertPolicy;
  /** Files the context was read from, so a change (certificate rotation) triggers a reload. */
  files: readonly string[];
}

export interface WebConfig {
  tls: TlsSettings | null;
  /** Headers added to every response. */
  headers: Readonly<Record<string, string>>;
  /** user -> bcrypt hash; empty means no authentication. */
  basicAuthUsers: ReadonlyMap<string, string>;
  rateLimit: { intervalMs: number; burst: number } | null;
  /** Accepted for compatibility; this server speaks HTTP/1.1 only. */
  http2: boolean;
}

/** A web config file that cannot be used; the message names the file, the key and the problem. */
export class WebConfigError extends Error {
  override readonly name = 'WebConfigError';
}

function clientCertPolicy(
  type: ClientAuthType,
  allowedSans: readonly string[] | undefined,
): ClientCertPolicy {
  return {
    type,
    requestCert: type !== 'NoClientCert',
    rejectUnauthorized: type === 'RequireAndVerifyClientCert',
    requireCert: type === 'RequireAnyClientCert' || type === 'RequireAndVerifyClientCert',
    requireVerifiedIfGiven: type === 'VerifyClientCertIfGiven' || type === 'RequireAndVerifyClientCert',
    allowedSans: allowedSans && allowedSans.length > 0 ? allowedSans : null,
  };
}

/** Hides what may be a password (a plaintext value where a hash belongs) or a key from error messages. */
function redactSecrets(raw: unknown): unknown {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return raw;
  const copy: Record<string, unknown> = { ...(raw as Record<string, unknown>) };
  const users = copy.basic_auth_users;
  if (users !== null && typeof users === 'object' && !Array.isArray(users)) {
    copy.basic_auth_users = Object.fromEntries(Object.keys(users).map((user) => [user, '<redacted>']));
  }
  const tls = copy.tls_server_config;
  if (tls !== null && typeof tls === 'object' && !Array.isArray(tls) && 'key' in tls) {
    copy.tls_server_config = { ...tls, key: '<redacted>' };
  }
  return copy;
}

/** Parses and validates web config text; reads the certificate files it names. */
export function parseWebConfig(text: string, source: string): WebConfig {
  let raw: unknown;
  try {
    // Bounded like the agent's own config: alias bombs, deep nesting, duplicate keys in linear time.
    raw = parseYamlBounded(text) ?? {};
  } catch (error) {
    if (!(error instanceof YamlFileError)) throw error;
    throw new WebConfigError(error.describeIn(`web config ${source}`));
  }
  const result = webConfigSchema.safeParse(raw);
  if (!result.success) {
    const problems = describeIssues(result.error.issues, redactSecrets(raw));
    throw new WebConfigError(`invalid web config ${source}:\n  ${problems.join('\n  ')}`);
  }
  const parsed = result.data;
  const baseDir = path.dirname(path.resolve(source));
  const resolve = (file: string) => path.resolve(baseDir, file);
  const files: string[] = [];
  const readPem = (file: string, key: string): string => {
    const full = resolve(file);
    files.push(full);
    try {
      return readFileSync(full, 'utf8');
    } catch (error) {
      throw new WebConfigError(
        `invalid web config ${source}: tls_server_config.${key}: cannot read ${full}: ${errorMessage(error)}`,
      );
    }
  };

  let tls: TlsSettings | null = null;
  const tlsConfig = parsed.tls_server_config;
  if (tlsConfig) {
    const context: SecureContextOptions = {
      cert: tlsConfig.cert ?? readPem(tlsConfig.cert_file as string, 'cert_file'),
      key: tlsConfig.key ?? readPem(tlsConfig.key_file as string, 'key_file'),
      minVersion: TLS_VERSIONS[tlsConfig.min_version],
      maxVersion: TLS_VERSIONS[tlsConfig.max_version],
      honorCipherOrder: tlsConfig.prefer_server_cipher_suites,
    };
    const ca =
      tlsConfig.client_ca ??
      (tlsConfig.client_ca_file && readPem(tlsConfig.client_ca_file, 'client_ca_file'));
    if (ca) context.ca = ca;
    const ciphers = (tlsConfig.cipher_suites ?? []).map((name) => GO_CIPHER_SUITES[name]).filter(Boolean);
    if (ciphers.length > 0) context.ciphers = ciphers.join(':');
    if (tlsConfig.curve_preferences?.length) {
      context.ecdhCurve = tlsConfig.curve_preferences.map((name) => GO_CURVES[name]).join(':');
    }
    tls = {
      context,
      clientCerts: clientCertPolicy(tlsConfig.client_auth_type, tlsConfig.client_allowed_sans),
      files,
    };
  }

  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(parsed.http_server_config?.headers ?? {})) {
    if (value !== '') headers[name] = value;
  }
  return {
    tls,
    headers,
    basicAuthUsers: new Map(Object.entries(parsed.basic_auth_users ?? {})),
    rateLimit:
      parsed.rate_limit && parsed.rate_limit.interval > 0
        ? { intervalMs: parsed.rate_limit.interval, burst: parsed.rate_limit.burst }
        : null,
    http2: parsed.http_server_config?.http2 ?? true,
  };
}

/** Reads and parses the web config file. */
export function loadWebConfigFile(file: string): WebConfig {
  let text: string;
  try {
    // Re-read on every change: a FIFO or a device put there must not hang or fill the agent.
    text = readBoundedTextFile(file);
  } catch (error) {
    throw new WebConfigError(`cannot read web config ${file}: ${errorMessage(error)}`);
  }
  return parseWebConfig(text, file);
}

/** A cheap fingerprint of files (mtime, size, inode) to notice edits and certificate rotation. */
export function filesFingerprint(files: readonly string[]): string {
  return files
    .map((file) => {
      try {
        const stat = statSync(file);
        return `${file}:${stat.mtimeMs}:${stat.size}:${stat.ino}`;
      } catch {
        return `${file}:missing`;
      }
    })
    .join('|');
}

/** Why `file` cannot be used as the metrics web config, or null when it loads (config check, doctor). */
export function webConfigFileProblem(file: string): string | null {
  try {
    loadWebConfigFile(file);
    return null;
  } catch (error) {
    return errorMessage(error);
  }
}
