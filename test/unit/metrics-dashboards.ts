/**
 * Reads the Grafana dashboards in grafana/dashboards/ and lists every PromQL query they send:
 * panel targets (rows included), annotation queries and `label_values()` variable queries, with
 * Grafana's variables substituted so the queries can be sent to a real Prometheus.
 */
import { readFileSync } from 'node:fs';

export const DASHBOARD_FILES = [
  'grafana/dashboards/host-overview.json',
  'grafana/dashboards/container-detail.json',
];

export interface DashboardQuery {
  dashboard: string;
  /** `panel "<title>" <refId>`, `annotation "<name>"` or `variable <name>` */
  where: string;
  kind: 'panel' | 'annotation' | 'variable';
  expr: string;
  instant: boolean;
}

interface Target {
  expr?: string;
  refId?: string;
  instant?: boolean;
  datasource?: { type?: string; uid?: string };
}

export interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}

export interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  annotations: { list: { name: string; expr?: string; datasource?: { type?: string; uid?: string } }[] };
  templating: {
    list: { name: string; type: string; query?: string | { query: string }; definition?: string }[];
  };
}

export function loadDashboard(file: string): Dashboard {
  return JSON.parse(readFileSync(file, 'utf8')) as Dashboard;
}

/** Every panel, including those nested in rows. */
export function allPanels(dashboard: Dashboard): Panel[] {
  return dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]);
}

export function dashboardQueries(file: string): DashboardQuery[] {
  const dashboard = loadDashboard(file);
  const queries: DashboardQuery[] = [];
  for (const panel of allPanels(dashboard)) {
    for (const target of panel.targets ?? []) {
      if (!target.expr) continue;
      queries.push({
        dashboard: file,
        where: `panel "${panel.title}" ${target.refId ?? ''}`.trim(),
        kind: 'panel',
        expr: target.expr,
        instant: target.instant === true,
      });
    }
  }
  for (const annotation of dashboard.annotations.list) {
    if (!annotation.expr) continue;
    queries.push({
      dashboard: file,
      where: `annotation "${annotation.name}"`,
      kind: 'annotation',
      expr: annotation.expr,
      instant: false,
    });
  }
  for (const variable of dashboard.templating.list) {
    if (variable.type !== 'query') continue;
    const query = typeof variable.query === 'string' ? variable.query : (variable.query?.query ?? '');
    queries.push({
      dashboard: file,
      where: `variable ${variable.name}`,
      kind: 'variable',
      expr: query,
      instant: true,
    });
  }
  return queries;
}

/** Replaces `$name` and `${name}` by the given values (longest names first). */
export function substitute(expr: string, values: Record<string, string>): string {
  let result = expr;
  for (const name of Object.keys(values).sort((a, b) => b.length - a.length)) {
    const value = values[name] as string;
    result = result.split(`\${${name}}`).join(value).split(`$${name}`).join(value);
  }
  return result;
}

/** `label_values(metric{selector}, label)` split into its series selector and label name. */
export function parseLabelValues(expr: string): { selector: string; label: string } {
  const match = /^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$/.exec(expr.trim());
  if (!match) throw new Error(`not a label_values() query: ${expr}`);
  return { selector: (match[1] as string).trim(), label: match[2] as string };
}
