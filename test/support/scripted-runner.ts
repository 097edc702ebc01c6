/**
 * A strict fake {@link CommandRunner} for tests: each expected command is scripted with its exact
 * argv and a reply (usually a real recorded output from test/fixtures/). Any command that was not
 * scripted fails the test; `assertDone()` fails when scripted commands were never run.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  CommandError,
  type CommandResult,
  type CommandRunner,
  type CommandSpec,
} from '../../src/exec/runner.js';

export interface ScriptedReply {
  stdout?: string;
  stderr?: string;
  exitCode?: number;
  /** Simulate a kill by signal / a timeout / a missing binary. */
  signal?: string;
  timedOut?: boolean;
  spawnFailed?: boolean;
  /** Runs when the command is executed (fault injection, recording side effects). */
  effect?: () => void | Promise<void>;
}

export interface ScriptedCommand {
  tool: string;
  args: readonly string[];
  reply: ScriptedReply;
  /** When true the command may be run any number of times (default: exactly once, in order). */
  repeat?: boolean;
}

export class ScriptedRunner implements CommandRunner {
  readonly calls: CommandSpec[] = [];
  private readonly queue: ScriptedCommand[] = [];
  private readonly repeating: ScriptedCommand[] = [];
  /** When false, scripted one-shot commands may run in any order. */
  constructor(private readonly ordered = true) {}

  expect(tool: string, args: readonly string[], reply: ScriptedReply = {}): this {
    this.queue.push({ tool, args, reply });
    return this;
  }

  /** A command that may run any number of times, e.g. a status read each pass. */
  allow(tool: string, args: readonly string[], reply: ScriptedReply = {}): this {
    this.repeating.push({ tool, args, reply, repeat: true });
    return this;
  }

  async run(spec: CommandSpec): Promise<CommandResult> {
    this.calls.push(spec);
    const matches = (command: ScriptedCommand) =>
      command.tool === spec.tool &&
      command.args.length === spec.args.length &&
      command.args.every((arg, index) => arg === spec.args[index]);
    let scripted: ScriptedCommand | undefined;
    const queueIndex = this.ordered
      ? this.queue[0] && matches(this.queue[0])
        ? 0
        : -1
      : this.queue.findIndex(matches);
    if (queueIndex >= 0) {
      scripted = this.queue.splice(queueIndex, 1)[0];
    } else {
      scripted = this.repeating.find(matches);
    }
    if (!scripted) {
      const next = this.queue[0]
        ? `; next expected: ${this.queue[0].tool} ${this.queue[0].args.join(' ')}`
        : '';
      throw new Error(`unexpected command: ${spec.tool} ${JSON.stringify(spec.args)}${next}`);
    }
    const reply = scripted.reply;
    await reply.effect?.();
    const exitCode = reply.exitCode ?? 0;
    if (reply.spawnFailed || reply.timedOut || reply.signal || exitCode !== 0) {
      throw new CommandError({
        tool: spec.tool,
        args: spec.args,
        exitCode: reply.spawnFailed || reply.timedOut || reply.signal ? null : exitCode,
        signal: reply.signal ?? (reply.timedOut ? 'SIGKILL' : null),
        stderr: reply.stderr ?? '',
        stdout: reply.stdout ?? '',
        timedOut: Boolean(reply.timedOut),
        spawnFailed: Boolean(reply.spawnFailed),
      });
    }
    return { stdout: reply.stdout ?? '', stderr: reply.stderr ?? '', exitCode, durationMs: 0 };
  }

  /** Fails when scripted one-shot commands were never run. */
  assertDone(): void {
    if (this.queue.length > 0) {
      const pending = this.queue.map((command) => `${command.tool} ${command.args.join(' ')}`).join('\n  ');
      throw new Error(`scripted commands never ran:\n  ${pending}`);
    }
  }
}

const FIXTURES_DIR = path.resolve(import.meta.dirname, '..', 'fixtures');

/** Reads a recorded fixture (test/fixtures/<relative>). */
export function fixture(relative: string): string {
  return readFileSync(path.join(FIXTURES_DIR, relative), 'utf8');
}
