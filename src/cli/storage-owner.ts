/**
 * How a command that changes storage (`grow`, `once`) finds who acts: the running agent (its reply
 * unwrapped into the command's report, or a CliError with the agent's exit code), or this process
 * under the agent lock. A command another one-shot command holds the lock against fails at once.
 */
import { routeToStorageOwner, StorageOwnedError } from '../control/owner.js';
import type { ControlReply, GrowRequest, OnceRequest } from '../control/protocol.js';
import type { HeldProcessLock } from '../util/process-lock.js';
import { CliError, EXIT_FAILURE } from './errors.js';

type ReportOf<Op extends 'grow' | 'once'> = Extract<ControlReply, { ok: true; op: Op }>['report'];

export type CommandRoute<Op extends 'grow' | 'once'> =
  { kind: 'agent'; report: ReportOf<Op> } | { kind: 'local'; lock: HeldProcessLock };

export async function routeCommand<Op extends 'grow' | 'once'>(
  stateDir: string,
  request: (GrowRequest | OnceRequest) & { op: Op },
): Promise<CommandRoute<Op>> {
  let route;
  try {
    route = await routeToStorageOwner(stateDir, request, { role: request.op });
  } catch (error) {
    if (error instanceof StorageOwnedError)
      throw new CliError(`${request.op}: ${error.message}`, EXIT_FAILURE);
    throw error;
  }
  if (route.kind === 'local') return route;
  const reply = route.reply;
  if (!reply.ok) throw new CliError(reply.error, reply.exitCode);
  if (reply.op !== request.op)
    throw new CliError(`the agent answered a ${request.op} with ${reply.op}`, EXIT_FAILURE);
  return { kind: 'agent', report: reply.report as ReportOf<Op> };
}
