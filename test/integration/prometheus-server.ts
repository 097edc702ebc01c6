/**
 * A private, real Prometheus (Debian's /usr/bin/prometheus) for integration tests: its own
 * configuration, TSDB directory and port, so it never touches a Prometheus service already running
 * on the machine. Also: running every query of the Grafana dashboards against it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import { freePort } from '../support/ports.js';
import {
  dashboardQueries,
  parseLabelValues,
  substitute,
  type DashboardQuery,
} from '../unit/metrics-dashboards.js';

export const PROMETHEUS = '/usr/bin/prometheus';

export interface ScrapeTarget {
  /** host:port */
  target: string;
  /** Extra YAML lines for the scrape job (scheme, tls_config, basic_auth), indented by 4 spaces. */
  extra?: string;
}

export class TestPrometheus {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'agprom-'));
  port = 0;
  private child: ChildProcess | null = null;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(target: ScrapeTarget, jobName = 'docker-autogrow'): Promise<void> {
    this.port = await freePort();
    const config = [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      `  - job_name: ${jobName}`,
      '    static_configs:',
      `      - targets: ['${target.target}']`,
      ...(target.extra ? [target.extra] : []),
      '',
    ].join('\n');
    writeFileSync(path.join(this.dir, 'prometheus.yml'), config);
    const log = openSync(path.join(this.dir, 'prometheus.log'), 'a');
    this.child = spawn(
      PROMETHEUS,
      [
        `--config.file=${path.join(this.dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${path.join(this.dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${this.port}`,
        '--storage.tsdb.retention.time=1d',
        // queries in tests look at the last few seconds; default 5m lookback is fine
      ],
      { stdio: ['ignore', log, log], cwd: this.dir },
    );
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (this.child.exitCode !== null) throw new Error(`prometheus exited early:\n${this.logTail()}`);
      try {
        const response = await fetch(`${this.url}/-/ready`);
        if (response.ok) return;
      } catch {
        // not listening yet
      }
      await sleep(200);
    }
    throw new Error(`prometheus not ready in 60s:\n${this.logTail()}`);
  }

  logTail(lines = 20): string {
    try {
      return readFileSync(path.join(this.dir, 'prometheus.log'), 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** The target's health as Prometheus sees it, and its last scrape error. */
  async targetHealth(): Promise<{ health: string; lastError: string }[]> {
    const body = (await (await fetch(`${this.url}/api/v1/targets`)).json()) as {
      data: { activeTargets: { health: string; lastError: string }[] };
    };
    return body.data.activeTargets;
  }

  async waitForHealthyTarget(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: { health: string; lastError: string }[] = [];
    while (Date.now() < deadline) {
      last = await this.targetHealth();
      if (last.length > 0 && last.every((target) => target.health === 'up')) return;
      await sleep(500);
    }
    throw new Error(`target not up: ${JSON.stringify(last)}`);
  }

  async query(expr: string): Promise<QueryResult> {
    return this.api('/api/v1/query', { query: expr, time: String(Date.now() / 1000) });
  }

  async queryRange(expr: string, startMs: number, endMs: number, stepSeconds = 1): Promise<QueryResult> {
    return this.api('/api/v1/query_range', {
      query: expr,
      start: String(startMs / 1000),
      end: String(endMs / 1000),
      step: String(stepSeconds),
    });
  }

  async labelValues(label: string, selector: string): Promise<string[]> {
    const params = new URLSearchParams({ 'match[]': selector });
    const body = (await (await fetch(`${this.url}/api/v1/label/${label}/values?${params}`)).json()) as {
      status: string;
      data: string[];
    };
    return body.data;
  }

  private async api(endpoint: string, params: Record<string, string>): Promise<QueryResult> {
    const response = await fetch(`${this.url}${endpoint}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(params),
    });
    const body = (await response.json()) as QueryResult;
    if (body.status !== 'success') throw new Error(`${params.query}: ${body.error ?? response.status}`);
    return body;
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    this.child = null;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface QueryResult {
  status: string;
  error?: string;
  data: {
    resultType: 'vector' | 'matrix' | 'scalar' | 'string';
    result: { metric: Record<string, string>; value?: [number, string]; values?: [number, string][] }[];
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Values of every sample in a query result. */
export function sampleValues(result: QueryResult): number[] {
  return result.data.result.flatMap((series) =>
    series.value ? [Number(series.value[1])] : (series.values ?? []).map(([, value]) => Number(value)),
  );
}

export interface DashboardCheck {
  query: DashboardQuery;
  promql: string;
  series: number;
  finiteValues: number;
}

/**
 * Sends every query of every dashboard to Prometheus with the variables substituted and asserts
 * that each returns at least one series with a finite value (variables: the expected value is
 * among the choices). Annotation queries run as range queries from `sinceMs`.
 */
export async function checkEveryDashboardQuery(
  prometheus: TestPrometheus,
  variables: Record<string, string>,
  sinceMs: number,
  /**
   * Metrics this rig cannot have, each with the reason (a query naming one may return nothing);
   * every other query must answer with data.
   */
  absentOnThisRig: readonly { metric: string; why: string }[] = [],
): Promise<DashboardCheck[]> {
  const checks: DashboardCheck[] = [];
  const files = ['grafana/dashboards/host-overview.json', 'grafana/dashboards/container-detail.json'];
  for (const file of files) {
    for (const query of dashboardQueries(file)) {
      const promql = substitute(query.expr, variables);
      if (query.kind === 'variable') {
        const { selector, label } = parseLabelValues(promql);
        const choices = await prometheus.labelValues(label, selector);
        expect(choices, `${file} ${query.where}: ${promql}`).toContain(
          variables[label === 'container_name' ? 'container' : label],
        );
        checks.push({ query, promql, series: choices.length, finiteValues: choices.length });
        continue;
      }
      const result =
        query.kind === 'annotation'
          ? await prometheus.queryRange(promql, sinceMs, Date.now(), 1)
          : await prometheus.query(promql);
      const values = sampleValues(result);
      const finiteValues = values.filter((value) => Number.isFinite(value)).length;
      checks.push({ query, promql, series: result.data.result.length, finiteValues });
    }
  }
  const empty = checks.filter(
    (check) =>
      (check.series === 0 || check.finiteValues === 0) &&
      !absentOnThisRig.some(({ metric }) => check.promql.includes(`${metric}{`)),
  );
  expect(
    empty.map((check) => `${check.query.dashboard} ${check.query.where}: ${check.promql}`),
    'dashboard queries without data',
  ).toEqual([]);
  return checks;
}
