/**
 * The configuration schema: one zod schema for the YAML file, with human units converted to base
 * units (bytes, ratios, milliseconds) by the schema itself. Every key is optional; the defaults
 * below are the embedded configuration the agent runs with when no file exists.
 *
 * config/docker-autogrow.schema.json is generated from this file (`npm run schema`) and a test keeps
 * it in sync; config/example.yaml documents every key and is itself tested.
 */
import { parseListenAddress } from './listen.js';
import { z } from 'zod';
import { TOOL_NAMES } from '../exec/runner.js';
import { parseDurationMs, parsePercentRatio, parseSizeBytes } from '../util/units.js';
import { reclaimSchema } from './reclaim-schema.js';

const SIZE_HINT = 'a size such as 512M, 10G, 1.5T or a byte count';
const PERCENT_HINT = 'a percentage from 0% to 100%, such as 85%';
const DURATION_HINT = 'a duration such as 500ms, 30s, 5m, 1h';

/** A size in bytes: `512M`, `10G`, `1.5T`, or a plain number of bytes. */
export const sizeBytes = () =>
  z
    .union([z.string(), z.number()])
    .transform((value, ctx): number => {
      try {
        const bytes = typeof value === 'number' ? value : parseSizeBytes(value);
        if (!Number.isSafeInteger(bytes) || bytes < 0) throw new Error('negative');
        return bytes;
      } catch {
        ctx.addIssue({ code: 'custom', message: `expected ${SIZE_HINT}` });
        return z.NEVER;
      }
    })
    .meta({ description: SIZE_HINT });

/** A rate in bytes per second: `4G/s` (the `/s` may be left out), or a plain number of bytes. */
export const bytesPerSecond = () =>
  z
    .union([z.string(), z.number()])
    .transform((value, ctx): number => {
      try {
        const text = typeof value === 'number' ? value : value.trim().replace(/\/s$/, '');
        const bytes = typeof text === 'number' ? text : parseSizeBytes(text);
        if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new Error('not positive');
        return bytes;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'expected a rate such as 4G/s or 500M/s (above 0)' });
        return z.NEVER;
      }
    })
    .meta({ description: 'a rate such as 4G/s or 500M/s' });

/** A ratio in 0..1 written as a percentage: `85%`. */
export const percentRatio = () =>
  z
    .string()
    .transform((value, ctx): number => {
      try {
        return parsePercentRatio(value);
      } catch {
        ctx.addIssue({ code: 'custom', message: `expected ${PERCENT_HINT}` });
        return z.NEVER;
      }
    })
    .meta({ description: PERCENT_HINT });

/**
 * The longest duration a Node timer holds (2^31-1 ms, about 24.8 days): a longer setTimeout fires
 * after 1 ms with a TimeoutOverflowWarning, so `interval: 100000000h` became a busy loop.
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/** `100ms`, `1m30s`, `2h`: the bound in the unit people write it in. */
function formatDurationBound(ms: number): string {
  if (ms === MAX_DURATION_MS) return '24d (2^31-1 ms, the longest timer)';
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/**
 * A duration in milliseconds: `30s`, `5m`, from `minMs` (default 0) to `maxMs` (default
 * {@link MAX_DURATION_MS}). A minimum is set where a small value spins a loop (`interval: 0s` took
 * 83% of a core) or turns a timeout off (0 is "no timeout" to execa and docker-modem).
 */
export const durationMs = (bounds: { minMs?: number; maxMs?: number } = {}) => {
  const minMs = bounds.minMs ?? 0;
  const maxMs = bounds.maxMs ?? MAX_DURATION_MS;
  const range =
    minMs > 0
      ? `from ${formatDurationBound(minMs)} to ${formatDurationBound(maxMs)}`
      : `at most ${formatDurationBound(maxMs)}`;
  return z
    .string()
    .transform((value, ctx): number => {
      let ms: number;
      try {
        ms = parseDurationMs(value);
      } catch {
        ctx.addIssue({ code: 'custom', message: `expected ${DURATION_HINT} (not negative)` });
        return z.NEVER;
      }
      if (!Number.isFinite(ms) || ms < minMs || ms > maxMs) {
        ctx.addIssue({ code: 'custom', message: `expected a duration ${range}` });
        return z.NEVER;
      }
      return ms;
    })
    .meta({ description: `${DURATION_HINT}, ${range}` });
};

/** Timeouts: 0 would mean "wait forever" to execa and docker-modem. */
const TIMEOUT_BOUNDS = { minMs: 100 };

/** `docker.socketPath` is a path, not an address: `tcp://...` here was tried as a file name. */
function socketPathProblem(value: string): string | null {
  if (/^unix:\/\//i.test(value))
    return `write the path without unix://, e.g. ${value.replace(/^unix:\/\//i, '')}`;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value) || /^[^/]*:\d+$/.test(value)) {
    return 'this is a daemon address, not a unix socket path; set docker.host or DOCKER_HOST for a TCP or ssh daemon';
  }
  if (!value.startsWith('/')) return 'expected an absolute path such as /var/run/docker.sock';
  return null;
}

/** A growth step: a share of the current size (`20%`) or an absolute size (`10G`). */
export type Step = { kind: 'ratio'; ratio: number } | { kind: 'bytes'; bytes: number };

export const step = () =>
  z
    .union([z.string(), z.number()])
    .transform((value, ctx): Step => {
      const text = String(value).trim();
      try {
        if (text.endsWith('%')) {
          const ratio = parsePercentRatio(text);
          if (ratio <= 0) throw new Error('zero');
          return { kind: 'ratio', ratio };
        }
        const bytes = parseSizeBytes(text);
        if (bytes <= 0) throw new Error('zero');
        return { kind: 'bytes', bytes };
      } catch {
        ctx.addIssue({ code: 'custom', message: `expected a percentage above 0% (20%) or a size (10G)` });
        return z.NEVER;
      }
    })
    .meta({ description: 'a percentage of the current size (20%) or a size (10G)' });

/** Policy fields shared by `defaults`, each rule, and (partly) Docker labels. */
const policyFields = {
  enabled: z.boolean().meta({ description: 'false: observe and report, never grow' }),
  threshold: percentRatio().meta({ description: 'grow when used >= this share of the current size' }),
  inodeThreshold: percentRatio().meta({ description: 'grow when inodes used >= this share' }),
  step: step(),
  minStep: sizeBytes(),
  maxStep: sizeBytes(),
  maxSize: sizeBytes().meta({ description: 'never grow beyond this size' }),
  cooldown: durationMs().meta({ description: 'per container, after a successful grow' }),
};

export const policyDefaultsSchema = z.strictObject({
  enabled: policyFields.enabled.prefault(true),
  threshold: policyFields.threshold.prefault('85%'),
  inodeThreshold: policyFields.inodeThreshold.prefault('90%'),
  step: policyFields.step.prefault('20%'),
  minStep: policyFields.minStep.prefault('1G'),
  maxStep: policyFields.maxStep.prefault('50G'),
  maxSize: policyFields.maxSize.prefault('100G'),
  cooldown: policyFields.cooldown.prefault('2m'),
});

export const ruleMatchSchema = z.strictObject({
  labels: z
    .record(z.string(), z.string())
    .optional()
    .meta({ description: 'every listed label must be present with this value (value "*" matches any)' }),
  name: z.string().min(1).optional().meta({ description: 'glob on the container name, e.g. pg-*' }),
  image: z.string().min(1).optional().meta({ description: 'glob on the image reference, e.g. postgres:*' }),
});

export const ruleSchema = z.strictObject({
  name: z.string().min(1).optional().meta({ description: 'shown in status and logs' }),
  match: ruleMatchSchema,
  enabled: policyFields.enabled.optional(),
  threshold: policyFields.threshold.optional(),
  inodeThreshold: policyFields.inodeThreshold.optional(),
  step: policyFields.step.optional(),
  minStep: policyFields.minStep.optional(),
  maxStep: policyFields.maxStep.optional(),
  maxSize: policyFields.maxSize.optional(),
  cooldown: policyFields.cooldown.optional(),
});

export const configSchema = z.strictObject({
  interval: durationMs({ minMs: 100 })
    .prefault('1s')
    .meta({ description: 'time between observation passes (one batched pass whatever the container count)' }),
  resyncInterval: durationMs({ minMs: 10_000 })
    .prefault('5m')
    .meta({ description: 'full Docker inventory resync, in addition to events and reconnects' }),
  dryRun: z.boolean().prefault(false).meta({ description: 'decide and report, never change storage' }),
  defaults: policyDefaultsSchema.prefault({}),
  rules: z
    .array(ruleSchema)
    .max(1000, 'at most 1000 rules (every rule is matched against every container at every pass)')
    .prefault([])
    .meta({ description: 'first match wins; fields override defaults' }),
  prediction: z
    .strictObject({
      enabled: z.boolean().prefault(true),
      horizon: durationMs().prefault('30s').meta({
        description:
          'grow early when usage one horizon ahead, at the recent fill rate, would reach the threshold; a predicted step covers at least rate x horizon',
      }),
      window: durationMs().prefault('20s').meta({ description: 'samples used to estimate the fill rate' }),
    })
    .prefault({}),
  guard: z
    .strictObject({
      enabled: z.boolean().prefault(true).meta({
        description:
          'between passes, re-read (without starting a process) the containers a writer at peakWriteRate could fill before the next pass, and evaluate one at once when it would fill first',
      }),
      peakWriteRate: bytesPerSecond().prefault('4G/s').meta({
        description:
          'the fastest one container on this host can write (page cache speed); a container is re-read every half of the time this rate needs to fill it',
      }),
      minInterval: durationMs()
        .refine((ms) => ms >= 5, {
          message: 'expected at least 5ms (a look loop must leave the CPU to the grow)',
        })
        .prefault('20ms')
        .meta({ description: 'never re-read one container more often than this (at least 5ms)' }),
    })
    .prefault({})
    .meta({
      description:
        'the fill guard: a writer can fill a small limit between two passes (2.8 GiB/s measured into a 512M container)',
    }),
  pool: z
    .strictObject({
      reserve: percentRatio()
        .prefault('15%')
        .meta({ description: 'container growth never leaves less free than this (data and metadata)' }),
      maxOvercommit: z
        .number()
        .positive()
        .prefault(2.0)
        .meta({ description: 'sum of container sizes / pool data size (thin pools)' }),
      grow: z
        .strictObject({
          enabled: z.boolean().prefault(false),
          threshold: percentRatio().prefault('80%'),
          step: step().prefault('20%'),
          maxSize: sizeBytes().prefault('2T'),
        })
        .prefault({}),
    })
    .prefault({}),
  backoff: z
    .strictObject({
      initial: durationMs().prefault('10s'),
      max: durationMs().prefault('10m'),
    })
    .prefault({})
    .meta({ description: 'after a failed grow, exponential per container' }),
  concurrency: z.number().int().min(1).max(64).prefault(2).meta({ description: 'grows running at once' }),
  docker: z
    .strictObject({
      socketPath: z
        .string()
        .superRefine((value, ctx) => {
          const problem = socketPathProblem(value);
          if (problem) ctx.addIssue({ code: 'custom', message: problem });
        })
        .prefault('/var/run/docker.sock'),
      timeout: durationMs(TIMEOUT_BOUNDS).prefault('10s'),
      host: z.string().min(1).optional().meta({
        description:
          'daemon address like the docker CLI -H: unix:///path or tcp://host:port; overrides DOCKER_HOST and the docker context',
      }),
    })
    .prefault({}),
  journal: z
    .strictObject({
      path: z.string().prefault('/var/lib/docker-autogrow/journal.jsonl'),
      maxSize: sizeBytes().prefault('10M').meta({ description: 'rotate when the file grows past this' }),
      keep: z.number().int().min(1).max(100).prefault(3).meta({ description: 'rotated files kept' }),
    })
    .prefault({}),
  metrics: z
    .strictObject({
      enabled: z.boolean().prefault(true),
      listen: z
        .string()
        .refine((listen) => {
          try {
            parseListenAddress(listen);
            return true;
          } catch {
            return false;
          }
        }, 'expected host:port such as 0.0.0.0:9839, [::1]:9839 or :9839 (port 0-65535)')
        .prefault('0.0.0.0:9839')
        .meta({ description: 'host:port of /metrics, /healthz, /readyz' }),
      webConfigFile: z
        .string()
        .optional()
        .meta({ description: 'TLS and basic auth, Prometheus exporter-toolkit web-config format' }),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).prefault('info'),
    })
    .prefault({}),
  dataFilesystem: z
    .strictObject({
      enabled: z.boolean().prefault(false).meta({
        description:
          "grow the filesystem under Docker's data root (LVM LV + ext4/XFS/btrfs, online) when it fills",
      }),
      interval: durationMs({ minMs: 1000 })
        .prefault('5s')
        .meta({ description: 'time between looks (statfs, sysfs, one lvs)' }),
      threshold: percentRatio().prefault('85%').meta({ description: 'grow when bytes used >= this share' }),
      inodeThreshold: percentRatio()
        .prefault('90%')
        .meta({ description: 'grow when inodes used >= this share (ext4 can run out of inodes first)' }),
      step: step().prefault('20%').meta({ description: 'a share of the LV size (20%) or a size (10G)' }),
      minStep: sizeBytes().prefault('1G').meta({ description: 'never grow by less (VG free permitting)' }),
      maxSize: sizeBytes().prefault('2T').meta({ description: 'never grow the LV beyond this size' }),
      vgReserve: sizeBytes()
        .prefault('1G')
        .meta({ description: 'leave at least this much of the volume group free (snapshots, other LVs)' }),
      cooldown: durationMs().prefault('30s').meta({ description: 'after a successful grow' }),
    })
    .prefault({})
    .meta({ description: "the filesystem under Docker's data root, for every storage driver" }),
  reclaim: reclaimSchema(percentRatio, durationMs),
  commandTimeout: durationMs(TIMEOUT_BOUNDS).prefault('30s').meta({ description: 'per external command' }),
  binaries: z
    // Only the tools the agent runs: `binaries.rm` would be accepted and never used (a typo, or a hope).
    .partialRecord(z.enum(TOOL_NAMES), z.string().regex(/^\//, 'an absolute path'))
    .prefault({})
    .meta({
      description: 'absolute paths of tools (dmsetup, lvs, btrfs, xfs_quota, ...) overriding the search',
    }),
});

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type PolicyDefaults = Config['defaults'];
export type Rule = Config['rules'][number];
export type PolicySettings = PolicyDefaults;
