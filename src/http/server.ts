/**
 * The agent's HTTP endpoint: `/metrics` (the registry serialised; never runs a command),
 * `/healthz` (the process is alive and serving), `/readyz` (the app's readiness callback: first
 * pass done and Docker reachable), and a small index page.
 *
 * With a web config file (exporter-toolkit format, see web-config.ts) the listener is TLS-only
 * when `tls_server_config` is present, every path needs basic auth when `basic_auth_users` is
 * present, and the configured security headers are added. As in the toolkit, the file is checked
 * on every request: edited users and headers apply at once, a rotated certificate applies to the
 * next connection, and a file that became invalid makes every request fail with 500 (fail closed)
 * until it is fixed. Turning TLS on or off or changing client_auth_type needs a restart.
 */
import { errorMessage } from '../util/errors.js';
import { parseListenAddress } from '../config/listen.js';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { gzipSync } from 'node:zlib';
import type { Logger } from '../log/logger.js';
import type { MetricsRegistry } from '../metrics/metrics.js';
import { BasicAuth } from './basic-auth.js';
import {
  filesFingerprint,
  loadWebConfigFile,
  WebConfigError,
  type ClientCertPolicy,
  type WebConfig,
} from './web-config.js';

/**
 * What one client, or many, can hold of the agent through this endpoint. A scrape is one small
 * request answered in milliseconds; everything else (a slowloris dribbling headers, a client that
 * never reads, thousands of sockets) is cut at these bounds, so memory stays at most about
 * maxConnections x (maxHeaderSize + one /metrics body).
 */
export interface HttpLimits {
  /** Request line and headers, in bytes: larger is answered 431 (Node's default is 16 KiB). */
  maxHeaderSize: number;
  /** Time to receive the complete headers, from the first byte of a request. */
  headersTimeoutMs: number;
  /** Time to receive the complete request, body included. */
  requestTimeoutMs: number;
  /** A connection with no traffic either way for this long is closed (a client that never reads). */
  idleTimeoutMs: number;
  /** Between two requests on a kept-alive connection. */
  keepAliveTimeoutMs: number;
  /** Open connections at once; further ones are closed at accept (Prometheus needs a handful). */
  maxConnections: number;
  /** How often Node checks headersTimeout and requestTimeout (its default, 30 s, lets them overrun). */
  connectionsCheckingIntervalMs: number;
  /**
   * Requests one connection may have unanswered at once. Node parses a whole read (64 KiB, about
   * 1,800 pipelined `GET /metrics`) before its backpressure applies and buffers every answer (13 KB
   * each): one client that never reads would hold 24 MB. Scrapers do not pipeline; the connection
   * of a client that goes past this is destroyed.
   */
  maxPipelinedRequests: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  maxHeaderSize: 8 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  idleTimeoutMs: 30_000,
  keepAliveTimeoutMs: 30_000,
  maxConnections: 256,
  connectionsCheckingIntervalMs: 1_000,
  maxPipelinedRequests: 8,
};

export interface MetricsServerOptions {
  /** `host:port`, `[v6]:port` or `:port` (all interfaces); port 0 picks a free port. */
  listen: string;
  /** exporter-toolkit web config: TLS, basic auth, headers, rate limit. */
  webConfigFile?: string;
  registry: MetricsRegistry;
  /** Readiness for `/readyz`: the first pass is done and Docker is reachable. */
  isReady: () => boolean;
  logger: Logger;
  /** Defaults: {@link DEFAULT_HTTP_LIMITS}; tests shorten the timeouts. */
  limits?: Partial<HttpLimits>;
}

export interface MetricsServer {
  /** The port actually listened on (the ephemeral one when asked for 0). */
  readonly port: number;
  /** Stops accepting, closes idle keep-alive connections, resolves when closed. */
  close(): Promise<void>;
}

/** Token bucket for the toolkit's `rate_limit` (a global limit, as in the toolkit). */
class TokenBucket {
  private tokens: number;
  private updatedAtMs = Date.now();

  constructor(
    private readonly intervalMs: number,
    private readonly burst: number,
  ) {
    this.tokens = Math.max(1, burst);
  }

  take(): boolean {
    const now = Date.now();
    this.tokens = Math.min(Math.max(1, this.burst), this.tokens + (now - this.updatedAtMs) / this.intervalMs);
    this.updatedAtMs = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** The web config in force, reloaded when the file or the certificates it names change. */
class WebConfigSource {
  private fingerprint = '';
  private config: WebConfig | null = null;
  private auth = new BasicAuth(new Map());
  private bucket: TokenBucket | null = null;
  private error: string | null = null;

  constructor(
    private readonly file: string | undefined,
    private readonly logger: Logger,
    private readonly onTlsContext: (config: WebConfig) => void,
  ) {}

  /** Loads at start-up: an invalid file is an error the agent must not start with. */
  loadInitial(): WebConfig | null {
    if (!this.file) return null;
    this.apply(loadWebConfigFile(this.file));
    this.fingerprint = this.currentFingerprint();
    return this.config;
  }

  private currentFingerprint(): string {
    if (!this.file) return '';
    return filesFingerprint([this.file, ...(this.config?.tls?.files ?? [])]);
  }

  private apply(config: WebConfig): void {
    this.config = config;
    this.auth = new BasicAuth(config.basicAuthUsers);
    this.bucket = config.rateLimit
      ? new TokenBucket(config.rateLimit.intervalMs, config.rateLimit.burst)
      : null;
    this.error = null;
  }

  /** Current settings, or an error message when the file became unusable. */
  current(): { config: WebConfig | null; auth: BasicAuth; bucket: TokenBucket | null; error: string | null } {
    if (this.file) {
      const fingerprint = this.currentFingerprint();
      if (fingerprint !== this.fingerprint) {
        this.fingerprint = fingerprint;
        this.reload(this.file);
      }
    }
    return { config: this.config, auth: this.auth, bucket: this.bucket, error: this.error };
  }

  private reload(file: string): void {
    const previous = this.config;
    try {
      const next = loadWebConfigFile(file);
      if (Boolean(next.tls) !== Boolean(previous?.tls)) {
        throw new WebConfigError(`web config ${file}: turning TLS on or off needs a restart of the agent`);
      }
      if (
        next.tls &&
        previous?.tls &&
        !sameClientCertPolicy(next.tls.clientCerts, previous.tls.clientCerts)
      ) {
        throw new WebConfigError(
          `web config ${file}: changing client_auth_type needs a restart of the agent`,
        );
      }
      if (next.tls) this.onTlsContext(next);
      this.apply(next);
      // the fingerprint now includes the certificate files of the new config
      this.fingerprint = this.currentFingerprint();
      this.logger.info({ webConfigFile: file }, 'web config reloaded');
    } catch (error) {
      this.error = errorMessage(error);
      this.logger.error(
        { webConfigFile: file, err: this.error },
        'web config invalid: refusing requests until fixed',
      );
    }
  }
}

function sameClientCertPolicy(a: ClientCertPolicy, b: ClientCertPolicy): boolean {
  return a.type === b.type;
}

const INDEX_HTML = `<!doctype html>
<html><head><title>docker-autogrow</title></head>
<body><h1>docker-autogrow</h1>
<ul><li><a href="metrics">metrics</a></li><li><a href="healthz">healthz</a></li><li><a href="readyz">readyz</a></li></ul>
</body></html>
`;

/** Refuses TLS clients whose certificate does not satisfy the policy Node cannot express itself. */
function checkClientCertificate(socket: TLSSocket, policy: ClientCertPolicy): string | null {
  if (!policy.requestCert) return null;
  const certificate = socket.getPeerCertificate();
  const given = Boolean(certificate && Object.keys(certificate).length > 0);
  if (!given) return policy.requireCert ? 'no client certificate' : null;
  if (policy.requireVerifiedIfGiven && !socket.authorized) {
    return `client certificate not verified: ${String(socket.authorizationError)}`;
  }
  if (policy.allowedSans) {
    const sans = (certificate.subjectaltname ?? '')
      .split(',')
      .map((entry) => entry.trim().replace(/^(DNS|IP Address|email|URI):/, ''));
    if (!policy.allowedSans.some((allowed) => sans.includes(allowed)))
      return 'client certificate SAN not allowed';
  }
  return null;
}

export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const { logger } = options;
  const { host, port } = parseListenAddress(options.listen);
  let server: Server;
  const source = new WebConfigSource(options.webConfigFile, logger, (config) => {
    if (config.tls && 'setSecureContext' in server) {
      (server as unknown as { setSecureContext(options: object): void }).setSecureContext(config.tls.context);
    }
  });
  const initial = source.loadInitial();

  const limits: HttpLimits = { ...DEFAULT_HTTP_LIMITS, ...options.limits };
  const unanswered = new WeakMap<Socket, number>();
  const handler = (request: IncomingMessage, response: ServerResponse): void => {
    const socket = request.socket;
    const pending = (unanswered.get(socket) ?? 0) + 1;
    unanswered.set(socket, pending);
    response.once('close', () => unanswered.set(socket, (unanswered.get(socket) ?? 1) - 1));
    if (pending > limits.maxPipelinedRequests) {
      logger.debug(
        { remote: socket.remoteAddress, pending },
        'metrics endpoint: too many pipelined requests',
      );
      socket.destroy();
      return;
    }
    handle(request, response).catch((error: unknown) => {
      logger.error({ err: error, url: request.url }, 'metrics endpoint request failed');
      if (!response.headersSent) response.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
      response.end('internal error\n');
    });
  };

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const { config, auth, bucket, error } = source.current();
    if (error) {
      response.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
      response.end('web config invalid; see the agent log\n');
      return;
    }
    for (const [name, value] of Object.entries(config?.headers ?? {})) response.setHeader(name, value);
    if (bucket && !bucket.take()) {
      response.writeHead(429, { 'Content-Type': 'text/plain; charset=utf-8' });
      response.end('too many requests\n');
      return;
    }
    if (!auth.disabled) {
      const result = await auth.check(request.headers.authorization);
      if (result !== 'ok') {
        logger.debug(
          { remote: request.socket.remoteAddress, url: request.url, result },
          'metrics endpoint auth refused',
        );
        response.writeHead(result === 'busy' ? 429 : 401, {
          'Content-Type': 'text/plain; charset=utf-8',
          'WWW-Authenticate': 'Basic realm="docker-autogrow", charset="UTF-8"',
        });
        response.end(result === 'busy' ? 'too many authentication attempts\n' : 'unauthorized\n');
        return;
      }
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' });
      response.end('method not allowed\n');
      return;
    }
    let pathname: string;
    try {
      pathname = new URL(request.url ?? '/', 'http://localhost').pathname;
    } catch {
      // `GET http://[ HTTP/1.1` passes Node's parser; it is the client's error, not a 500 to log.
      response.writeHead(400, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' });
      response.end('bad request target\n');
      return;
    }
    switch (pathname) {
      case '/metrics': {
        const body = Buffer.from(await options.registry.metrics(), 'utf8');
        const gzip = /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));
        const payload = gzip ? gzipSync(body) : body;
        response.writeHead(200, {
          'Content-Type': options.registry.contentType,
          'Content-Length': payload.length,
          ...(gzip ? { 'Content-Encoding': 'gzip' } : {}),
          Vary: 'Accept-Encoding',
        });
        response.end(request.method === 'HEAD' ? undefined : payload);
        return;
      }
      case '/healthz':
        response.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
        response.end('ok\n');
        return;
      case '/readyz': {
        const ready = options.isReady();
        response.writeHead(ready ? 200 : 503, { 'Content-Type': 'text/plain; charset=utf-8' });
        response.end(ready ? 'ready\n' : 'not ready\n');
        return;
      }
      case '/':
        response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
        response.end(INDEX_HTML);
        return;
      default:
        response.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
        response.end('not found\n');
    }
  };

  const serverOptions = {
    maxHeaderSize: limits.maxHeaderSize,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: limits.connectionsCheckingIntervalMs,
  };
  const tls = initial?.tls ?? null;
  if (tls) {
    const policy = tls.clientCerts;
    server = createHttpsServer(
      {
        ...serverOptions,
        ...tls.context,
        requestCert: policy.requestCert,
        rejectUnauthorized: policy.rejectUnauthorized,
      },
      handler,
    );
    server.on('secureConnection', (socket: TLSSocket) => {
      const refusal = checkClientCertificate(socket, policy);
      if (refusal) {
        logger.debug({ remote: socket.remoteAddress, refusal }, 'metrics endpoint TLS client refused');
        socket.destroy();
      }
    });
    server.on('tlsClientError', (error: Error, socket: Socket) => {
      logger.debug(
        { remote: socket.remoteAddress, err: error.message },
        'metrics endpoint TLS handshake failed',
      );
    });
  } else {
    server = createHttpServer(serverOptions, handler);
  }
  // A scrape is small; slow, idle or too many clients must not hold sockets for long.
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.maxConnections = limits.maxConnections;
  // Idle both ways (a client that sends nothing, or stops reading its answer): the server has no
  // 'timeout' listener, so Node destroys the socket.
  server.timeout = limits.idleTimeoutMs;

  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      reject(
        new Error(`metrics endpoint cannot listen on ${options.listen}: ${error.code ?? error.message}`),
      );
    };
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (error) => logger.error({ err: error }, 'metrics endpoint error'));

  const actualPort = (server.address() as AddressInfo).port;
  logger.info(
    {
      listen: options.listen,
      port: actualPort,
      tls: Boolean(tls),
      basicAuth: (initial?.basicAuthUsers.size ?? 0) > 0,
      webConfigFile: options.webConfigFile,
    },
    'metrics endpoint listening',
  );

  return {
    port: actualPort,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeIdleConnections();
      }),
  };
}
