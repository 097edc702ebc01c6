/**
 * The control protocol between the CLI and the running agent: one JSON request line, one JSON
 * reply line, per connection, over a root-only unix socket (src/control/server.ts). Requests are
 * small (capped); replies carry the same report the in-process command would print.
 */
import type { ManualGrowReport, ManualGrowTarget } from '../agent/reconciler.js';
import type { PassReport } from '../report/pass-report.js';
import type { ReclaimReport } from '../reclaim/ladder.js';

export const CONTROL_PROTOCOL_VERSION = 1;
/** A request is a few hundred bytes; anything past this is not one. */
export const MAX_REQUEST_BYTES = 64 * 1024;
/** A status reply for a few thousand containers fits; a runaway one does not fill the CLI's memory. */
export const MAX_REPLY_BYTES = 64 * 1024 * 1024;

export interface GrowRequest {
  v: typeof CONTROL_PROTOCOL_VERSION;
  op: 'grow';
  /** A container name or id as the user typed it (validated by src/docker/ids.ts before sending). */
  container: string;
  target: ManualGrowTarget;
  dryRun: boolean;
  force: boolean;
}

/** An acting pass (`once`); a dry run changes nothing and is never sent. */
export interface OnceRequest {
  v: typeof CONTROL_PROTOCOL_VERSION;
  op: 'once';
}

/** The agent's latest whole-host pass. */
export interface StatusRequest {
  v: typeof CONTROL_PROTOCOL_VERSION;
  op: 'status';
}

/** One climb of the reclaim ladder (`reclaim`, `reclaim --dry-run`). */
export interface ReclaimRequest {
  v: typeof CONTROL_PROTOCOL_VERSION;
  op: 'reclaim';
  dryRun: boolean;
}

export type ControlRequest = GrowRequest | OnceRequest | StatusRequest | ReclaimRequest;

export type ControlReply =
  | { v: typeof CONTROL_PROTOCOL_VERSION; ok: true; op: 'grow'; report: ManualGrowReport }
  | { v: typeof CONTROL_PROTOCOL_VERSION; ok: true; op: 'once'; report: PassReport }
  | {
      v: typeof CONTROL_PROTOCOL_VERSION;
      ok: true;
      op: 'status';
      report: PassReport;
      /** Which daemon the agent watches and where that came from (`unix:///... (from DOCKER_HOST)`). */
      dockerEndpoint?: string;
    }
  | { v: typeof CONTROL_PROTOCOL_VERSION; ok: true; op: 'reclaim'; report: ReclaimReport }
  | {
      v: typeof CONTROL_PROTOCOL_VERSION;
      ok: false;
      error: string;
      /** The exit code the CLI should use (1 failure, 2 usage). */
      exitCode: number;
    };

/** A request refused with a message and the CLI exit code (a missing container is a usage error). */
export class ControlRequestError extends Error {
  override readonly name = 'ControlRequestError';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

function isPositiveBytes(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

function parseTarget(value: unknown): ManualGrowTarget | null {
  if (value === null || typeof value !== 'object') return null;
  const target = value as Record<string, unknown>;
  const keys = Object.keys(target);
  if (keys.length !== 1) return null;
  if (isPositiveBytes(target.toBytes)) return { toBytes: target.toBytes };
  if (isPositiveBytes(target.byBytes)) return { byBytes: target.byBytes };
  return null;
}

/** Parses one request line; throws {@link ControlRequestError} (exit 2) for anything else. */
export function parseRequest(line: string): ControlRequest {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new ControlRequestError('control request is not JSON', 2);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new ControlRequestError('control request is not an object', 2);
  const request = value as Record<string, unknown>;
  if (request.v !== CONTROL_PROTOCOL_VERSION)
    throw new ControlRequestError(
      `control protocol version ${JSON.stringify(request.v)} is not ${CONTROL_PROTOCOL_VERSION}: the CLI and the agent are different versions`,
      2,
    );
  switch (request.op) {
    case 'once':
    case 'status':
      return { v: CONTROL_PROTOCOL_VERSION, op: request.op };
    case 'reclaim':
      return { v: CONTROL_PROTOCOL_VERSION, op: 'reclaim', dryRun: request.dryRun === true };
    case 'grow': {
      const target = parseTarget(request.target);
      if (
        typeof request.container !== 'string' ||
        request.container.length === 0 ||
        request.container.length > 256
      )
        throw new ControlRequestError('grow request without a container', 2);
      if (!target) throw new ControlRequestError('grow request without a positive toBytes or byBytes', 2);
      return {
        v: CONTROL_PROTOCOL_VERSION,
        op: 'grow',
        container: request.container,
        target,
        dryRun: request.dryRun === true,
        force: request.force === true,
      };
    }
    default:
      throw new ControlRequestError(`unknown control operation ${JSON.stringify(request.op)}`, 2);
  }
}

/** Checks the shape of a reply line from the agent (the agent is trusted; the bytes may be torn). */
export function parseReply(line: string): ControlReply {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new Error('the agent answered with something that is not JSON');
  }
  const reply = value as Partial<Record<string, unknown>> | null;
  if (reply === null || typeof reply !== 'object' || reply.v !== CONTROL_PROTOCOL_VERSION)
    throw new Error('the agent answered in another protocol version');
  if (reply.ok === false) {
    return {
      v: CONTROL_PROTOCOL_VERSION,
      ok: false,
      error: typeof reply.error === 'string' ? reply.error : 'the agent refused the request',
      exitCode: typeof reply.exitCode === 'number' ? reply.exitCode : 1,
    };
  }
  if (reply.ok !== true || typeof reply.report !== 'object' || reply.report === null)
    throw new Error('the agent answered without a report');
  return value as ControlReply;
}
