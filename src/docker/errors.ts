/**
 * The typed failure of a Docker API call (src/docker/client.ts), apart from the adapter so modules that
 * classify failures (the inventory) need not import dockerode.
 */
export type DockerApiErrorKind = 'unreachable' | 'timeout' | 'http' | 'garbage' | 'version';

/** A Docker API call that failed, with why, and the endpoint it was sent to. */
export class DockerApiError extends Error {
  override readonly name = 'DockerApiError';
  constructor(
    message: string,
    readonly kind: DockerApiErrorKind,
    readonly call: string,
    readonly statusCode: number | null = null,
  ) {
    super(message);
  }
}
