/**
 * Which Docker daemon to talk to, resolved the way the docker CLI resolves it (docker/cli
 * cli/command/cli.go `resolveContextName` + `resolveDockerEndpoint`):
 *
 *   1. `--host` / `-H` on the command line
 *   2. `docker.host` in the configuration (or a non-default `docker.socketPath`)
 *   3. `DOCKER_HOST` (with `DOCKER_TLS_VERIFY` / `DOCKER_TLS` / `DOCKER_CERT_PATH` for tcp://)
 *   4. the current docker context: `DOCKER_CONTEXT`, else `currentContext` in
 *      `$DOCKER_CONFIG/config.json` (default `~/.docker`), read from
 *      `$DOCKER_CONFIG/contexts/meta/<sha256 of the name>/meta.json`
 *   5. the default socket, /var/run/docker.sock
 *
 * Pure: every file read goes through `readFile`, so tests give it a map. The result says where the
 * endpoint came from, for `status`, the start log and the "cannot reach Docker" hint. Only
 * src/docker/client.ts turns it into a connection.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';

export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';
/** docker/cli: the plain-text and TLS ports a `tcp://host` without a port means. */
const DEFAULT_TCP_PORT = 2375;
const DEFAULT_TLS_PORT = 2376;

/** Where the endpoint came from, most specific first. */
export type EndpointSource =
  | { kind: 'flag' }
  | { kind: 'config'; key: 'docker.host' | 'docker.socketPath' }
  | { kind: 'env' }
  | { kind: 'context'; name: string; via: 'DOCKER_CONTEXT' | 'config.json'; metaPath: string }
  | { kind: 'default' };

export interface TlsFiles {
  caPath: string;
  certPath: string;
  keyPath: string;
  /** Verify the daemon's certificate against caPath (DOCKER_TLS_VERIFY; a context's !SkipTLSVerify). */
  verify: boolean;
}

export type DockerEndpoint =
  | { kind: 'unix'; socketPath: string; source: EndpointSource }
  | { kind: 'tcp'; hostname: string; port: number; tls: TlsFiles | null; source: EndpointSource };

/** An endpoint that cannot be used: a bad address, a context that does not exist, ssh://. */
export class DockerEndpointError extends Error {
  override readonly name = 'DockerEndpointError';
}

export interface EndpointInputs {
  /** `--host` / `-H`. */
  flagHost?: string | undefined;
  /** `docker.host` from the configuration. */
  configHost?: string | undefined;
  /** `docker.socketPath` from the configuration (counts as configured when not the default). */
  configSocketPath?: string | undefined;
  env: Readonly<Record<string, string | undefined>>;
  /** The user's home directory (for ~/.docker). */
  homeDir: string;
  /** Reads a text file; null when it does not exist or cannot be read. */
  readFile: (filePath: string) => string | null;
}

/** `unix:///run/docker.sock` or `tcp://127.0.0.1:2375` — the address as the docker CLI writes it. */
export function endpointAddress(endpoint: DockerEndpoint): string {
  return endpoint.kind === 'unix'
    ? `unix://${endpoint.socketPath}`
    : `tcp://${endpoint.hostname.includes(':') ? `[${endpoint.hostname}]` : endpoint.hostname}:${endpoint.port}`;
}

/** "from DOCKER_HOST", "from docker context "x" (DOCKER_CONTEXT)", "default socket", ... */
export function describeEndpointSource(source: EndpointSource): string {
  switch (source.kind) {
    case 'flag':
      return 'from --host';
    case 'config':
      return `from ${source.key} in the configuration`;
    case 'env':
      return 'from DOCKER_HOST';
    case 'context':
      return `from docker context "${source.name}" (${source.via === 'DOCKER_CONTEXT' ? 'DOCKER_CONTEXT' : 'currentContext in config.json'})`;
    case 'default':
      return 'the default socket';
  }
}

/** One line: `unix:///var/run/docker.sock (the default socket)`, `tcp://h:2376 with TLS (from DOCKER_HOST)`. */
export function describeEndpoint(endpoint: DockerEndpoint): string {
  const tls =
    endpoint.kind === 'tcp' && endpoint.tls
      ? endpoint.tls.verify
        ? ' with TLS'
        : ' with TLS (not verified)'
      : '';
  return `${endpointAddress(endpoint)}${tls} (${describeEndpointSource(endpoint.source)})`;
}

/** What to change when the endpoint does not answer: depends on where it came from. */
export function endpointHint(endpoint: DockerEndpoint): string {
  switch (endpoint.source.kind) {
    case 'flag':
      return 'check the --host address, or leave it out to use DOCKER_HOST, the docker context or the default socket';
    case 'config':
      return `check ${endpoint.source.key} in the configuration`;
    case 'env':
      return 'check DOCKER_HOST (unset it to use the docker context or the default socket)';
    case 'context':
      return `check docker context "${endpoint.source.name}" (docker context inspect ${endpoint.source.name}), or switch with docker context use default`;
    case 'default':
      return 'start Docker (systemctl start docker), or set --host, docker.host or DOCKER_HOST to where the daemon listens';
  }
}

/** Parses a docker CLI host address (`unix:///path`, `tcp://host[:port]`, `/path`). */
export function parseDockerHost(
  address: string,
  source: EndpointSource,
  tls: TlsFiles | null = null,
): DockerEndpoint {
  const value = address.trim();
  if (value === '')
    throw new DockerEndpointError(`empty Docker host address (${describeEndpointSource(source)})`);
  if (value.startsWith('/')) return { kind: 'unix', socketPath: path.normalize(value), source };
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(value)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    throw new DockerEndpointError(
      `Docker host "${value}" (${describeEndpointSource(source)}) has no scheme: write unix:///path/docker.sock or tcp://host:port`,
    );
  }
  if (scheme === 'unix') {
    const socketPath = value.slice('unix://'.length);
    if (!socketPath.startsWith('/')) {
      throw new DockerEndpointError(
        `Docker host "${value}" (${describeEndpointSource(source)}): unix:// needs an absolute path (unix:///run/docker.sock)`,
      );
    }
    return { kind: 'unix', socketPath: path.normalize(socketPath), source };
  }
  if (scheme === 'tcp' || scheme === 'http' || scheme === 'https') {
    let url: URL;
    try {
      url = new URL(`http://${value.slice(scheme.length + 3)}`);
    } catch {
      throw new DockerEndpointError(
        `Docker host "${value}" (${describeEndpointSource(source)}) is not a valid address`,
      );
    }
    if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.username !== '') {
      throw new DockerEndpointError(
        `Docker host "${value}" (${describeEndpointSource(source)}): only tcp://host:port is supported (no path, query or user)`,
      );
    }
    const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1');
    if (hostname === '') throw new DockerEndpointError(`Docker host "${value}" has no host name`);
    const port = url.port === '' ? (tls ? DEFAULT_TLS_PORT : DEFAULT_TCP_PORT) : Number(url.port);
    return { kind: 'tcp', hostname, port, tls, source };
  }
  if (scheme === 'ssh') {
    throw new DockerEndpointError(
      `Docker host "${value}" (${describeEndpointSource(source)}): ssh:// is not supported by docker-autogrow (it runs on the Docker host; use the local socket)`,
    );
  }
  throw new DockerEndpointError(
    `Docker host "${value}" (${describeEndpointSource(source)}): unsupported scheme ${scheme}:// (use unix:// or tcp://)`,
  );
}

/** docker/cli: DOCKER_TLS_VERIFY (any non-empty value) verifies; DOCKER_TLS alone encrypts only. */
function tlsFromEnv(env: EndpointInputs['env'], dockerConfigDir: string): TlsFiles | null {
  const verify = (env['DOCKER_TLS_VERIFY'] ?? '') !== '';
  const tls = verify || (env['DOCKER_TLS'] ?? '') !== '';
  if (!tls) return null;
  const certDir = env['DOCKER_CERT_PATH'] || dockerConfigDir;
  return {
    caPath: path.join(certDir, 'ca.pem'),
    certPath: path.join(certDir, 'cert.pem'),
    keyPath: path.join(certDir, 'key.pem'),
    verify,
  };
}

/** The docker CLI's configuration directory: $DOCKER_CONFIG, else ~/.docker. */
export function dockerConfigDir(env: EndpointInputs['env'], homeDir: string): string {
  return env['DOCKER_CONFIG'] || path.join(homeDir, '.docker');
}

/** docker/cli context store: the metadata directory is named by the sha256 of the context name. */
export function contextMetaPath(configDir: string, name: string): string {
  const digest = createHash('sha256').update(name).digest('hex');
  return path.join(configDir, 'contexts', 'meta', digest, 'meta.json');
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new DockerEndpointError(`${what} is not valid JSON`);
  }
}

function asRecord(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

/** The context the CLI would use, or null for "default" (which means DOCKER_HOST or the socket). */
function currentContextName(
  inputs: EndpointInputs,
  configDir: string,
): { name: string; via: 'DOCKER_CONTEXT' | 'config.json' } | null {
  const fromEnv = inputs.env['DOCKER_CONTEXT'];
  if (fromEnv) return fromEnv === 'default' ? null : { name: fromEnv, via: 'DOCKER_CONTEXT' };
  const configPath = path.join(configDir, 'config.json');
  const text = inputs.readFile(configPath);
  if (text === null) return null;
  const current = asRecord(parseJson(text, configPath))['currentContext'];
  if (typeof current !== 'string' || current === '' || current === 'default') return null;
  return { name: current, via: 'config.json' };
}

function contextEndpoint(
  inputs: EndpointInputs,
  configDir: string,
  context: { name: string; via: 'DOCKER_CONTEXT' | 'config.json' },
): DockerEndpoint {
  const metaPath = contextMetaPath(configDir, context.name);
  const source: EndpointSource = { kind: 'context', ...context, metaPath };
  const text = inputs.readFile(metaPath);
  if (text === null) {
    throw new DockerEndpointError(
      `docker context "${context.name}" (${describeEndpointSource(source)}) does not exist: no ${metaPath}`,
    );
  }
  const docker = asRecord(asRecord(asRecord(parseJson(text, metaPath))['Endpoints'])['docker']);
  const host = docker['Host'];
  if (typeof host !== 'string' || host === '') {
    throw new DockerEndpointError(
      `docker context "${context.name}" has no docker endpoint Host in ${metaPath}`,
    );
  }
  // The context's TLS material, when `docker context create --docker ca=,cert=,key=` stored some.
  const digest = path.basename(path.dirname(metaPath));
  const tlsDir = path.join(configDir, 'contexts', 'tls', digest, 'docker');
  const caPath = path.join(tlsDir, 'ca.pem');
  const certPath = path.join(tlsDir, 'cert.pem');
  const keyPath = path.join(tlsDir, 'key.pem');
  const hasTls = inputs.readFile(caPath) !== null || inputs.readFile(certPath) !== null;
  const tls: TlsFiles | null = hasTls
    ? { caPath, certPath, keyPath, verify: docker['SkipTLSVerify'] !== true }
    : null;
  return parseDockerHost(host, source, tls);
}

/** Resolves the endpoint (see the module comment for the order). Throws {@link DockerEndpointError}. */
export function resolveDockerEndpoint(inputs: EndpointInputs): DockerEndpoint {
  const configDir = dockerConfigDir(inputs.env, inputs.homeDir);
  const envTls = tlsFromEnv(inputs.env, configDir);
  if (inputs.flagHost) return parseDockerHost(inputs.flagHost, { kind: 'flag' }, envTls);
  if (inputs.configHost)
    return parseDockerHost(inputs.configHost, { kind: 'config', key: 'docker.host' }, envTls);
  if (inputs.configSocketPath && inputs.configSocketPath !== DEFAULT_DOCKER_SOCKET) {
    return {
      kind: 'unix',
      socketPath: inputs.configSocketPath,
      source: { kind: 'config', key: 'docker.socketPath' },
    };
  }
  const envHost = inputs.env['DOCKER_HOST'];
  if (envHost) return parseDockerHost(envHost, { kind: 'env' }, envTls);
  const context = currentContextName(inputs, configDir);
  if (context) return contextEndpoint(inputs, configDir, context);
  return { kind: 'unix', socketPath: DEFAULT_DOCKER_SOCKET, source: { kind: 'default' } };
}
