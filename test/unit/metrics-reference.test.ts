/**
 * The metrics reference in README.md (between `<!-- metrics:start -->` and `<!-- metrics:end -->`)
 * and in docs/metrics.md must list exactly the metrics the agent registers, with their types and
 * label names as a scrape shows them.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/metrics/metrics.js';
import { parseExposition } from './metrics-exposition.js';
import { samplePassReport, sampleThinPoolReport } from './metrics-sample-report.js';
import { sampleDataFsStatus } from './data-filesystem-sample-status.js';

interface DocumentedMetric {
  name: string;
  type: string;
  labels: string[];
}

function section(file: string, start: string, end: string): string {
  const text = readFileSync(file, 'utf8');
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  if (from < 0 || to < from) throw new Error(`${file}: no section between ${start} and ${end}`);
  return text.slice(from + start.length, to);
}

/** Rows of the reference table: `| \`name\` | type | \`label\`, ... | meaning |`. */
function documentedMetrics(markdown: string): DocumentedMetric[] {
  const rows: DocumentedMetric[] = [];
  for (const line of markdown.split('\n')) {
    const cells = line.split('|').map((cell) => cell.trim());
    const name = /^`(docker_autogrow_[a-z_]+)`$/.exec(cells[1] ?? '')?.[1];
    if (!name) continue;
    const labels = [...(cells[3] ?? '').matchAll(/`([a-z_]+)`/g)].map((match) => match[1] as string);
    rows.push({ name, type: cells[2] ?? '', labels });
  }
  return rows;
}

/** What a scrape shows after passes that exercise every metric: name -> type and label names. */
async function registeredMetrics(): Promise<Map<string, { type: string; labels: Set<string> }>> {
  const metrics = createMetrics({ processMetrics: false });
  metrics.applyPassReport(sampleThinPoolReport());
  const thinPoolText = await metrics.registry.metrics();
  metrics.applyPassReport(samplePassReport());
  metrics.setEventStreamConnected(true);
  metrics.incEventStreamReconnects();
  metrics.incJournalErrors();
  metrics.incLabelWarnings(1);
  metrics.dataFilesystem.applyStatus(sampleDataFsStatus());
  const text = `${thinPoolText}\n${await metrics.registry.metrics()}`;
  const registered = new Map<string, { type: string; labels: Set<string> }>();
  for (const match of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    registered.set(match[1] as string, { type: match[2] as string, labels: new Set() });
  }
  for (const sample of parseExposition(text)) {
    const base = registered.has(sample.name) ? sample.name : sample.name.replace(/_(bucket|sum|count)$/, '');
    const entry = registered.get(base);
    if (!entry) throw new Error(`sample of an unregistered metric: ${sample.name}`);
    for (const label of Object.keys(sample.labels)) if (label !== 'le') entry.labels.add(label);
  }
  expect([...registered.keys()].sort()).toEqual(metrics.metricNames().sort());
  return registered;
}

describe.each([
  ['README.md', '<!-- metrics:start -->', '<!-- metrics:end -->'],
  ['docs/metrics.md', '<!-- metrics-table:start -->', '<!-- metrics-table:end -->'],
])('metrics reference in %s', (file, start, end) => {
  it('lists exactly the registered metrics, each once, with their type and labels', async () => {
    const documented = documentedMetrics(section(file, start, end));
    const registered = await registeredMetrics();
    const names = documented.map((metric) => metric.name);
    expect(new Set(names).size, 'listed twice').toBe(names.length);
    expect([...names].sort()).toEqual([...registered.keys()].sort());
    for (const metric of documented) {
      const actual = registered.get(metric.name);
      expect(metric.type, metric.name).toBe(actual?.type);
      expect([...metric.labels].sort(), metric.name).toEqual([...(actual?.labels ?? [])].sort());
    }
  });

  it('mentions the process and Node.js metrics the registry adds by default', () => {
    const markdown = section(file, start, end);
    expect(markdown).toContain('`process_*`');
    expect(markdown).toContain('`nodejs_*`');
    const defaults = createMetrics()
      .metricNames()
      .filter((name) => !name.startsWith('docker_autogrow_'));
    expect(defaults.length).toBeGreaterThan(10);
    expect(defaults.filter((name) => !/^(process|nodejs)_/.test(name))).toEqual([]);
  });
});
