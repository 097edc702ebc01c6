/**
 * The Docker adapter: the only module that imports dockerode. It implements the daemon-facing
 * {@link DockerApi} port and the raw {@link DockerEventSource} under the event stream; mapping of
 * the JSON it returns lives in ./mapping.ts, the choice of daemon in ./endpoint.ts.
 *
 * - Connects to a resolved {@link DockerEndpoint} (unix socket, or tcp with optional TLS) and never
 *   lets docker-modem read DOCKER_HOST / DOCKER_CERT_PATH itself (its defaults would silently win
 *   over the endpoint we resolved).
 * - Negotiates the API version like the docker CLI: asks the unversioned `/version` once, then
 *   uses min(daemon's ApiVersion, {@link MAX_API_VERSION}) as the path prefix.
 * - Every call has a whole-call deadline (`timeoutMs`): docker-modem's own timeout only fires on an
 *   idle socket, so a daemon dribbling one byte a second would hold a call forever.
 * - Failures are {@link DockerApiError}s with a kind; the first failure of an outage is logged once
 *   as a warning (with the endpoint and where it came from), repeats at debug, recovery at info.
 *
 * Never asks for sizes (`size=true` walks every layer of every container and stalls busy daemons).
 */
import { readFileSync } from 'node:fs';
import https from 'node:https';
import Module, { createRequire } from 'node:module';
import type Docker from 'dockerode';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../log/logger.js';
import { describeEndpoint, endpointAddress, endpointHint, type DockerEndpoint } from './endpoint.js';
import { DockerApiError } from './errors.js';
import { assertContainerId, isContainerId } from './ids.js';
import type { DockerApi } from './inventory-port.js';
import type { DockerEventSource } from './events.js';
import { DockerDataError, mapContainerInspect, mapDockerInfo } from './mapping.js';
import type { ContainerInfo, DockerInfo } from './model.js';
import {
  assertRemovable,
  mapBuildCache,
  mapBuildPrune,
  mapContainerList,
  mapImageList,
  mapVolumeList,
} from './prune-mapping.js';
import type {
  BuildCacheFacts,
  ContainerFacts,
  ImageFacts,
  ReclaimDockerApi,
  VolumeFacts,
} from '../contracts/reclaim.js';

/**
 * Loads dockerode without the two stacks it requires eagerly that the agent never uses: dockerode 4's
 * lib/session.js (the BuildKit session of `docker build`: @grpc/grpc-js, @grpc/proto-loader,
 * protobufjs, uuid, ~140 files) and docker-modem's lib/ssh.js (ssh2 and its crypto, ~35 files, for
 * ssh:// hosts, which ./endpoint.ts refuses). Each is put in the CommonJS require cache as a function
 * that loads the real module on its first call and forwards to it, so nothing changes for a caller
 * that does use them. Measured on the host: `require('dockerode')` went from 231 files, ~145 ms and
 * ~61 MiB RSS to 56 files, ~40 ms and ~50 MiB (docs/benchmarks.md, agent start).
 */
function loadDockerode(): typeof Docker {
  const requireHere = createRequire(import.meta.url);
  const dockerodeMain = requireHere.resolve('dockerode');
  const requireFromDockerode = createRequire(dockerodeMain);
  deferUntilCalled(requireFromDockerode, './session.js');
  deferUntilCalled(createRequire(requireFromDockerode.resolve('docker-modem')), './ssh.js');
  return requireHere('dockerode') as typeof Docker;
}

/** Puts a deferred stand-in for a module whose export is one function (see {@link loadDockerode}). */
function deferUntilCalled(requireFrom: NodeJS.Require, specifier: string): void {
  let filename: string;
  try {
    filename = requireFrom.resolve(specifier);
  } catch {
    return; // another layout of the package: load it as it is
  }
  if (requireFrom.cache[filename]) return;
  let real: ((...args: unknown[]) => unknown) | undefined;
  const standIn = new Module(filename);
  standIn.filename = filename;
  standIn.loaded = true;
  standIn.exports = function deferred(this: unknown, ...args: unknown[]): unknown {
    if (!real) {
      delete requireFrom.cache[filename];
      real = requireFrom(filename) as (...args: unknown[]) => unknown;
    }
    return real.apply(this, args);
  };
  requireFrom.cache[filename] = standIn;
}

const DockerCtor = loadDockerode();

/**
 * The newest API version whose answers ./mapping.ts was checked against (Engine 29: from 1.52
 * inspect has Storage.RootFS.Snapshot instead of GraphDriver under the containerd store).
 */
export const MAX_API_VERSION = '1.52';
/** The oldest we speak to: Engine 20.10. */
export const MIN_API_VERSION = '1.41';

export interface DockerClientOptions {
  /** Where the daemon is (src/docker/endpoint.ts). */
  endpoint?: DockerEndpoint;
  /** Shorthand for a unix endpoint (tests, doctor). */
  socketPath?: string;
  /** Whole-call deadline for API calls; for the event stream, the time until the daemon answers. */
  timeoutMs: number;
  /** Outage warnings go here (one per outage); none when absent. */
  logger?: Logger;
}

/** A daemon answer with an HTTP status (dockerode attaches `statusCode` to its errors). */
function httpStatusOf(error: unknown): number | null {
  if (typeof error === 'object' && error !== null && 'statusCode' in error) {
    const status = (error as { statusCode: unknown }).statusCode;
    return typeof status === 'number' ? status : null;
  }
  return null;
}

/** "1.41" -> [1, 41]; null for anything else. */
function parseApiVersion(value: unknown): [number, number] | null {
  if (typeof value !== 'string') return null;
  const match = /^(\d+)\.(\d+)$/.exec(value.trim());
  return match ? [Number(match[1]), Number(match[2])] : null;
}

function compareApiVersions(a: [number, number], b: [number, number]): number {
  return a[0] !== b[0] ? a[0] - b[0] : a[1] - b[1];
}

/** docker CLI negotiation: the daemon's version, capped at ours; refused when the daemon is too old. */
export function negotiateApiVersion(serverApiVersion: unknown): string {
  const server = parseApiVersion(serverApiVersion);
  const max = parseApiVersion(MAX_API_VERSION) as [number, number];
  const min = parseApiVersion(MIN_API_VERSION) as [number, number];
  if (!server) throw new Error(`/version has no usable ApiVersion: ${JSON.stringify(serverApiVersion)}`);
  if (compareApiVersions(server, min) < 0) {
    throw new Error(
      `the daemon speaks API ${server.join('.')}; docker-autogrow needs ${MIN_API_VERSION} (Engine 20.10) or newer`,
    );
  }
  return (compareApiVersions(server, max) > 0 ? max : server).join('.');
}

/** `/info` validated before anything uses it: a proxy or a broken daemon answering `{}` is not Docker. */
export function validateDockerInfo(info: DockerInfo): DockerInfo {
  const problems: string[] = [];
  if (info.serverVersion === '') problems.push('no ServerVersion');
  if (info.driver === '' || !/^[a-z0-9][a-z0-9_.-]*$/i.test(info.driver)) problems.push('no usable Driver');
  if (!info.dockerRootDir.startsWith('/')) problems.push('no absolute DockerRootDir');
  if (problems.length > 0)
    throw new DockerDataError(`/info is not a Docker daemon's answer (${problems.join(', ')})`);
  return info;
}

/** dockerode/docker-modem options that never fall back to DOCKER_HOST / DOCKER_CERT_PATH. */
function modemOptions(endpoint: DockerEndpoint): Docker.DockerOptions {
  // docker-modem merges its environment defaults under ours (Object.assign): name every key.
  const neutral = {
    socketPath: undefined,
    host: undefined,
    port: undefined,
    protocol: undefined,
    ca: undefined,
    cert: undefined,
    key: undefined,
    pathPrefix: undefined,
    agent: undefined,
  };
  if (endpoint.kind === 'unix')
    return { ...neutral, socketPath: endpoint.socketPath } as Docker.DockerOptions;
  const base = { ...neutral, host: endpoint.hostname, port: endpoint.port };
  if (!endpoint.tls) return { ...base, protocol: 'http' } as Docker.DockerOptions;
  const read = (file: string) => {
    try {
      return readFileSync(file);
    } catch (error) {
      throw new DockerApiError(
        `cannot read TLS file ${file}: ${errorMessage(error)}`,
        'unreachable',
        'connect',
      );
    }
  };
  const tls = {
    ca: read(endpoint.tls.caPath),
    cert: read(endpoint.tls.certPath),
    key: read(endpoint.tls.keyPath),
  };
  return {
    ...base,
    protocol: 'https',
    ...tls,
    // DOCKER_TLS without _VERIFY (or a context with SkipTLSVerify): encrypted, not authenticated
    ...(endpoint.tls.verify ? {} : { agent: new https.Agent({ ...tls, rejectUnauthorized: false }) }),
  } as Docker.DockerOptions;
}

function endpointOf(options: DockerClientOptions): DockerEndpoint {
  if (options.endpoint) return options.endpoint;
  if (options.socketPath)
    return {
      kind: 'unix',
      socketPath: options.socketPath,
      source: { kind: 'config', key: 'docker.socketPath' },
    };
  throw new Error('DockerClient needs an endpoint or a socketPath');
}

export class DockerClient implements DockerApi, DockerEventSource, ReclaimDockerApi {
  readonly endpoint: DockerEndpoint;
  private readonly api: Docker;
  /**
   * A second dockerode for the event stream: docker-modem's `timeout` is a socket idle timeout,
   * which would cut a quiet event stream every `timeoutMs`. This one only bounds the time until the
   * daemon answers (`connectionTimeout`, cleared on the response).
   */
  private readonly eventsApi: Docker;
  private negotiated: Promise<string> | null = null;
  /** Failures since the last success (0: healthy); the first one is logged as a warning. */
  private failuresInOutage = 0;
  private outageStartedMs = 0;
  private everAnswered = false;

  constructor(readonly options: DockerClientOptions) {
    this.endpoint = endpointOf(options);
    const modem = modemOptions(this.endpoint);
    this.api = new DockerCtor({ ...modem, timeout: options.timeoutMs });
    this.eventsApi = new DockerCtor({ ...modem, connectionTimeout: options.timeoutMs } as never);
  }

  /** `unix:///var/run/docker.sock (the default socket)`: for status, logs and errors. */
  get description(): string {
    return describeEndpoint(this.endpoint);
  }

  /** The API version in use, once negotiated (null before the first call). */
  apiVersion: string | null = null;

  private negotiate(): Promise<string> {
    this.negotiated ??= this.call('version', async (signal) => {
      const raw = asObjectOrThrow(await this.api.version({ abortSignal: signal } as never), '/version');
      let version: string;
      try {
        version = negotiateApiVersion(raw['ApiVersion']);
      } catch (error) {
        throw new DockerApiError(`${errorMessage(error)}`, 'version', 'version');
      }
      this.apiVersion = version;
      // docker-modem prefixes every path with this from now on
      (this.api.modem as { version?: string }).version = `v${version}`;
      (this.eventsApi.modem as { version?: string }).version = `v${version}`;
      return version;
    }).catch((error: unknown) => {
      this.negotiated = null; // try again on the next call
      throw error;
    });
    return this.negotiated;
  }

  /**
   * Runs one API call under a whole-call deadline and turns every failure into a
   * {@link DockerApiError}; tracks outages for the one-warning-per-outage log.
   */
  private async call<T>(what: string, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const abort = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        abort.abort();
        reject(
          new DockerApiError(
            `Docker at ${endpointAddress(this.endpoint)} gave no complete answer to ${what} within ${this.options.timeoutMs} ms`,
            'timeout',
            what,
          ),
        );
      }, this.options.timeoutMs);
    });
    try {
      const result = await Promise.race([run(abort.signal), deadline]);
      this.noteSuccess();
      return result;
    } catch (error) {
      const typed = this.typedError(what, error);
      // an HTTP answer (404, 409, 500 from one request) is the daemon talking: not an outage
      if (typed.kind === 'http') this.noteSuccess();
      else this.noteFailure(typed);
      throw typed;
    } finally {
      clearTimeout(timer);
    }
  }

  private typedError(what: string, error: unknown): DockerApiError {
    if (error instanceof DockerApiError) return error;
    const status = httpStatusOf(error);
    const message = errorMessage(error);
    if (status !== null) {
      return new DockerApiError(`docker ${what}: HTTP ${status}: ${message}`, 'http', what, status);
    }
    if (error instanceof DockerDataError || error instanceof SyntaxError) {
      return new DockerApiError(
        `docker ${what}: unexpected answer from ${endpointAddress(this.endpoint)}: ${message}`,
        'garbage',
        what,
      );
    }
    return new DockerApiError(
      `cannot reach Docker at ${describeEndpoint(this.endpoint)}: ${message}; ${endpointHint(this.endpoint)}`,
      'unreachable',
      what,
    );
  }

  private noteSuccess(): void {
    this.everAnswered = true;
    if (this.failuresInOutage > 0) {
      this.options.logger?.info(
        {
          endpoint: endpointAddress(this.endpoint),
          failedCalls: this.failuresInOutage,
          outageMs: Date.now() - this.outageStartedMs,
        },
        'Docker answers again',
      );
    }
    this.failuresInOutage = 0;
  }

  private noteFailure(error: DockerApiError): void {
    this.failuresInOutage += 1;
    // Before the daemon ever answered, the caller reports the failure (a one-shot CLI error): an
    // outage is losing a daemon that worked.
    if (!this.everAnswered) return;
    if (this.failuresInOutage === 1) {
      this.outageStartedMs = Date.now();
      this.options.logger?.warn(
        { endpoint: endpointAddress(this.endpoint), kind: error.kind, call: error.call, err: error.message },
        'Docker is not answering; retrying quietly until it does',
      );
    } else {
      this.options.logger?.debug(
        { kind: error.kind, call: error.call, err: error.message },
        'Docker still not answering',
      );
    }
  }

  /** True while the last call failed for want of a daemon (not an HTTP error). */
  get inOutage(): boolean {
    return this.failuresInOutage > 0;
  }

  async info(): Promise<DockerInfo> {
    await this.negotiate();
    return this.call('info', async (signal) => {
      const [rawInfo, rawVersion] = await Promise.all([
        this.api.info({ abortSignal: signal } as never),
        this.api.version({ abortSignal: signal } as never),
      ]);
      return validateDockerInfo(
        mapDockerInfo(asObjectOrThrow(rawInfo, '/info'), asObjectOrThrow(rawVersion, '/version')),
      );
    });
  }

  /** All containers, running or not. No `size` parameter: the daemon default is false. */
  async listContainerIds(): Promise<string[]> {
    await this.negotiate();
    return this.call('container list', async (signal) => {
      const list: unknown = await this.api.listContainers({ all: true, abortSignal: signal } as never);
      if (!Array.isArray(list)) throw new DockerDataError('container list is not an array');
      const ids: string[] = [];
      for (const entry of list) {
        const id = typeof entry === 'object' && entry !== null ? (entry as { Id?: unknown }).Id : undefined;
        if (isContainerId(id)) ids.push(id);
      }
      return ids;
    });
  }

  async inspectContainer(id: string): Promise<ContainerInfo | null> {
    assertContainerId(id);
    await this.negotiate();
    try {
      return await this.call('container inspect', async (signal) =>
        mapContainerInspect(await this.api.getContainer(id).inspect({ abortSignal: signal } as never)),
      );
    } catch (error) {
      if (error instanceof DockerApiError && error.statusCode === 404) return null;
      throw error;
    }
  }

  async ping(): Promise<boolean> {
    try {
      await this.call(
        'ping',
        (signal) => this.api.ping({ abortSignal: signal } as never) as unknown as Promise<unknown>,
      );
      return true;
    } catch {
      return false;
    }
  }

  /** `GET /events?filters={"type":["container"]}[&since=...]`: the raw, never-ending HTTP body. */
  async openEvents(options: { since?: string; signal: AbortSignal }): Promise<NodeJS.ReadableStream> {
    await this.negotiate();
    const query: Record<string, unknown> = {
      filters: { type: ['container'] },
      abortSignal: options.signal,
    };
    if (options.since !== undefined) query['since'] = options.since;
    return (await this.eventsApi.getEvents(query as Docker.GetEventsOptions)) as NodeJS.ReadableStream;
  }

  // The reclaim ladder's calls (src/reclaim/ladder.ts): listings, and removals that never force.

  private dial(path: string, method: 'GET' | 'POST', options: Record<string, unknown>): Promise<unknown> {
    const modem = (
      this.api as unknown as {
        modem: { dial: (opts: unknown, cb: (e: unknown, d: unknown) => void) => void };
      }
    ).modem;
    return new Promise((resolve, reject) =>
      modem.dial(
        { path, method, options, statusCodes: { 200: true, 400: 'bad parameter', 500: 'server error' } },
        (error, data) => (error ? reject(error as Error) : resolve(data)),
      ),
    );
  }

  async listImagesForReclaim(): Promise<ImageFacts[]> {
    return mapImageList(await this.api.listImages({ all: false }));
  }

  async listContainersForReclaim(): Promise<ContainerFacts[]> {
    return mapContainerList(await this.api.listContainers({ all: true }));
  }

  async listBuildCache(): Promise<BuildCacheFacts[]> {
    return mapBuildCache(await this.dial('/system/df?', 'GET', { type: 'build-cache' }));
  }

  async listVolumesForReclaim(): Promise<VolumeFacts[]> {
    return mapVolumeList(await this.api.listVolumes({ filters: { dangling: ['true'] } }));
  }

  async pruneBuildCache(options: {
    unusedForMs?: number;
  }): Promise<{ deletedIds: string[]; reclaimedBytes: number }> {
    const filters =
      options.unusedForMs === undefined
        ? {}
        : { 'unused-for': [`${Math.floor(options.unusedForMs / 1000)}s`] };
    return mapBuildPrune(
      await this.dial('/build/prune?', 'POST', { all: true, filters: JSON.stringify(filters) }),
    );
  }

  async removeImage(reference: string): Promise<void> {
    assertRemovable('image', reference);
    await this.api.getImage(reference).remove({ force: false, noprune: false });
  }

  async removeContainer(id: string): Promise<void> {
    assertRemovable('container', id);
    await this.api.getContainer(id).remove({ force: false, v: false });
  }

  async removeVolume(name: string): Promise<void> {
    assertRemovable('volume', name);
    await this.api.getVolume(name).remove({ force: false });
  }
}

/** docker-modem hands back the raw text when a 200 answer is not JSON: that is garbage, not Docker. */
function asObjectOrThrow(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || Buffer.isBuffer(value)) {
    throw new DockerDataError(`${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

export { DockerApiError, type DockerApiErrorKind } from './errors.js';

/** Factory for the composition root. */
export function createDockerClient(options: DockerClientOptions): DockerClient {
  return new DockerClient(options);
}
