/**
 * A unix-socket proxy between the agent and dockerd: the agent's docker.socketPath points here,
 * every connection is piped to the real daemon socket, and `cut()` destroys every open connection
 * at once (the event stream, keep-alive sockets, calls in flight): the "event-stream cut" fault.
 * While dockerd restarts, new connections fail as they would on the real socket.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { rmSync } from 'node:fs';

export class CuttableProxy {
  private server: Server | null = null;
  private readonly pairs = new Set<{ client: Socket; upstream: Socket }>();
  connectionsTotal = 0;
  cutsTotal = 0;

  constructor(
    readonly listenPath: string,
    private readonly upstreamPath: string,
  ) {}

  async start(): Promise<void> {
    rmSync(this.listenPath, { force: true });
    const server = createServer((client) => {
      this.connectionsTotal += 1;
      const upstream = createConnection(this.upstreamPath);
      const pair = { client, upstream };
      this.pairs.add(pair);
      const close = () => {
        this.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('error', close);
      upstream.on('error', close);
      client.on('close', close);
      upstream.on('close', close);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.listenPath, () => resolve());
    });
  }

  /** Destroys every open connection; returns how many were cut. */
  cut(): number {
    const count = this.pairs.size;
    for (const pair of [...this.pairs]) {
      pair.client.destroy();
      pair.upstream.destroy();
    }
    this.pairs.clear();
    this.cutsTotal += 1;
    return count;
  }

  get openConnections(): number {
    return this.pairs.size;
  }

  async stop(): Promise<void> {
    this.cut();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(this.listenPath, { force: true });
  }
}
