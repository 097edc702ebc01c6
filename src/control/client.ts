/**
 * The CLI's end of the control socket (src/control/server.ts): sends one request, reads one reply,
 * with a connect timeout, a reply timeout and a reply size cap.
 */
import net from 'node:net';
import { MAX_REPLY_BYTES, parseReply, type ControlReply, type ControlRequest } from './protocol.js';

/** No agent listens on the socket (no file, or a file nobody accepts on). */
export class NoAgentError extends Error {
  override readonly name = 'NoAgentError';
}

export interface ControlClientOptions {
  connectTimeoutMs?: number;
  /** How long the agent may take to answer (a grow, a pass). */
  replyTimeoutMs?: number;
}

export function sendControlRequest(
  socketPath: string,
  request: ControlRequest,
  options: ControlClientOptions = {},
): Promise<ControlReply> {
  const connectTimeoutMs = options.connectTimeoutMs ?? 2_000;
  const replyTimeoutMs = options.replyTimeoutMs ?? 600_000;
  return new Promise<ControlReply>((resolve, reject) => {
    const socket = net.createConnection({ path: socketPath });
    let connected = false;
    let received = Buffer.alloc(0);
    let settled = false;
    const finish = (error: Error | null, reply?: ControlReply) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(reply!);
    };
    let timer = setTimeout(
      () =>
        finish(new NoAgentError(`no answer from the agent at ${socketPath} within ${connectTimeoutMs} ms`)),
      connectTimeoutMs,
    );
    socket.once('connect', () => {
      connected = true;
      clearTimeout(timer);
      timer = setTimeout(
        () => finish(new Error(`the agent did not answer within ${replyTimeoutMs} ms`)),
        replyTimeoutMs,
      );
      socket.write(`${JSON.stringify(request)}\n`);
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length > MAX_REPLY_BYTES) {
        finish(new Error(`the agent's reply is over ${MAX_REPLY_BYTES} bytes`));
        return;
      }
      const newline = received.indexOf(0x0a);
      if (newline < 0) return;
      try {
        finish(null, parseReply(received.subarray(0, newline).toString('utf8')));
      } catch (error) {
        finish(error as Error);
      }
    });
    socket.once('end', () => finish(new Error('the agent closed the control connection without answering')));
    socket.once('error', (error: NodeJS.ErrnoException) => {
      if (!connected && (error.code === 'ENOENT' || error.code === 'ECONNREFUSED'))
        finish(new NoAgentError(`no agent listens on ${socketPath}`));
      else finish(error);
    });
  });
}
