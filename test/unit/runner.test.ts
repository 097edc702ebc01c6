/**
 * ExecaRunner against real processes: small shell scripts in a temporary directory stand in for
 * the tools through the `binaries` overrides (the same mechanism as config `binaries`).
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CommandError,
  ExecaRunner,
  isCommandError,
  resolveBinary,
  trimStderr,
  type ToolName,
} from '../../src/exec/runner.js';

let dir: string;

function script(name: string, body: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

async function failure(promise: Promise<unknown>): Promise<CommandError> {
  try {
    await promise;
  } catch (error) {
    if (isCommandError(error)) return error;
    throw error;
  }
  throw new Error('expected the command to fail');
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'agrun-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('resolveBinary', () => {
  it('finds the first executable in the search dirs, as an absolute path', () => {
    const first = path.join(dir, 'search-a');
    const second = path.join(dir, 'search-b');
    mkdirSync(first, { recursive: true });
    mkdirSync(second, { recursive: true });
    writeFileSync(path.join(first, 'blkid'), 'not executable');
    const executable = path.join(second, 'blkid');
    writeFileSync(executable, '#!/bin/sh\n');
    chmodSync(executable, 0o755);
    expect(resolveBinary('blkid', {}, [first, second])).toBe(executable);
    expect(resolveBinary('dmsetup', {}, [first, second])).toBeNull();
  });

  it('resolves real system tools to absolute paths', () => {
    const stat = resolveBinary('stat');
    expect(stat).not.toBeNull();
    expect(path.isAbsolute(stat ?? '')).toBe(true);
  });

  it('uses an override only when it is absolute and executable', () => {
    const fake = script('fake-stat', 'exit 0');
    expect(resolveBinary('stat', { stat: fake })).toBe(fake);
    expect(resolveBinary('stat', { stat: 'fake-stat' })).toBeNull();
    expect(resolveBinary('stat', { stat: path.join(dir, 'absent') })).toBeNull();
    const plain = path.join(dir, 'plain-file');
    writeFileSync(plain, 'x');
    expect(resolveBinary('stat', { stat: plain })).toBeNull();
  });
});

describe('ExecaRunner with real processes', () => {
  it('runs the override with argv as given and a clean C-locale environment', async () => {
    const argvFile = path.join(dir, 'argv.txt');
    const tool = script(
      'print-env',
      `for arg in "$@"; do printf '%s\\n' "$arg"; done > '${argvFile}'\nenv | sort`,
    );
    process.env['AUTOGROW_TEST_LEAK'] = 'should-not-reach-the-child';
    const runner = new ExecaRunner({ binaries: { df: tool } });
    expect(runner.binaryPath('df')).toBe(tool);
    const result = await runner.run({ tool: 'df', args: ['-B1', 'two words', '$HOME', '*'] });
    delete process.env['AUTOGROW_TEST_LEAK'];
    const env = Object.fromEntries(
      result.stdout
        .trim()
        .split('\n')
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    );
    expect(env['LC_ALL']).toBe('C');
    expect(env['LANG']).toBe('C');
    expect(env['PATH']).toBe('/usr/sbin:/usr/bin:/sbin:/bin');
    expect(env['AUTOGROW_TEST_LEAK']).toBeUndefined();
    expect(readFileSync(argvFile, 'utf8')).toBe('-B1\ntwo words\n$HOME\n*\n');
    expect(result.exitCode).toBe(0);
    expect(result.durationMs).toBeGreaterThan(0);
  });

  it('writes input to stdin', async () => {
    const runner = new ExecaRunner({ binaries: { xfs_quota: script('cat-stdin', 'cat') } });
    expect((await runner.run({ tool: 'xfs_quota', args: [], input: 'limit -p bhard=1g 42\n' })).stdout).toBe(
      'limit -p bhard=1g 42\n',
    );
  });

  it('turns a non-zero exit into a typed error with trimmed stderr and the output kept', async () => {
    const runner = new ExecaRunner({
      binaries: { dmsetup: script('fails', "echo partial; printf '  \\n device busy \\n\\n' >&2; exit 5") },
    });
    const error = await failure(runner.run({ tool: 'dmsetup', args: ['resume', 'dev'] }));
    expect(error).toBeInstanceOf(CommandError);
    expect(error.kind).toBe('exit');
    expect(error.exitCode).toBe(5);
    expect(error.stderr).toBe('device busy');
    expect(error.stdout).toBe('partial\n');
    expect(error.args).toEqual(['resume', 'dev']);
    expect(error.message).toBe('dmsetup resume dev exited with code 5: device busy');
  });

  it('accepts extra ok exit codes', async () => {
    const runner = new ExecaRunner({ binaries: { blkid: script('exit2', 'exit 2') } });
    expect((await runner.run({ tool: 'blkid', args: [], okExitCodes: [0, 2] })).exitCode).toBe(2);
  });

  it('kills a command at its timeout and says so', async () => {
    const pidFile = path.join(dir, 'slow.pid');
    const runner = new ExecaRunner({
      binaries: { lvs: script('slow', `echo $$ > '${pidFile}'\nexec sleep 30`) },
    });
    const started = performance.now();
    const error = await failure(runner.run({ tool: 'lvs', args: [], timeoutMs: 300 }));
    const elapsedMs = performance.now() - started;
    expect(error.timedOut).toBe(true);
    expect(error.kind).toBe('timeout');
    expect(error.message).toMatch(/timed out/);
    expect(elapsedMs).toBeGreaterThanOrEqual(290);
    expect(elapsedMs).toBeLessThan(5000);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    expect(processAlive(pid)).toBe(false);
  });

  it('uses the default timeout when the spec has none', async () => {
    const runner = new ExecaRunner({
      binaries: { vgs: script('slow2', 'exec sleep 30') },
      defaultTimeoutMs: 200,
    });
    expect((await failure(runner.run({ tool: 'vgs', args: [] }))).timedOut).toBe(true);
  });

  it('with killOnTimeout false, waits for the command and reports by how much it overran', async () => {
    const runner = new ExecaRunner({ binaries: { dmsetup: script('resume', 'sleep 0.6; echo resumed') } });
    const result = await runner.run({
      tool: 'dmsetup',
      args: ['resume', 'x'],
      timeoutMs: 200,
      killOnTimeout: false,
    });
    expect(result.stdout).toBe('resumed\n');
    expect(result.overranTimeoutMs).toBeGreaterThan(300);
    const quick = await runner.run({ tool: 'dmsetup', args: [], timeoutMs: 5000, killOnTimeout: false });
    expect(quick.overranTimeoutMs).toBeUndefined();
  });

  it('reports a command killed by a signal', async () => {
    const runner = new ExecaRunner({ binaries: { findmnt: script('suicide', 'kill -TERM $$') } });
    const error = await failure(runner.run({ tool: 'findmnt', args: [] }));
    expect(error.kind).toBe('signal');
    expect(error.signal).toBe('SIGTERM');
  });

  it('reports a missing binary as spawnFailed without running anything', async () => {
    const events: string[] = [];
    const runner = new ExecaRunner({
      binaries: { resize2fs: path.join(dir, 'no-such-tool') },
      onCommand: (event) => events.push(`${event.tool} ${event.error?.kind ?? 'ok'}`),
    });
    const error = await failure(runner.run({ tool: 'resize2fs', args: ['/dev/x'] }));
    expect(error.spawnFailed).toBe(true);
    expect(error.kind).toBe('spawn');
    expect(error.message).toMatch(/could not be started.*not found/);
    expect(events).toEqual(['resize2fs spawn']);
  });

  it('reports a binary the kernel cannot start as spawnFailed', async () => {
    const broken = path.join(dir, 'bad-interpreter');
    writeFileSync(broken, '#!/nonexistent/interpreter\n');
    chmodSync(broken, 0o755);
    const runner = new ExecaRunner({ binaries: { truncate: broken } });
    const error = await failure(runner.run({ tool: 'truncate', args: [] }));
    expect(error.spawnFailed).toBe(true);
  });

  it('tells onCommand about every command', async () => {
    const seen: Array<{ tool: ToolName; ok: boolean }> = [];
    const runner = new ExecaRunner({
      binaries: { stat: script('ok', 'exit 0'), df: script('ko', 'exit 1') },
      onCommand: (event) => seen.push({ tool: event.tool, ok: !event.error }),
    });
    await runner.run({ tool: 'stat', args: [] });
    await failure(runner.run({ tool: 'df', args: [] }));
    expect(seen).toEqual([
      { tool: 'stat', ok: true },
      { tool: 'df', ok: false },
    ]);
  });

  it('caps stderr kept in errors', () => {
    const long = 'e'.repeat(5000);
    expect(trimStderr(`\n${long}\n`)).toHaveLength(2003);
    expect(trimStderr('  short \n')).toBe('short');
    expect(existsSync(dir)).toBe(true);
  });
});
