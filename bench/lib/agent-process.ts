/**
 * The shipped agent as a child process (`node dist/src/main.js run --config <file>`), its JSON log
 * lines collected as they arrive, each stamped with when it was received. The one copy: the
 * benchmarks, the soak and the tests (through test/support/agent-process.ts) use it. Run
 * `npm run build` first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT } from './repo-root.js';

export interface AgentLogLine {
  msg?: string;
  time?: string;
  containerId?: string;
  receivedAtMs: number;
  [key: string]: unknown;
}

export class ShippedAgent {
  readonly lines: AgentLogLine[] = [];
  stderr = '';
  private child: ChildProcess | null = null;

  /**
   * `nodeFlags`: Node options before the script (bench runs: --cpu-prof, heap sizes);
   * `environment`: variables added to this process's (the shipped unit's MALLOC_ARENA_MAX).
   */
  constructor(
    private readonly configFile: string,
    private readonly nodeFlags: readonly string[] = [],
    private readonly environment: Readonly<Record<string, string>> = {},
  ) {}

  get pid(): number {
    return this.child?.pid ?? 0;
  }

  /** Starts the agent and waits for its 'agent ready' line (its first whole-host pass is done). */
  async start(timeoutMs = 120_000): Promise<void> {
    const child = spawn(
      process.execPath,
      [...this.nodeFlags, path.join(REPO_ROOT, 'dist', 'src', 'main.js'), 'run', '--config', this.configFile],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...this.environment } },
    );
    this.child = child;
    let pending = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      pending += chunk.toString('utf8');
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      for (const line of parts) {
        try {
          this.lines.push({ ...(JSON.parse(line) as Record<string, unknown>), receivedAtMs: Date.now() });
        } catch {
          this.lines.push({ msg: line, receivedAtMs: Date.now() });
        }
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => (this.stderr += chunk.toString('utf8')));
    const deadline = Date.now() + timeoutMs;
    while (!this.lines.some((line) => line.msg === 'agent ready')) {
      if (child.exitCode !== null) throw new Error(`agent exited ${child.exitCode}: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`agent not ready: ${this.stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Waits for a log line with this message (after `fromIndex`); returns it. */
  async waitForLine(msg: string, timeoutMs = 30_000, fromIndex = 0): Promise<AgentLogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.lines.slice(fromIndex).find((candidate) => candidate.msg === msg);
      if (line) return line;
      if (Date.now() > deadline) throw new Error(`no '${msg}' line in ${timeoutMs} ms: ${this.stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** SIGKILL (a crash): resolves when it has exited. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /** SIGTERM, then SIGKILL after `killAfterMs`; resolves when it has exited. */
  async stop(killAfterMs = 30_000): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    await exited;
    clearTimeout(timer);
  }
}

/**
 * The Node flags the shipped systemd unit gives the agent (its `Environment=NODE_OPTIONS=` line), so
 * a bench run measures the agent as deployed.
 */
export function shippedNodeFlags(unitText: string): string[] {
  const match = /^Environment=NODE_OPTIONS=(.*)$/m.exec(unitText);
  return (match?.[1] ?? '').split(' ').filter((flag) => flag !== '');
}

/** The C library's tunables the shipped unit sets (`Environment=MALLOC_...=`), as the agent's environment. */
export function shippedMallocEnvironment(unitText: string): Record<string, string> {
  const environment: Record<string, string> = {};
  for (const match of unitText.matchAll(/^Environment=(MALLOC_[A-Z_]+)=(\S*)$/gm))
    environment[match[1] as string] = match[2] as string;
  return environment;
}
