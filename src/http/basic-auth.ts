/**
 * HTTP basic authentication against bcrypt hashes (exporter-toolkit `basic_auth_users`). The only
 * module that imports bcryptjs.
 *
 * bcrypt is slow on purpose (cost 10 is ~100 ms of pure JavaScript), and Prometheus scrapes every
 * few seconds, so a successful verification is remembered briefly. The cache never holds a
 * password: it keeps, per user, SHA-256 of (user, bcrypt hash, password) and compares that with
 * `timingSafeEqual`; a changed hash in the config no longer matches. Unknown users are checked
 * against a dummy hash so response time does not reveal which user names exist. Verifications
 * run one at a time, so a flood of wrong passwords cannot take more than one core-share of CPU.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import bcrypt from 'bcryptjs';

/** A cost-10 hash of a random string nobody knows: unknown users take as long as known ones. */
const DUMMY_HASH = '$2b$10$sRiazGKrhKVt6RLRq99R9egZJmaOuRvZSW0AXmdMjWajTXA4Il.La';

export type AuthResult = 'ok' | 'denied' | 'busy';

export interface BasicAuthOptions {
  /** How long a verified password is remembered (default 60 s). */
  cacheTtlMs?: number;
  /** Verifications allowed to wait for the one running; more are answered `busy` (default 32). */
  maxQueuedVerifications?: number;
  now?: () => number;
}

interface CachedVerification {
  digest: Buffer;
  expiresAtMs: number;
}

/** Parses `Authorization: Basic <base64(user:password)>`; null when absent or malformed. */
export function parseBasicAuthorization(
  header: string | undefined,
): { user: string; password: string } | null {
  if (!header) return null;
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!match) return null;
  const decoded = Buffer.from(match[1] as string, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function digestOf(user: string, hash: string, password: string): Buffer {
  return createHash('sha256').update(user).update('\0').update(hash).update('\0').update(password).digest();
}

export class BasicAuth {
  private readonly cache = new Map<string, CachedVerification>();
  private queue: Promise<unknown> = Promise.resolve();
  private queued = 0;
  private readonly cacheTtlMs: number;
  private readonly maxQueued: number;
  private readonly now: () => number;

  constructor(
    private readonly users: ReadonlyMap<string, string>,
    options: BasicAuthOptions = {},
  ) {
    this.cacheTtlMs = options.cacheTtlMs ?? 60_000;
    this.maxQueued = options.maxQueuedVerifications ?? 32;
    this.now = options.now ?? Date.now;
  }

  /** True when no users are configured: every request is allowed. */
  get disabled(): boolean {
    return this.users.size === 0;
  }

  /** Checks an Authorization header. */
  async check(authorization: string | undefined): Promise<AuthResult> {
    if (this.disabled) return 'ok';
    const credentials = parseBasicAuthorization(authorization);
    if (!credentials) return 'denied';
    const { user, password } = credentials;
    const hash = this.users.get(user);
    const digest = digestOf(user, hash ?? DUMMY_HASH, password);

    const cached = hash === undefined ? undefined : this.cache.get(user);
    if (cached && cached.expiresAtMs > this.now() && timingSafeEqual(cached.digest, digest)) return 'ok';

    if (this.queued >= this.maxQueued) return 'busy';
    this.queued += 1;
    const verification = this.queue.then(() => bcrypt.compare(password, hash ?? DUMMY_HASH));
    this.queue = verification.catch(() => undefined);
    let matches: boolean;
    try {
      matches = await verification;
    } catch {
      matches = false;
    } finally {
      this.queued -= 1;
    }
    if (!matches || hash === undefined) return 'denied';
    this.cache.set(user, { digest, expiresAtMs: this.now() + this.cacheTtlMs });
    return 'ok';
  }
}
