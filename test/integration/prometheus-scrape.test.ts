/**
 * A real Prometheus (Debian's) scrapes the real metrics endpoint over TLS with basic auth, exactly
 * as an operator would configure it for node_exporter; the endpoint is fed pass reports by a
 * simulated agent loop (this test does not need Docker: prometheus-e2e.test.ts runs the real agent).
 * Proves: Prometheus accepts the exposition and the secured endpoint, every dashboard query returns
 * data, a destroyed container's series end (become stale) after the next pass, and a wrong
 * password is seen by Prometheus as a failed scrape.
 */
import { writeFileSync } from 'node:fs';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ContainerReport, PassReport } from '../../src/report/pass-report.js';
import { startMetricsServer, type MetricsServer } from '../../src/http/server.js';
import { silentLogger } from '../../src/log/logger.js';
import { createMetrics, type Metrics } from '../../src/metrics/metrics.js';
import { describeWith, prereqs } from '../support/prereqs.js';
import { samplePassReport } from '../unit/metrics-sample-report.js';
import { sampleDataFsStatus } from '../unit/data-filesystem-sample-status.js';
import { SERVER_EXTENSIONS, TestCertificates, opensslPrereq } from './http-certs.js';
import { TestPrometheus, checkEveryDashboardQuery, sampleValues, sleep } from './prometheus-server.js';

const MIB = 1024 ** 2;

/**
 * One simulated pass of the sample host: web-1 fills at 1 MiB per pass and is grown by 20% when it
 * crosses 85%, as the agent would; db-1 is grown only in the first pass.
 */
class SimulatedHost {
  private webSizeBytes = 64 * MIB;
  // near the threshold, so grows (annotations) happen every few seconds whatever the start-up time
  private webUsedBytes = 50 * MIB;
  pass = 0;

  next(withoutContainers: readonly string[]): PassReport {
    const report = samplePassReport(Date.now());
    this.webUsedBytes += MIB;
    let webGrow: Pick<ContainerReport, 'decision' | 'outcome'> | null = null;
    if (this.webUsedBytes / this.webSizeBytes >= 0.85) {
      const fromBytes = this.webSizeBytes;
      this.webSizeBytes = Math.round(fromBytes * 1.2);
      const id = report.containers[0]?.containerId ?? '';
      webGrow = {
        decision: {
          kind: 'grow',
          containerId: id,
          fromBytes,
          toBytes: this.webSizeBytes,
          trigger: 'threshold',
          why: '',
        },
        outcome: { kind: 'grown', fromBytes, toBytes: this.webSizeBytes, durationMs: 30 },
      };
    }
    const containers = report.containers
      .filter((container) => !withoutContainers.includes(container.name))
      .map((container): ContainerReport => {
        if (container.name === 'web-1' && container.usage) {
          return {
            ...container,
            ...webGrow,
            usage: { ...container.usage, sizeBytes: this.webSizeBytes, usedBytes: this.webUsedBytes },
            // 1 MiB per 500 ms pass
            timeToFullSeconds: (this.webSizeBytes - this.webUsedBytes) / (2 * MIB),
          };
        }
        if (container.name === 'db-1' && this.pass > 0) {
          const { outcome: _outcome, ...rest } = container;
          return {
            ...rest,
            decision: { kind: 'skip', containerId: container.containerId, reason: 'cooldown', why: '' },
          };
        }
        return container;
      });
    this.pass += 1;
    return { ...report, containers };
  }
}

describeWith([prereqs.prometheus, opensslPrereq], 'real Prometheus scraping the secured endpoint', () => {
  const certs = new TestCertificates();
  const prometheus = new TestPrometheus();
  let metrics: Metrics;
  let server: MetricsServer;
  let feeder: NodeJS.Timeout | undefined;
  const host = new SimulatedHost();
  const removed: string[] = [];
  const startedAtMs = Date.now();

  beforeAll(async () => {
    await certs.makeCa('ca');
    await certs.makeCert('server', 'ca', SERVER_EXTENSIONS);
    const webConfig = certs.file('web.yml');
    writeFileSync(
      webConfig,
      [
        'tls_server_config:',
        '  cert_file: server.crt',
        '  key_file: server.key',
        'basic_auth_users:',
        `  prometheus: ${bcrypt.hashSync('scrape-secret', 10)}`,
        '',
      ].join('\n'),
    );
    writeFileSync(certs.file('password'), 'scrape-secret');

    metrics = createMetrics();
    metrics.setEventStreamConnected(true);
    // the data filesystem rows of the host dashboard: a recorded LVM host whose VG is exhausted
    metrics.dataFilesystem.applyStatus(sampleDataFsStatus());
    const tick = () => metrics.applyPassReport(host.next(removed));
    tick();
    feeder = setInterval(tick, 500);
    server = await startMetricsServer({
      listen: '127.0.0.1:0',
      webConfigFile: webConfig,
      registry: metrics.registry,
      isReady: () => true,
      logger: silentLogger(),
    });
    await prometheus.start({
      target: `localhost:${server.port}`,
      extra: [
        '    scheme: https',
        '    tls_config:',
        `      ca_file: ${certs.file('ca.crt')}`,
        '    basic_auth:',
        '      username: prometheus',
        `      password_file: ${certs.file('password')}`,
      ].join('\n'),
    });
    await prometheus.waitForHealthyTarget();
    // enough samples for rate(), deriv() and predict_linear()
    await sleep(12_000);
  });

  afterAll(async () => {
    if (feeder) clearInterval(feeder);
    await prometheus.stop();
    await server?.close();
    certs.remove();
  });

  it('scrapes over TLS with basic auth and stores the agent metrics', async () => {
    const up = await prometheus.query('up{job="docker-autogrow"}');
    expect(sampleValues(up)).toEqual([1]);
    const build = await prometheus.query('docker_autogrow_build_info');
    expect(build.data.result[0]?.metric.instance).toBe(`localhost:${server.port}`);
  });

  it('answers every query of every dashboard panel, annotation and variable with data', async () => {
    const checks = await checkEveryDashboardQuery(
      prometheus,
      {
        datasource: 'prometheus',
        instance: `localhost:${server.port}`,
        container: 'web-1',
        container_name: 'web-1',
        __rate_interval: '10s',
        __interval: '2s',
        __range: '1m',
      },
      startedAtMs,
      [
        {
          metric: 'docker_autogrow_data_filesystem_device_needs_operator',
          why: "the sample host's disk grew under its PV, not under a partition: the panel's '== 1' shows nothing",
        },
      ],
    );
    expect(checks.filter((check) => check.query.kind === 'panel').length).toBeGreaterThan(30);
    expect(checks.filter((check) => check.query.kind === 'annotation').length).toBe(2);
  });

  it("ends a destroyed container's series after the next pass", async () => {
    const selector = 'docker_autogrow_container_used_bytes{container_name="cache-1"}';
    expect(sampleValues(await prometheus.query(selector)).length).toBe(1);
    removed.push('cache-1');
    await sleep(3_000); // a pass (500 ms) and a scrape (1 s) later
    expect((await prometheus.query(selector)).data.result).toEqual([]);
    expect((await prometheus.query('{container_name="cache-1"}')).data.result).toEqual([]);
    // the other containers are still there
    expect(sampleValues(await prometheus.query('docker_autogrow_container_used_bytes')).length).toBe(3);
  });
});

describeWith([prereqs.prometheus], 'real Prometheus with a wrong password', () => {
  const prometheus = new TestPrometheus();
  let server: MetricsServer;
  const webConfig = `${prometheus.dir}/web.yml`;

  beforeAll(async () => {
    writeFileSync(webConfig, `basic_auth_users:\n  prometheus: ${bcrypt.hashSync('right', 8)}\n`);
    writeFileSync(`${prometheus.dir}/password`, 'wrong');
    server = await startMetricsServer({
      listen: '127.0.0.1:0',
      webConfigFile: webConfig,
      registry: createMetrics({ processMetrics: false }).registry,
      isReady: () => true,
      logger: silentLogger(),
    });
    await prometheus.start({
      target: `127.0.0.1:${server.port}`,
      extra: [
        '    basic_auth:',
        '      username: prometheus',
        `      password_file: ${prometheus.dir}/password`,
      ].join('\n'),
    });
  });

  afterAll(async () => {
    await prometheus.stop();
    await server?.close();
  });

  it('sees the scrape fail with 401 and stores no agent metrics', async () => {
    let targets: { health: string; lastError: string }[] = [];
    for (let attempt = 0; attempt < 40; attempt += 1) {
      targets = await prometheus.targetHealth();
      if (targets[0]?.health === 'down') break;
      await sleep(500);
    }
    expect(targets[0]?.health).toBe('down');
    expect(targets[0]?.lastError).toContain('401');
    expect((await prometheus.query('docker_autogrow_build_info')).data.result).toEqual([]);
  });
});
