/**
 * The shipped unit passes the real `systemd-analyze verify`, and keeps the properties the agent
 * relies on: Type=notify with a watchdog, `config check` before start, restart on failure, and no
 * directive that would give it a private mount namespace ("Device is busy" on container removal).
 */
import { execFile } from 'node:child_process';
import { accessSync, chmodSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { describeWith, type Prereq } from '../support/prereqs.js';

const execFileAsync = promisify(execFile);
const UNIT_PATH = path.resolve(import.meta.dirname, '../../deploy/systemd/docker-autogrow.service');
const SHIPPED_BINARY = '/usr/local/bin/docker-autogrow';

const systemdAnalyze: Prereq = {
  name: 'systemd-analyze',
  ok: () => {
    try {
      accessSync('/usr/bin/systemd-analyze', constants.X_OK);
      return true;
    } catch {
      return false;
    }
  },
  fix: 'apt-get install systemd',
};

/** Directives that imply a private mount namespace (systemd.exec(5)). */
const MOUNT_NAMESPACE_DIRECTIVES = [
  'PrivateTmp',
  'PrivateDevices',
  'PrivateMounts',
  'ProtectSystem',
  'ProtectHome',
  'ProtectKernelTunables',
  'ProtectKernelModules',
  'ProtectKernelLogs',
  'ProtectControlGroups',
  'ProtectClock',
  'ProtectProc',
  'ProtectHostname',
  'ProcSubset',
  'ReadWritePaths',
  'ReadOnlyPaths',
  'InaccessiblePaths',
  'ExecPaths',
  'NoExecPaths',
  'TemporaryFileSystem',
  'BindPaths',
  'BindReadOnlyPaths',
  'RootDirectory',
  'RootImage',
  'MountFlags',
  'MountImages',
  'ExtensionImages',
  'LogNamespace',
  'PrivateNetwork',
  'NetworkNamespacePath',
  'PrivateUsers',
];

function directives(unitText: string): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const rawLine of unitText.split('\n')) {
    const line = rawLine.trim();
    if (!line || line.startsWith('#') || line.startsWith(';') || line.startsWith('[')) continue;
    const eq = line.indexOf('=');
    const key = line.slice(0, eq).trim();
    found.set(key, [...(found.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return found;
}

describeWith([systemdAnalyze], 'systemd unit deploy/systemd/docker-autogrow.service', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'agunit-'));
  const unitText = readFileSync(UNIT_PATH, 'utf8');

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** verify needs the ExecStart binary to exist: point a copy at a real executable. */
  async function verify(text: string): Promise<{ ok: boolean; output: string }> {
    const fakeBinary = path.join(dir, 'docker-autogrow');
    writeFileSync(fakeBinary, '#!/bin/sh\nexit 0\n');
    chmodSync(fakeBinary, 0o755);
    const unitFile = path.join(dir, 'docker-autogrow.service');
    writeFileSync(unitFile, text.replaceAll(SHIPPED_BINARY, fakeBinary));
    try {
      const { stdout, stderr } = await execFileAsync('/usr/bin/systemd-analyze', ['verify', unitFile], {
        env: { ...process.env, SYSTEMD_LOG_COLOR: '0' },
      });
      return { ok: true, output: `${stdout}${stderr}` };
    } catch (error) {
      const failure = error as { stdout?: string; stderr?: string };
      return { ok: false, output: `${failure.stdout ?? ''}${failure.stderr ?? ''}` };
    }
  }

  it('passes systemd-analyze verify with no warning at all', async () => {
    const result = await verify(unitText);
    expect(result.output).toBe('');
    expect(result.ok).toBe(true);
  });

  it('is verified for real: a misspelt key or a missing binary is reported', async () => {
    const misspelt = await verify(
      unitText.replace('Restart=on-failure', 'Restart=on-failure\nRestartSecs=5s'),
    );
    expect(misspelt.output).toMatch(/Unknown key.*RestartSecs/);
    const missingBinary = await verify(
      unitText.replace(`ExecStart=${SHIPPED_BINARY} run`, 'ExecStart=/nonexistent/docker-autogrow run'),
    );
    expect(missingBinary.ok).toBe(false);
  });

  it('ships the realistic paths and the notify/watchdog/restart contract', () => {
    const keys = directives(unitText);
    expect(keys.get('ExecStart')).toEqual([`${SHIPPED_BINARY} run`]);
    expect(keys.get('ExecStartPre')).toEqual([`${SHIPPED_BINARY} config check`]);
    expect(keys.get('Type')).toEqual(['notify']);
    expect(keys.get('NotifyAccess')).toEqual(['all']);
    expect(keys.get('WatchdogSec')?.[0]).toMatch(/^\d+s$/);
    expect(keys.get('Restart')).toEqual(['on-failure']);
    expect(keys.get('After')?.[0]).toContain('docker.service');
    expect(keys.get('Wants')).toEqual(['docker.service']);
    expect(keys.get('NoNewPrivileges')).toEqual(['yes']);
  });

  it('has no directive that creates a private mount namespace', () => {
    const keys = directives(unitText);
    const present = MOUNT_NAMESPACE_DIRECTIVES.filter((key) => keys.has(key));
    expect(present).toEqual([]);
  });
});
