/**
 * The agent's control socket: a unix socket, mode 0600 in the agent's state directory (root only),
 * on which the CLI asks the running agent to grow, run a pass or report status instead of changing
 * storage itself, so one process owns storage changes (src/control/route.ts is the other end).
 *
 * One JSON request line and one JSON reply line per connection. Bounded: a request line over
 * MAX_REQUEST_BYTES or not complete within `requestTimeoutMs` is refused and the connection closed;
 * at most `maxConnections` at once. Handlers decide; this file only frames and guards.
 */
import { lstatSync, mkdirSync, unlinkSync, chmodSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from '../log/logger.js';
import { errorMessage } from '../util/errors.js';
import {
  CONTROL_PROTOCOL_VERSION,
  ControlRequestError,
  MAX_REQUEST_BYTES,
  parseRequest,
  type ControlReply,
  type ControlRequest,
} from './protocol.js';

/** sun_path is 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;

export type ControlHandler = (request: ControlRequest) => Promise<ControlReply>;

export interface ControlServerOptions {
  socketPath: string;
  handle: ControlHandler;
  logger: Logger;
  requestTimeoutMs?: number;
  maxConnections?: number;
}

export interface ControlServer {
  readonly socketPath: string;
  /** Stops accepting, waits for requests being handled, removes the socket. */
  close(): Promise<void>;
}

function removeStaleSocket(socketPath: string): void {
  let stats;
  try {
    stats = lstatSync(socketPath);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  // Only ever a socket left by an agent that died: the caller holds the agent lock.
  if (!stats.isSocket()) throw new Error(`${socketPath} exists and is not a socket; not removing it`);
  unlinkSync(socketPath);
}

/**
 * Listens on `socketPath`. The caller must hold the agent lock (src/control/owner.ts): a socket
 * file already there is then a dead agent's and is replaced.
 */
export async function startControlServer(options: ControlServerOptions): Promise<ControlServer> {
  const { socketPath, logger } = options;
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
    throw new Error(
      `control socket path ${socketPath} is longer than ${MAX_SOCKET_PATH_BYTES} bytes; use a shorter journal.path directory`,
    );
  }
  const requestTimeoutMs = options.requestTimeoutMs ?? 5_000;
  mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o700 });
  removeStaleSocket(socketPath);
  const inFlight = new Set<Promise<void>>();
  const sockets = new Set<net.Socket>();

  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => undefined); // a client that went away
    let buffered = '';
    let answered = false;
    socket.setTimeout(requestTimeoutMs, () => {
      socket.off('data', onData);
      answered = true;
      reply(socket, { v: CONTROL_PROTOCOL_VERSION, ok: false, error: 'request timed out', exitCode: 1 });
      socket.destroySoon();
    });
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const newline = buffered.indexOf('\n');
      if (newline < 0 && Buffer.byteLength(buffered) <= MAX_REQUEST_BYTES) return;
      socket.off('data', onData);
      socket.setTimeout(0); // the work may take as long as a grow takes
      answered = true;
      if (newline < 0 || newline > MAX_REQUEST_BYTES) {
        reply(socket, {
          v: CONTROL_PROTOCOL_VERSION,
          ok: false,
          error: `control request over ${MAX_REQUEST_BYTES} bytes`,
          exitCode: 2,
        });
        return;
      }
      const work = handleLine(buffered.slice(0, newline)).then((answer) => reply(socket, answer));
      inFlight.add(work);
      void work.finally(() => inFlight.delete(work));
    };
    socket.on('data', onData);
    socket.once('end', () => {
      if (!answered) socket.destroy();
    });
  });
  server.maxConnections = options.maxConnections ?? 16;

  const handleLine = async (line: string): Promise<ControlReply> => {
    let request: ControlRequest;
    try {
      request = parseRequest(line);
    } catch (error) {
      const exitCode = error instanceof ControlRequestError ? error.exitCode : 2;
      return { v: CONTROL_PROTOCOL_VERSION, ok: false, error: errorMessage(error), exitCode };
    }
    try {
      return await options.handle(request);
    } catch (error) {
      if (error instanceof ControlRequestError)
        return { v: CONTROL_PROTOCOL_VERSION, ok: false, error: error.message, exitCode: error.exitCode };
      logger.error({ op: request.op, err: errorMessage(error) }, 'control request failed');
      return { v: CONTROL_PROTOCOL_VERSION, ok: false, error: errorMessage(error), exitCode: 1 };
    }
  };

  // Root only: created 0600 (a umask around the bind, which listen() does synchronously for a
  // path), then made sure of with chmod, in a directory only root can enter.
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const previousUmask = process.umask(0o177);
    try {
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    } finally {
      process.umask(previousUmask);
    }
  });
  chmodSync(socketPath, 0o600);
  server.on('error', (error) => logger.error({ err: errorMessage(error) }, 'control socket error'));
  logger.info({ socketPath }, 'control socket listening');

  let closing: Promise<void> | null = null;
  return {
    socketPath,
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
        for (const socket of sockets) socket.destroy();
        await closed;
        try {
          unlinkSync(socketPath);
        } catch {
          // already gone
        }
      })();
      return closing;
    },
  };
}

function reply(socket: net.Socket, answer: ControlReply): void {
  if (socket.destroyed) return;
  socket.end(`${JSON.stringify(answer)}\n`);
}
