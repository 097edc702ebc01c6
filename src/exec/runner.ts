/**
 * The one door to external programs. Every command the agent runs (dmsetup, lvs, xfs_growfs,
 * resize2fs, btrfs, xfs_quota, blkid, ...) goes through a {@link CommandRunner}:
 * argument arrays (never a shell), binaries resolved once to absolute paths, `LC_ALL=C`, a
 * timeout per call, and a typed {@link CommandError} for every failure.
 *
 * This file is the only one that imports execa.
 */
import { accessSync, constants as fsConstants } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';

/** Programs the agent may run. Adding one here is the only way to run a new program. */
export const TOOL_NAMES = [
  'dmsetup',
  'lvs',
  'vgs',
  'lvextend',
  'lvm',
  'losetup',
  'truncate',
  'xfs_growfs',
  'xfs_quota',
  'xfs_io',
  'resize2fs',
  'btrfs',
  'blkid',
  'findmnt',
  'stat',
  'df',
  'systemd-notify',
  'pvs',
  'pvresize',
] as const;
export type ToolName = (typeof TOOL_NAMES)[number];

export interface CommandSpec {
  tool: ToolName;
  args: readonly string[];
  /** Kill the process after this long (default: the runner's default). */
  timeoutMs?: number;
  /**
   * When false the process is never signalled, even past its timeout: the call waits for it and
   * reports `overranTimeoutMs`. Used for `dmsetup resume`/`suspend`, where a kill mid-resume can
   * leave a device suspended or drop its new table.
   */
  killOnTimeout?: boolean;
  /** Text written to the process's standard input. */
  input?: string;
  /**
   * Extra environment variables (the environment is otherwise only LC_ALL, LANG and PATH), e.g.
   * NOTIFY_SOCKET for systemd-notify.
   */
  env?: Readonly<Record<string, string>>;
  /** Exit codes that count as success (default: [0]). */
  okExitCodes?: readonly number[];
}

export interface CommandResult {
  stdout: string;
  stderr: string;
  exitCode: number;
  durationMs: number;
  /** Set when killOnTimeout was false and the process ran past its timeout. */
  overranTimeoutMs?: number;
}

export interface CommandRunner {
  run(spec: CommandSpec): Promise<CommandResult>;
}

export type CommandFailureKind = 'exit' | 'signal' | 'timeout' | 'spawn';

const STDERR_LIMIT_CHARS = 2000;

export function trimStderr(stderr: string): string {
  const trimmed = stderr.trim();
  return trimmed.length > STDERR_LIMIT_CHARS ? `${trimmed.slice(0, STDERR_LIMIT_CHARS)}...` : trimmed;
}

/** A command that failed: non-zero exit, killed by a signal, timed out, or could not be started. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  readonly tool: string;
  readonly args: readonly string[];
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stderr: string;
  readonly stdout: string;
  readonly timedOut: boolean;
  readonly spawnFailed: boolean;

  constructor(fields: {
    tool: string;
    args: readonly string[];
    exitCode: number | null;
    signal: string | null;
    stderr: string;
    stdout?: string;
    timedOut: boolean;
    spawnFailed: boolean;
    detail?: string;
  }) {
    const stderr = trimStderr(fields.stderr);
    const what = fields.spawnFailed
      ? `could not be started${fields.detail ? ` (${fields.detail})` : ''}`
      : fields.timedOut
        ? 'timed out'
        : fields.signal
          ? `was killed by ${fields.signal}`
          : `exited with code ${fields.exitCode}`;
    super(`${fields.tool} ${fields.args.join(' ')} ${what}${stderr ? `: ${stderr}` : ''}`);
    this.tool = fields.tool;
    this.args = [...fields.args];
    this.exitCode = fields.exitCode;
    this.signal = fields.signal;
    this.stderr = stderr;
    this.stdout = fields.stdout ?? '';
    this.timedOut = fields.timedOut;
    this.spawnFailed = fields.spawnFailed;
  }

  get kind(): CommandFailureKind {
    if (this.spawnFailed) return 'spawn';
    if (this.timedOut) return 'timeout';
    if (this.signal) return 'signal';
    return 'exit';
  }
}

export function isCommandError(error: unknown): error is CommandError {
  return error instanceof CommandError;
}

/** Directories searched for binaries, in order, when config does not name an absolute path. */
export const BINARY_SEARCH_DIRS = [
  '/usr/sbin',
  '/usr/bin',
  '/sbin',
  '/bin',
  '/usr/local/sbin',
  '/usr/local/bin',
];

function isExecutable(file: string): boolean {
  try {
    accessSync(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Resolves a tool to an absolute path: the configured override if any (must be absolute), else the
 * first executable in {@link BINARY_SEARCH_DIRS}. Returns null when not found.
 */
export function resolveBinary(
  tool: ToolName,
  overrides: Partial<Record<string, string>> = {},
  searchDirs: readonly string[] = BINARY_SEARCH_DIRS,
): string | null {
  const override = overrides[tool];
  if (override) return path.isAbsolute(override) && isExecutable(override) ? override : null;
  for (const dir of searchDirs) {
    const candidate = path.join(dir, tool);
    if (isExecutable(candidate)) return candidate;
  }
  return null;
}

export interface ExecaRunnerOptions {
  /** Absolute paths that replace the search for particular tools (config `binaries`). */
  binaries?: Partial<Record<string, string>>;
  defaultTimeoutMs?: number;
  /** Called after every command, success or failure (metrics, debug logs). */
  onCommand?: (event: {
    tool: ToolName;
    args: readonly string[];
    durationMs: number;
    error?: CommandError;
  }) => void;
}

const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

/** The real runner: execa with argument arrays, absolute binaries, `LC_ALL=C`, timeouts. */
export class ExecaRunner implements CommandRunner {
  private readonly resolved = new Map<ToolName, string | null>();
  private readonly defaultTimeoutMs: number;

  constructor(private readonly options: ExecaRunnerOptions = {}) {
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? 30_000;
  }

  /** The absolute path the runner will use for a tool, or null when it is not installed. */
  binaryPath(tool: ToolName): string | null {
    if (!this.resolved.has(tool)) this.resolved.set(tool, resolveBinary(tool, this.options.binaries));
    return this.resolved.get(tool) ?? null;
  }

  async run(spec: CommandSpec): Promise<CommandResult> {
    const started = performance.now();
    const binary = this.binaryPath(spec.tool);
    if (!binary) {
      const error = new CommandError({
        tool: spec.tool,
        args: spec.args,
        exitCode: null,
        signal: null,
        stderr: '',
        timedOut: false,
        spawnFailed: true,
        detail: `${spec.tool} not found in ${this.options.binaries?.[spec.tool] ?? BINARY_SEARCH_DIRS.join(':')}`,
      });
      this.options.onCommand?.({ tool: spec.tool, args: spec.args, durationMs: 0, error });
      throw error;
    }
    if (spec.args.some((arg) => arg.includes('\0'))) {
      // The kernel cannot pass a NUL inside an argument; refuse here with the typed error, not execa's TypeError.
      const error = new CommandError({
        tool: spec.tool,
        args: spec.args.map((arg) => arg.replaceAll('\0', '\\0')),
        exitCode: null,
        signal: null,
        stderr: '',
        timedOut: false,
        spawnFailed: true,
        detail: 'an argument contains a NUL byte',
      });
      this.options.onCommand?.({ tool: spec.tool, args: spec.args, durationMs: 0, error });
      throw error;
    }
    const timeoutMs = spec.timeoutMs ?? this.defaultTimeoutMs;
    const killOnTimeout = spec.killOnTimeout ?? true;
    const result = await execa(binary, [...spec.args], {
      reject: false,
      shell: false,
      extendEnv: false,
      env: { ...spec.env, LC_ALL: 'C', LANG: 'C', PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
      timeout: killOnTimeout ? timeoutMs : undefined,
      killSignal: 'SIGKILL',
      input: spec.input,
      stdin: spec.input === undefined ? 'ignore' : 'pipe',
      maxBuffer: MAX_OUTPUT_BYTES,
      stripFinalNewline: false,
      encoding: 'utf8',
    });
    const durationMs = performance.now() - started;
    const okExitCodes = spec.okExitCodes ?? [0];
    const exitCode = typeof result.exitCode === 'number' ? result.exitCode : null;
    const signal = result.signal ?? null;
    const stdout = typeof result.stdout === 'string' ? result.stdout : '';
    const stderr = typeof result.stderr === 'string' ? result.stderr : '';
    if (exitCode !== null && okExitCodes.includes(exitCode) && !result.timedOut) {
      const ok: CommandResult = { stdout, stderr, exitCode, durationMs };
      if (!killOnTimeout && durationMs > timeoutMs) ok.overranTimeoutMs = durationMs - timeoutMs;
      this.options.onCommand?.({ tool: spec.tool, args: spec.args, durationMs });
      return ok;
    }
    const spawnFailed = exitCode === null && !signal && !result.timedOut;
    const error = new CommandError({
      tool: spec.tool,
      args: spec.args,
      exitCode,
      signal,
      stderr,
      stdout,
      timedOut: Boolean(result.timedOut),
      spawnFailed,
      detail: spawnFailed ? result.shortMessage : undefined,
    });
    this.options.onCommand?.({ tool: spec.tool, args: spec.args, durationMs, error });
    throw error;
  }
}
