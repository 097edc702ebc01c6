/**
 * `doctor`: gathers host facts (the effects), runs the pure generic checks and the storage
 * backend's own checks, and renders a checklist with a fix for each failure.
 */
import { errorMessage } from '../util/errors.js';
import { parseListenAddress, type ListenAddress } from '../config/listen.js';
import { constants as fsConstants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import type { DockerApi } from '../docker/inventory-port.js';
import type { DockerInfo } from '../docker/model.js';
import type { ToolName } from '../exec/runner.js';
import { mountOf } from '../storage/filesystem.js';
import type { DoctorCheck } from '../contracts/doctor-check.js';
import type { StorageBackend } from '../storage/types.js';
import {
  genericChecks,
  hostServable,
  requiredTools,
  type BinaryFact,
  type DockerFact,
  type HostFacts,
  type PortFact,
  type PrivilegeFacts,
} from './checks.js';
import { webConfigFileProblem } from '../http/web-config.js';

export interface DoctorOptions {
  docker: DockerApi;
  socketPath: string;
  /** Resolves a tool like the runner will (ExecaRunner.binaryPath). */
  binaryPath: (tool: ToolName) => string | null;
  /** Config `binaries` overrides, to name the config key in fixes. */
  binaryOverrides: Readonly<Record<string, string>>;
  stateDir: string;
  metrics: { enabled: boolean; listen: string; webConfigFile?: string | undefined };
  /** The backend for this host's driver (null: unsupported driver; the generic check says so). */
  createBackend: (info: DockerInfo) => StorageBackend | null | Promise<StorageBackend | null>;
  /** Injected for tests; default: process.getuid() and /proc/self/status. */
  privileges?: () => Promise<{ uid: number; capSysAdmin: boolean }>;
  /** Injected for tests; default: bind a TCP server briefly. */
  probePort?: (listen: string) => Promise<{ free: boolean; error?: string }>;
}

export interface DoctorResult {
  /** False when any error-severity check failed: the host cannot be served. */
  ok: boolean;
  checks: DoctorCheck[];
}

/** CAP_SYS_ADMIN is capability bit 21 (linux/capability.h). */
const CAP_SYS_ADMIN_BIT = 21n;

async function processPrivileges(): Promise<{ uid: number; capSysAdmin: boolean }> {
  const uid = process.getuid?.() ?? -1;
  try {
    const status = await readFile('/proc/self/status', 'utf8');
    const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
    const capSysAdmin = capEff ? ((BigInt(`0x${capEff}`) >> CAP_SYS_ADMIN_BIT) & 1n) === 1n : false;
    return { uid, capSysAdmin };
  } catch {
    return { uid, capSysAdmin: false };
  }
}

/** Tries to listen on the address, then closes at once. */
export async function probeListen(listen: string): Promise<{ free: boolean; error?: string }> {
  let address: ListenAddress;
  try {
    address = parseListenAddress(listen);
  } catch (error) {
    return { free: false, error: errorMessage(error) };
  }
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) =>
      resolve({ free: false, error: error.code ?? error.message }),
    );
    server.listen({ host: address.host ?? '0.0.0.0', port: address.port, exclusive: true }, () => {
      server.close(() => resolve({ free: true }));
    });
  });
}

async function socketFacts(socketPath: string): Promise<PrivilegeFacts['socket']> {
  try {
    await stat(socketPath);
  } catch {
    return { path: socketPath, exists: false, readWrite: false };
  }
  try {
    await access(socketPath, fsConstants.R_OK | fsConstants.W_OK);
    return { path: socketPath, exists: true, readWrite: true };
  } catch {
    return { path: socketPath, exists: true, readWrite: false };
  }
}

/** Writable if it exists and we may write it, or if its nearest existing parent is writable. */
async function stateDirFacts(dir: string): Promise<PrivilegeFacts['stateDir']> {
  let candidate = path.resolve(dir);
  for (;;) {
    try {
      const stats = await stat(candidate);
      if (!stats.isDirectory()) {
        return { path: dir, writable: false, detail: `${candidate} exists and is not a directory` };
      }
      await access(candidate, fsConstants.W_OK | fsConstants.X_OK);
      return {
        path: dir,
        writable: true,
        detail:
          candidate === path.resolve(dir)
            ? `${dir} is writable`
            : `${dir} will be created under ${candidate}`,
      };
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT')
        return { path: dir, writable: false, detail: `${candidate}: ${code ?? String(error)}` };
      const parent = path.dirname(candidate);
      if (parent === candidate) return { path: dir, writable: false, detail: `no existing parent of ${dir}` };
      candidate = parent;
    }
  }
}

export async function gatherHostFacts(options: DoctorOptions): Promise<HostFacts> {
  let docker: DockerFact;
  try {
    docker = { reachable: true, socketPath: options.socketPath, info: await options.docker.info() };
  } catch (error) {
    docker = {
      reachable: false,
      socketPath: options.socketPath,
      error: errorMessage(error),
    };
  }
  const binaries: BinaryFact[] = docker.reachable
    ? requiredTools(docker.info.driver).map(({ tool }) => {
        const override = options.binaryOverrides[tool];
        return { tool, resolvedPath: options.binaryPath(tool), ...(override ? { override } : {}) };
      })
    : [];
  let dataRootMount: HostFacts['dataRootMount'] = null;
  if (docker.reachable) {
    try {
      dataRootMount = await mountOf(docker.info.dockerRootDir);
    } catch {
      // data root not visible from here (another mount namespace): the driver check says "unknown"
    }
  }
  const [privileges, socket, stateDir, port] = await Promise.all([
    (options.privileges ?? processPrivileges)(),
    socketFacts(options.socketPath),
    stateDirFacts(options.stateDir),
    options.metrics.enabled
      ? (options.probePort ?? probeListen)(options.metrics.listen)
      : Promise.resolve({ free: true }),
  ]);
  const metricsPort: PortFact = { enabled: options.metrics.enabled, listen: options.metrics.listen, ...port };
  const webConfigFile = options.metrics.webConfigFile;
  if (webConfigFile !== undefined) {
    metricsPort.webConfigFile = webConfigFile;
    const problem = webConfigFileProblem(webConfigFile);
    if (problem !== null) metricsPort.webConfigError = problem;
  }
  return { docker, binaries, dataRootMount, privileges: { ...privileges, socket, stateDir }, metricsPort };
}

/**
 * Generic checks plus the backend's. A backend check with the same name as a generic one replaces
 * it (the backend knows its driver better, e.g. why live-restore matters for devicemapper).
 */
export function mergeChecks(generic: readonly DoctorCheck[], backend: readonly DoctorCheck[]): DoctorCheck[] {
  const backendNames = new Set(backend.map((item) => item.name));
  return [...generic.filter((item) => !backendNames.has(item.name)), ...backend];
}

export async function runDoctor(options: DoctorOptions): Promise<DoctorResult> {
  const facts = await gatherHostFacts(options);
  const generic = genericChecks(facts);
  let backendChecks: DoctorCheck[] = [];
  if (facts.docker.reachable) {
    const info = facts.docker.info;
    try {
      const backend = await options.createBackend(info);
      if (backend) backendChecks = await backend.doctor();
    } catch (error) {
      backendChecks = [
        {
          name: `${info.driver} checks`,
          ok: false,
          severity: 'error',
          detail: `the ${info.driver} checks could not run: ${errorMessage(error)}`,
          fix: 'fix the failures above first, then run doctor again',
        },
      ];
    }
  }
  const checks = mergeChecks(generic, backendChecks);
  return { ok: hostServable(checks), checks };
}

const MARK = { ok: '✓', error: '✗', warn: '!' } as const;

/** The checklist for people: one line per check, the fix indented under each failure. */
export function renderChecklist(result: DoctorResult): string {
  const lines: string[] = [];
  for (const item of result.checks) {
    const mark = item.ok ? MARK.ok : MARK[item.severity];
    lines.push(`${mark} ${item.name}: ${item.detail}`);
    if (!item.ok && item.fix) lines.push(`    fix: ${item.fix}`);
  }
  const errors = result.checks.filter((item) => !item.ok && item.severity === 'error').length;
  const warnings = result.checks.filter((item) => !item.ok && item.severity === 'warn').length;
  const plural = (count: number, word: string) => `${count} ${word}${count === 1 ? '' : 's'}`;
  lines.push('');
  lines.push(
    result.ok
      ? `OK: this host can be served (${plural(warnings, 'warning')}).`
      : `NOT OK: ${plural(errors, 'error')}, ${plural(warnings, 'warning')}: docker-autogrow cannot serve this host until the errors are fixed.`,
  );
  return `${lines.join('\n')}\n`;
}

/** The JSON form (`doctor --json`). */
export function doctorJson(result: DoctorResult): string {
  const errors = result.checks.filter((item) => !item.ok && item.severity === 'error').length;
  const warnings = result.checks.filter((item) => !item.ok && item.severity === 'warn').length;
  return `${JSON.stringify({ ok: result.ok, errors, warnings, checks: result.checks }, null, 2)}\n`;
}
