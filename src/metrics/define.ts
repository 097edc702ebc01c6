/**
 * Metric definitions as data: each family of metrics is a table of rows `{ type, name, help,
 * labels }`, and {@link defineMetrics} turns the table into prom-client objects registered on one
 * private registry. This is the only module that imports prom-client.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export { Registry };
export type { Gauge };

/** prom-client's `process_*` and `nodejs_*` metrics on `registry` (never the global registry). */
export function collectProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
}

export const METRIC_PREFIX = 'docker_autogrow_';

interface BaseDefinition {
  /** Name without the `docker_autogrow_` prefix, in base units (`_bytes`, `_seconds`, `_total`). */
  name: string;
  help: string;
  labels?: readonly string[];
}

export type MetricDefinition =
  | (BaseDefinition & { type: 'gauge' })
  | (BaseDefinition & { type: 'counter' })
  | (BaseDefinition & { type: 'histogram'; buckets: readonly number[] });

type LabelsOf<D> = D extends { labels: readonly (infer L)[] } ? (L extends string ? L : never) : never;

export type DefinedMetric<D extends MetricDefinition> = D extends { type: 'gauge' }
  ? Gauge<LabelsOf<D>>
  : D extends { type: 'counter' }
    ? Counter<LabelsOf<D>>
    : Histogram<LabelsOf<D>>;

/** Registers every row of `table` on `registry`; returns the metrics under the table's keys. */
export function defineMetrics<const T extends Record<string, MetricDefinition>>(
  registry: Registry,
  table: T,
): { [K in keyof T]: DefinedMetric<T[K]> } {
  const built: Record<string, unknown> = {};
  for (const [key, definition] of Object.entries(table)) {
    const common = {
      name: `${METRIC_PREFIX}${definition.name}`,
      help: definition.help,
      labelNames: [...(definition.labels ?? [])],
      registers: [registry],
    };
    built[key] =
      definition.type === 'gauge'
        ? new Gauge(common)
        : definition.type === 'counter'
          ? new Counter(common)
          : new Histogram({ ...common, buckets: [...definition.buckets] });
  }
  return built as { [K in keyof T]: DefinedMetric<T[K]> };
}
