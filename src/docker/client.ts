/**
 * The Docker adapter: the only module that imports dockerode. It implements the daemon-facing
 * {@link DockerApi} port and the raw {@link DockerEventSource} under the event stream; mapping of
 * the JSON it returns lives in ./mapping.ts.
 *
 * Never asks for sizes (`size=true` walks every layer of every container and stalls busy daemons).
 */
import Docker from 'dockerode';
import { assertContainerId, isContainerId } from './ids.js';
import type { DockerApi } from './inventory-port.js';
import type { DockerEventSource } from './events.js';
import { mapContainerInspect, mapDockerInfo } from './mapping.js';
import type { ContainerInfo, DockerInfo } from './model.js';
import {
  assertRemovable,
  mapBuildCache,
  mapBuildPrune,
  mapContainerList,
  mapImageList,
  mapVolumeList,
} from '../reclaim/docker-mapping.js';
import type {
  BuildCacheFacts,
  ContainerFacts,
  ImageFacts,
  ReclaimDockerApi,
  VolumeFacts,
} from '../reclaim/types.js';

export interface DockerClientOptions {
  /** Unix socket of the daemon, e.g. /var/run/docker.sock. */
  socketPath: string;
  /** Per-request timeout (idle socket) for API calls; for the event stream, the time to connect. */
  timeoutMs: number;
}

/** A daemon answer with an HTTP status (dockerode attaches `statusCode` to its errors). */
function httpStatusOf(error: unknown): number | null {
  if (typeof error === 'object' && error !== null && 'statusCode' in error) {
    const status = (error as { statusCode: unknown }).statusCode;
    return typeof status === 'number' ? status : null;
  }
  return null;
}

export class DockerClient implements DockerApi, DockerEventSource, ReclaimDockerApi {
  private readonly api: Docker;
  /**
   * A second dockerode for the event stream: docker-modem's `timeout` is a socket idle timeout,
   * which would cut a quiet event stream every `timeoutMs`. This one only bounds the time until the
   * daemon answers (`connectionTimeout`, cleared on the response).
   */
  private readonly eventsApi: Docker;

  constructor(readonly options: DockerClientOptions) {
    this.api = new Docker({ socketPath: options.socketPath, timeout: options.timeoutMs });
    this.eventsApi = new Docker({
      socketPath: options.socketPath,
      connectionTimeout: options.timeoutMs,
    } as never);
  }

  async info(): Promise<DockerInfo> {
    const [rawInfo, rawVersion] = await Promise.all([this.api.info(), this.api.version()]);
    return mapDockerInfo(rawInfo, rawVersion);
  }

  /** All containers, running or not. No `size` parameter: the daemon default is false. */
  async listContainerIds(): Promise<string[]> {
    const list: unknown = await this.api.listContainers({ all: true });
    if (!Array.isArray(list)) throw new Error('docker container list: unexpected answer (not an array)');
    const ids: string[] = [];
    for (const entry of list) {
      const id = typeof entry === 'object' && entry !== null ? (entry as { Id?: unknown }).Id : undefined;
      if (isContainerId(id)) ids.push(id);
    }
    return ids;
  }

  async inspectContainer(id: string): Promise<ContainerInfo | null> {
    assertContainerId(id);
    let raw: unknown;
    try {
      raw = await this.api.getContainer(id).inspect();
    } catch (error) {
      if (httpStatusOf(error) === 404) return null;
      throw error;
    }
    return mapContainerInspect(raw);
  }

  async ping(): Promise<boolean> {
    try {
      await this.api.ping();
      return true;
    } catch {
      return false;
    }
  }

  /** `GET /events?filters={"type":["container"]}[&since=...]`: the raw, never-ending HTTP body. */
  async openEvents(options: { since?: string; signal: AbortSignal }): Promise<NodeJS.ReadableStream> {
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

/** Factory for the composition root. */
export function createDockerClient(options: DockerClientOptions): DockerClient {
  return new DockerClient(options);
}
