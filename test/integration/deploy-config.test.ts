/**
 * The deployment files are accepted by the real tools that consume them: `docker-compose config`
 * (Debian's docker-compose 1.29) for the compose demo, `docker stack config` (docker CLI 28; the
 * Debian 20.10 CLI has no `stack config`) for the swarm stack, `promtool check config` for both
 * Prometheus configurations (with the shipped alert rules beside them), and `docker-autogrow config
 * check` for the demo's agent configuration. Every file they reference exists in the repository.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { parse } from 'yaml';
import { describeWith, prereqs, type Prereq, executable } from '../support/prereqs.js';

const execFileAsync = promisify(execFile);
const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
const COMPOSE_DIR = path.join(REPO_ROOT, 'deploy/compose');
const SWARM_DIR = path.join(REPO_ROOT, 'deploy/swarm');
const ALERTS = path.join(REPO_ROOT, 'deploy/prometheus/alerts.yml');
const DOCKER_COMPOSE = '/usr/bin/docker-compose';
const DOCKER_WITH_STACK_CONFIG = '/usr/local/bin/docker';
const MAIN = path.join(REPO_ROOT, 'dist/src/main.js');

const dockerCompose: Prereq = {
  name: 'docker-compose',
  ok: () => executable(DOCKER_COMPOSE),
  fix: 'apt-get install docker-compose',
};
const stackConfigCli: Prereq = {
  name: 'docker CLI with `stack config` (20.10+ upstream build)',
  ok: () => executable(DOCKER_WITH_STACK_CONFIG),
  fix: `install the upstream docker CLI at ${DOCKER_WITH_STACK_CONFIG} (docker-ce-cli)`,
};
const built: Prereq = { name: 'dist/src/main.js', ok: () => existsSync(MAIN), fix: 'npm run build' };

interface ComposeVolume {
  type: string;
  source?: string;
  target: string;
  read_only?: boolean;
  bind?: { propagation?: string };
}
interface ComposeService {
  image?: string;
  privileged?: boolean;
  pid?: string;
  volumes?: (ComposeVolume | string)[];
  deploy?: { mode?: string; placement?: { constraints?: string[] } };
  configs?: { source: string; target: string }[];
  command?: string[] | string;
}
interface ComposeFile {
  services: Record<string, ComposeService>;
  configs?: Record<string, { file: string }>;
}

async function run(
  file: string,
  args: string[],
  cwd: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(file, args, {
      cwd,
      timeout: 60_000,
      env: { ...process.env, AUTOGROW_IMAGE: '' },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof failure.code === 'number' ? failure.code : -1,
      stdout: failure.stdout ?? '',
      stderr: failure.stderr ?? '',
    };
  }
}

/** docker-compose 1.29 prints short volumes as `source:target:mode` strings, long ones as objects. */
function normalizeVolume(volume: ComposeVolume | string): ComposeVolume {
  if (typeof volume !== 'string') return volume;
  const [source, target, mode] = volume.split(':');
  const isPath = source?.startsWith('/') || source?.startsWith('.');
  return { type: isPath ? 'bind' : 'volume', source, target: target ?? '', read_only: mode === 'ro' };
}

function volumeAt(service: ComposeService, target: string): ComposeVolume | undefined {
  return (service.volumes ?? []).map(normalizeVolume).find((volume) => volume.target === target);
}

describeWith([dockerCompose, stackConfigCli, prereqs.promtool, built], 'deployment files', () => {
  const scratch = mkdtempSync(path.join(tmpdir(), 'agdeploy-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('docker-compose config accepts the compose demo, with the agent run options and the observability files', async () => {
    const result = await run(DOCKER_COMPOSE, ['-f', 'docker-compose.yml', 'config'], COMPOSE_DIR);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const compose = parse(result.stdout) as ComposeFile;
    const agent = compose.services['docker-autogrow']!;
    expect(agent.privileged).toBe(true);
    expect(agent.pid).toBe('host');
    expect(volumeAt(agent, '/var/lib/docker')?.bind?.propagation).toBe('rslave');
    expect(volumeAt(agent, '/var/run/docker.sock')?.source).toBe('/var/run/docker.sock');
    expect(volumeAt(agent, '/dev')?.source).toBe('/dev');
    expect(volumeAt(agent, '/var/lib/docker-autogrow')).toBeDefined();
    expect(volumeAt(compose.services.prometheus!, '/etc/prometheus/alerts.yml')?.source).toBe(ALERTS);
    const grafana = compose.services.grafana!;
    expect(volumeAt(grafana, '/var/lib/grafana/dashboards/docker-autogrow')?.source).toBe(
      path.join(REPO_ROOT, 'grafana/dashboards'),
    );
    // docker-compose does not check bind sources: every file the demo mounts from the repo exists
    const repoSources = Object.values(compose.services)
      .flatMap((service) => (service.volumes ?? []).map(normalizeVolume))
      .filter((volume) => volume.type === 'bind' && volume.source?.startsWith(REPO_ROOT))
      .map((volume) => volume.source!);
    expect(repoSources.length).toBeGreaterThanOrEqual(6);
    expect(repoSources.filter((source) => !existsSync(source))).toEqual([]);
  });

  it('docker-compose config is a real validator: it rejects an unknown propagation option', async () => {
    const broken = readFileSync(path.join(COMPOSE_DIR, 'docker-compose.yml'), 'utf8').replace(
      'propagation: rslave',
      'propagaton: rslave',
    );
    const file = path.join(COMPOSE_DIR, `.broken-${process.pid}.yml`);
    writeFileSync(file, broken);
    try {
      const result = await run(DOCKER_COMPOSE, ['-f', file, 'config', '-q'], COMPOSE_DIR);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/propagaton/);
    } finally {
      rmSync(file, { force: true });
    }
  });

  it('docker stack config accepts the swarm stack: a global agent launcher and Prometheus on a manager', async () => {
    const result = await run(DOCKER_WITH_STACK_CONFIG, ['stack', 'config', '-c', 'stack.yml'], SWARM_DIR);
    expect(result.code).toBe(0);
    const stack = parse(result.stdout) as ComposeFile;
    const launcher = stack.services.launcher!;
    expect(launcher.deploy?.mode).toBe('global');
    const script = Array.isArray(launcher.command) ? launcher.command.join('\n') : String(launcher.command);
    // the swarm service cannot be privileged: the sibling it starts is, with the same options as compose
    expect(script).toContain('--privileged --pid host');
    expect(script).toContain('bind-propagation=rslave');
    expect(script).toContain('"$AUTOGROW_IMAGE" run');
    const prometheus = stack.services.prometheus!;
    expect(prometheus.deploy?.placement?.constraints).toContain('node.role == manager');
    expect(
      Object.values(stack.configs ?? {})
        .map((config) => config.file)
        .sort(),
    ).toEqual([ALERTS, path.join(SWARM_DIR, 'prometheus.yml')].sort());
    for (const config of Object.values(stack.configs ?? {})) expect(existsSync(config.file)).toBe(true);
  });

  it('both Prometheus configurations pass promtool with the shipped alert rules; swarm discovers nodes', async () => {
    for (const dir of [COMPOSE_DIR, SWARM_DIR]) {
      const target = mkdtempSync(path.join(scratch, 'prom-'));
      copyFileSync(path.join(dir, 'prometheus.yml'), path.join(target, 'prometheus.yml'));
      copyFileSync(ALERTS, path.join(target, 'alerts.yml'));
      const result = await run('/usr/bin/promtool', ['check', 'config', 'prometheus.yml'], target);
      expect(`${result.stdout}${result.stderr}`).toMatch(/SUCCESS: 1 rule files found/);
      expect(result.code).toBe(0);
    }
    const swarm = parse(readFileSync(path.join(SWARM_DIR, 'prometheus.yml'), 'utf8')) as {
      scrape_configs: { job_name: string; dockerswarm_sd_configs?: { role: string }[] }[];
    };
    const job = swarm.scrape_configs.find((config) => config.job_name === 'docker-autogrow');
    expect(job?.dockerswarm_sd_configs?.map((config) => config.role)).toEqual(['nodes']);
  });

  it('the demo agent configuration passes `docker-autogrow config check`', async () => {
    const result = await run(
      process.execPath,
      [MAIN, 'config', 'check', path.join(COMPOSE_DIR, 'config.yaml')],
      REPO_ROOT,
    );
    expect(result.stdout).toMatch(/configuration OK/);
    expect(result.code).toBe(0);
  });
});
