import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createMetrics } from '../../src/metrics/metrics.js';
import {
  DASHBOARD_FILES,
  allPanels,
  dashboardQueries,
  loadDashboard,
  parseLabelValues,
  substitute,
} from './metrics-dashboards.js';

const registered = new Set(createMetrics({ processMetrics: false }).metricNames());

describe('Grafana dashboards', () => {
  it.each(DASHBOARD_FILES)(
    '%s: unique panel ids, a fleet-wide instance variable and a datasource variable',
    (file) => {
      const dashboard = loadDashboard(file);
      expect(dashboard.uid).toMatch(/^docker-autogrow-/);
      const ids = allPanels(dashboard).map((panel) => panel.id);
      expect(new Set(ids).size).toBe(ids.length);
      const variables = dashboard.templating.list.map((variable) => variable.name);
      expect(variables.slice(0, 2)).toEqual(['datasource', 'instance']);
      for (const annotation of dashboard.annotations.list) {
        if (annotation.expr) {
          expect(annotation.datasource, annotation.name).toEqual({
            type: 'prometheus',
            uid: '${datasource}',
          });
        }
      }
      for (const panel of allPanels(dashboard)) {
        expect(panel.gridPos.x + panel.gridPos.w, panel.title).toBeLessThanOrEqual(24);
        if (panel.type === 'row') continue;
        expect(panel.datasource, panel.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
        expect(panel.targets?.length ?? 0, panel.title).toBeGreaterThan(0);
      }
    },
  );

  it.each(DASHBOARD_FILES)('%s: every series selector is restricted to the chosen instance', (file) => {
    for (const query of dashboardQueries(file)) {
      const selectors = query.expr.match(/\b(docker_autogrow_[a-z_]+|up)\b(\{[^}]*\})?/g) ?? [];
      expect(selectors.length, query.where).toBeGreaterThan(0);
      for (const selector of selectors) {
        if (query.where === 'variable instance') continue; // lists the instances to choose from
        expect(selector, `${query.where}: ${selector}`).toContain('instance=~"$instance"');
      }
    }
  });

  it.each(DASHBOARD_FILES)('%s: uses only metrics the agent registers', (file) => {
    for (const query of dashboardQueries(file)) {
      for (const name of query.expr.match(/docker_autogrow_[a-z_]+/g) ?? []) {
        expect(registered, `${query.where}: ${name}`).toContain(name.replace(/_(bucket|sum|count)$/, ''));
      }
    }
  });

  it('host overview covers pool capacity and forecast, containers by used %, resizes as annotations, failures', () => {
    const queries = dashboardQueries('grafana/dashboards/host-overview.json');
    const exprs = queries.map((query) => query.expr).join('\n');
    expect(exprs).toContain('predict_linear(docker_autogrow_pool_data_used_bytes');
    expect(exprs).toContain(
      'docker_autogrow_container_used_bytes{instance=~"$instance"} / docker_autogrow_container_size_bytes',
    );
    expect(exprs).toContain('result="failed"');
    const annotations = queries.filter((query) => query.kind === 'annotation');
    expect(annotations.map((query) => query.expr).join()).toContain('docker_autogrow_resizes_total');
  });

  it('container detail has a container variable restricted to the instance', () => {
    const dashboard = loadDashboard('grafana/dashboards/container-detail.json');
    const container = dashboard.templating.list.find((variable) => variable.name === 'container');
    const query = typeof container?.query === 'string' ? container.query : (container?.query?.query ?? '');
    expect(parseLabelValues(query)).toEqual({
      selector: 'docker_autogrow_container_backoff_active{instance=~"$instance"}',
      label: 'container_name',
    });
    for (const panelQuery of dashboardQueries('grafana/dashboards/container-detail.json')) {
      if (panelQuery.kind !== 'variable')
        expect(panelQuery.expr, panelQuery.where).toContain('container_name="$container"');
    }
  });

  it('substitutes Grafana variables in both spellings', () => {
    expect(
      substitute('a{instance=~"$instance"}[$__rate_interval] ${instance}', {
        instance: 'h:1',
        __rate_interval: '1m',
      }),
    ).toBe('a{instance=~"h:1"}[1m] h:1');
  });

  it('provisioning files point Grafana at the dashboards and a Prometheus datasource', () => {
    const datasources = parse(
      readFileSync('grafana/provisioning/datasources/docker-autogrow.yml', 'utf8'),
    ) as {
      apiVersion: number;
      datasources: { type: string }[];
    };
    expect(datasources.apiVersion).toBe(1);
    expect(datasources.datasources[0]?.type).toBe('prometheus');
    const providers = parse(readFileSync('grafana/provisioning/dashboards/docker-autogrow.yml', 'utf8')) as {
      providers: { type: string; options: { path: string } }[];
    };
    expect(providers.providers[0]?.type).toBe('file');
    expect(providers.providers[0]?.options.path).toMatch(/^\//);
  });
});

describe('Grafana host overview: data filesystem and reclaim', () => {
  it('shows the data filesystem, why it cannot grow, and reclaimed bytes and runs', () => {
    const exprs = dashboardQueries('grafana/dashboards/host-overview.json')
      .map((query) => query.expr)
      .join('\n');
    for (const name of [
      'docker_autogrow_data_filesystem_size_bytes',
      'docker_autogrow_data_filesystem_vg_free_bytes',
      'docker_autogrow_data_filesystem_cannot_grow',
      'docker_autogrow_data_filesystem_grows_total',
      'docker_autogrow_reclaim_freed_bytes_total',
      'docker_autogrow_reclaim_runs_total',
      'docker_autogrow_reclaim_exhausted',
    ])
      expect(exprs).toContain(`${name}{instance=~"$instance"}`);
  });
});
