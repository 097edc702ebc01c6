/**
 * Debian's real promtool against our artefacts: `check metrics` on a real scrape of the real HTTP
 * server, `check rules` and `test rules` on the alert rules, `check config` on the example
 * Prometheus configuration; plus the bookkeeping promtool cannot do (every alert has a firing and a
 * quiet test case, a summary, a description and a runbook section; alerts use only real metrics).
 */
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parse } from 'yaml';
import { startMetricsServer, type MetricsServer } from '../../src/http/server.js';
import { silentLogger } from '../../src/log/logger.js';
import { createMetrics, type Metrics } from '../../src/metrics/metrics.js';
import { describeWith, prereqs } from '../support/prereqs.js';
import { samplePassReport, sampleThinPoolReport } from '../unit/metrics-sample-report.js';

const execFileAsync = promisify(execFile);
const PROMTOOL = '/usr/bin/promtool';
const ALERTS = 'deploy/prometheus/alerts.yml';
const ALERT_TESTS = 'deploy/prometheus/alerts.test.yml';

interface Result {
  code: number | null;
  output: string;
}

/** Runs promtool with `input` on stdin; never throws, so tests can assert on failures too. */
function promtool(args: string[], input?: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(PROMTOOL, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(input ?? '');
  });
}

interface AlertRule {
  alert: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

function alertRules(): AlertRule[] {
  const doc = parse(readFileSync(ALERTS, 'utf8')) as { groups: { rules: AlertRule[] }[] };
  return doc.groups.flatMap((group) => group.rules);
}

describeWith([prereqs.promtool], 'promtool on metrics, alert rules and the example config', () => {
  let metrics: Metrics;
  let server: MetricsServer;

  beforeAll(async () => {
    metrics = createMetrics();
    server = await startMetricsServer({
      listen: '127.0.0.1:0',
      registry: metrics.registry,
      isReady: () => true,
      logger: silentLogger(),
    });
  });

  afterAll(async () => {
    await server?.close();
  });

  async function scrape(): Promise<string> {
    const response = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    expect(response.status).toBe(200);
    return response.text();
  }

  it('finds a lint problem when there is one (the check below can fail)', async () => {
    const bad = '# HELP requests Requests.\n# TYPE requests counter\nrequests 1\n';
    const result = await promtool(['check', 'metrics'], bad);
    expect(result.code).not.toBe(0);
    expect(result.output).toContain('counter metrics should have "_total" suffix');
  });

  it('`promtool check metrics` is clean on a real scrape of a thin-pool host and of a btrfs host', async () => {
    for (const report of [sampleThinPoolReport(), samplePassReport()]) {
      metrics.applyPassReport(report);
      const body = await scrape();
      expect(body).toContain('docker_autogrow_container_used_bytes{');
      const result = await promtool(['check', 'metrics'], body);
      expect(result.output).toBe('');
      expect(result.code).toBe(0);
    }
  });

  it('`promtool check rules` accepts the alert rules', async () => {
    const result = await promtool(['check', 'rules', ALERTS]);
    expect(result.output).toContain('SUCCESS');
    expect(result.code).toBe(0);
  });

  it('`promtool test rules` passes every case', async () => {
    const result = await promtool(['test', 'rules', ALERT_TESTS]);
    expect(result.output).toContain('SUCCESS');
    expect(result.output).not.toContain('FAILED');
    expect(result.code).toBe(0);
  });

  it('`promtool check config` accepts the example Prometheus configuration', async () => {
    const { stdout } = await execFileAsync(PROMTOOL, ['check', 'config', 'deploy/prometheus/prometheus.yml']);
    expect(stdout).toContain('SUCCESS');
  });

  it('has, for every alert, a test case where it fires and one where it stays quiet', () => {
    const doc = parse(readFileSync(ALERT_TESTS, 'utf8')) as {
      tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
    };
    const checks = doc.tests.flatMap((test) => test.alert_rule_test ?? []);
    for (const { alert } of alertRules()) {
      const mine = checks.filter((check) => check.alertname === alert);
      expect(
        mine.some((check) => (check.exp_alerts ?? []).length > 0),
        `${alert} fires in a test`,
      ).toBe(true);
      expect(
        mine.some((check) => (check.exp_alerts ?? []).length === 0),
        `${alert} stays quiet in a test`,
      ).toBe(true);
    }
  });

  it('gives every alert a severity, summary, description and a runbook section that exists', () => {
    const headings = new Set(
      readFileSync('docs/alerts.md', 'utf8')
        .split('\n')
        .filter((line) => line.startsWith('## '))
        .map((line) => `docs/alerts.md#${line.slice(3).trim().toLowerCase()}`),
    );
    const rules = alertRules();
    expect(rules.length).toBeGreaterThanOrEqual(14);
    for (const rule of rules) {
      expect(['critical', 'warning'], rule.alert).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      expect(rule.annotations?.description?.length ?? 0, rule.alert).toBeGreaterThan(60);
      expect(rule.annotations?.runbook_url, rule.alert).toBe(`docs/alerts.md#${rule.alert.toLowerCase()}`);
      expect(headings, rule.alert).toContain(rule.annotations?.runbook_url);
    }
  });

  it('uses only metrics the agent registers', () => {
    const registered = new Set(createMetrics({ processMetrics: false }).metricNames());
    const used = new Set(alertRules().flatMap((rule) => rule.expr.match(/docker_autogrow_[a-z_]+/g) ?? []));
    expect(used.size).toBeGreaterThan(10);
    for (const name of used) expect(registered, name).toContain(name.replace(/_(bucket|sum|count)$/, ''));
  });
});
