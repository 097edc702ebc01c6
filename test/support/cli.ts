/**
 * The built CLI (dist/src/main.js) as a person runs it, for tests: `runCli` resolves with the exit
 * code and both outputs whatever the exit code (a failing command is what many tests want to see).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Prereq } from './prereqs.js';
import { REPO_ROOT } from './repo-root.js';

export const MAIN_JS = path.join(REPO_ROOT, 'dist', 'src', 'main.js');

export const builtCli: Prereq = {
  name: 'dist/src/main.js',
  ok: () => existsSync(MAIN_JS),
  fix: 'npm run build',
};

export interface CliResult {
  /** null when a signal ended it (the timeout). */
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunCliOptions {
  /** The whole environment of the child (default: the test's own). */
  env?: NodeJS.ProcessEnv;
  /** Killed with SIGKILL after this long (default 60 s). */
  timeoutMs?: number;
}

export function runCli(args: readonly string[], options: RunCliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN_JS, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: options.env ?? process.env,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
