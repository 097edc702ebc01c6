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

export class DockerClient implements DockerApi, DockerEventSource {
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
}

/** Factory for the composition root. */
export function createDockerClient(options: DockerClientOptions): DockerClient {
  return new DockerClient(options);
}
