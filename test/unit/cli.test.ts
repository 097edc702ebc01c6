/**
 * The built CLI as a person runs it: help lists every command, config errors exit 2 with the key
 * path and value in one readable message and no stack trace, commands that need Docker say so
 * clearly when it is unreachable. (`npm test` builds before running the tests.)
 */
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { MAIN_JS, runCli } from '../support/cli.js';
import { REPO_ROOT } from '../support/repo-root.js';
import { tempDir } from '../support/temp-dir.js';

/** The CLI with a bare environment (PATH only) plus `env`. */
function cli(args: string[], env: Record<string, string> = {}) {
  return runCli(args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } });
}

function configFile(text: string): string {
  const file = path.join(tempDir('cli'), 'config.yaml');
  writeFileSync(file, text);
  return file;
}

describe('docker-autogrow CLI', () => {
  beforeAll(() => {
    if (!existsSync(MAIN_JS)) {
      const build = spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: REPO_ROOT, encoding: 'utf8' });
      if (build.status !== 0) throw new Error(`build failed:\n${build.stdout}${build.stderr}`);
    }
  });

  it('--help lists every command', async () => {
    const { code, stdout } = await cli(['--help']);
    expect(code).toBe(0);
    for (const command of ['run', 'once', 'status', 'grow', 'config', 'doctor', 'reclaim']) {
      expect(stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    }
    expect(stdout).toContain('--config');
    expect(stdout).toContain('--log-level');
  });

  it('--version prints the package version', async () => {
    const { code, stdout } = await cli(['--version']);
    expect(code).toBe(0);
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('an unknown command is a usage error (exit 2)', async () => {
    expect((await cli(['frobnicate'])).code).toBe(2);
  });

  it.each([
    ['an unknown key', 'bogus: 1\n', /bogus: unknown key/],
    ['step: 10X', 'defaults:\n  step: 10X\n', /defaults\.step: "10X" is not allowed/],
    ['threshold: 150%', 'defaults:\n  threshold: 150%\n', /defaults\.threshold: "150%" is not allowed/],
    ['a negative duration', 'defaults:\n  cooldown: -1m\n', /defaults\.cooldown: "-1m" is not allowed/],
    ['a YAML syntax error', 'defaults:\n  step: [10G\n', /invalid YAML in .* at line \d+, column \d+/],
  ])('config check rejects %s with exit 2 and one readable message', async (_what, text, pattern) => {
    const file = configFile(text);
    const { code, stderr, stdout } = await cli(['config', 'check', file]);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toMatch(pattern);
    expect(stderr).not.toMatch(/^\s+at /m);
  });

  it('a bad file named by AUTOGROW_CONFIG stops the agent commands with exit 2 too', async () => {
    const file = configFile('interval: soon\n');
    const { code, stderr } = await cli(['once', '--dry-run'], { AUTOGROW_CONFIG: file });
    expect(code).toBe(2);
    expect(stderr).toMatch(/interval: "soon" is not allowed/);
  });

  it('config check accepts the documented example', async () => {
    const { code, stdout } = await cli(['config', 'check', path.join(REPO_ROOT, 'config', 'example.yaml')]);
    expect(code).toBe(0);
    expect(stdout).toContain('configuration OK');
  });

  it('config check warns about valid but suspicious settings', async () => {
    const { code, stdout } = await cli(['config', 'check', configFile('defaults:\n  minStep: 60G\n')]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/warning: defaults: minStep is above maxStep/);
  });

  it('says clearly when Docker cannot be reached (exit 1)', async () => {
    const file = configFile('docker: { socketPath: /nonexistent/docker.sock, timeout: 2s }\n');
    const { code, stderr } = await cli(['--config', file, 'status']);
    expect(code).toBe(1);
    expect(stderr).toContain(
      'cannot reach Docker at unix:///nonexistent/docker.sock (from docker.socketPath',
    );
    expect(stderr).not.toMatch(/^\s+at /m);
  });

  it('grow without --to or --by is a usage error', async () => {
    const { code, stderr } = await cli(['grow', 'some-container']);
    expect(code).toBe(2);
    expect(stderr).toContain('--to SIZE or --by SIZE');
  });
});
