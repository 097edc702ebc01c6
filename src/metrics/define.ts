/**
 * Metric definitions as data: each family of metrics is a table of rows `{ type, name, help,
 * labels }`, and {@link defineMetrics} turns the table into prom-client objects registered on one
 * private registry. This is the only module that imports prom-client.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export { Registry };
export type { Gauge };

/**
 * How often the event-loop delay histogram (nodejs_eventloop_lag_*_seconds) samples the loop.
 * prom-client's default is 10 ms: a libuv timer that wakes the process 100 times a second. Measured
 * on this project's host, an otherwise idle node spends 125 ms of CPU per 20 s on it (0.62% of a
 * core, more than half the agent's whole cost at rest) against 4.5 ms without it. At 1 s a stall
 * longer than a second is always seen and a shorter one in proportion to its length, which is
 * what an at-rest agent's lag metric is for; the scrape-time `nodejs_eventloop_lag_seconds` probe
 * is unchanged.
 */
export const EVENT_LOOP_SAMPLE_INTERVAL_MS = 1000;

/** prom-client's `process_*` and `nodejs_*` metrics on `registry` (never the global registry). */
export function collectProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_INTERVAL_MS });
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
