/**
 * The soak's invariants as pure functions of what the driver recorded: each returns the violations
 * it finds (empty: the invariant held). The driver (soak/driver.ts) calls them continuously and at
 * the end; test/unit/soak-invariants.test.ts shows that each one detects its violation.
 */

export const INVARIANTS = [
  /** A write failed in a container below its maxSize while the pool had room above the reserve. */
  'write-error',
  /** A container's limit was seen smaller than before. */
  'limit-shrank',
  /** A container the soak started did not start. */
  'start-failed',
  /** After a pass, the per-container metric series are not exactly the running containers. */
  'metric-series',
  /** The journal has an unreadable line, or a grow-started with no end and no recovery. */
  'journal',
  /** Something the agent owns outlived it or its subject: lock files, sockets, qgroups, limits of removed projects. */
  'leak',
  /** Agent RSS or open file descriptors grew over a steady stretch. */
  'resource-trend',
  /** /healthz did not answer while the agent ran. */
  'healthz',
] as const;
export type InvariantName = (typeof INVARIANTS)[number];

export interface Violation {
  invariant: InvariantName;
  atMs: number | null;
  detail: string;
}

export function countByInvariant(violations: readonly Violation[]): Record<InvariantName, number> {
  const counts = Object.fromEntries(INVARIANTS.map((name) => [name, 0])) as Record<InvariantName, number>;
  for (const violation of violations) counts[violation.invariant] += 1;
  return counts;
}

// --- write errors -----------------------------------------------------------------------------

export interface WriteOutcome {
  name: string;
  containerId: string;
  /** When the writer reported the error (or finished). */
  atMs: number;
  /** The writer's error text, or null when it wrote everything. */
  error: string | null;
  /** The container's limit when the error was seen; null: no limit. */
  limitBytes: number | null;
  /** The most the agent would grow it to; equal to the limit (or 0) when it never grows it. */
  maxSizeBytes: number;
  /** Free pool space above the reserve that the agent's next grow of it needs. */
  neededRoomBytes: number;
}

export interface PoolSample {
  atMs: number;
  /** Free bytes of the pool minus the reserve (negative: below the reserve). */
  freeAboveReserveBytes: number;
}

/** The smallest room above the reserve seen in [fromMs, toMs]; the latest sample before it when none is inside. */
export function smallestRoomBytes(
  samples: readonly PoolSample[],
  fromMs: number,
  toMs: number,
): number | null {
  let smallest: number | null = null;
  let before: PoolSample | null = null;
  for (const sample of samples) {
    if (sample.atMs < fromMs) before = sample;
    else if (sample.atMs <= toMs)
      smallest =
        smallest === null ? sample.freeAboveReserveBytes : Math.min(smallest, sample.freeAboveReserveBytes);
  }
  if (before !== null) {
    smallest =
      smallest === null ? before.freeAboveReserveBytes : Math.min(smallest, before.freeAboveReserveBytes);
  }
  return smallest;
}

export interface WriteErrorOptions {
  /** How far before the error the pool must already have had room (the agent's reaction time). */
  windowMs: number;
  /**
   * When the soak itself had the agent stopped (SIGTERM or SIGKILL until the next agent's first
   * pass): nothing can grow then, so an error whose window overlaps one is the fault, not a bug.
   * Empty for the control run, where no agent ever runs.
   */
  agentDown: readonly { fromMs: number; toMs: number }[];
}

/** Why a write error is not a violation, or 'violation'. */
export type WriteErrorVerdict = 'violation' | 'at-max-size' | 'pool-reserve' | 'agent-down';

export function classifyWriteError(
  write: WriteOutcome,
  pool: readonly PoolSample[],
  options: WriteErrorOptions,
): WriteErrorVerdict {
  const belowMaxSize = write.limitBytes === null || write.limitBytes < write.maxSizeBytes;
  if (!belowMaxSize) return 'at-max-size';
  const fromMs = write.atMs - options.windowMs;
  const room = smallestRoomBytes(pool, fromMs, write.atMs);
  if (room === null || room < write.neededRoomBytes) return 'pool-reserve';
  if (options.agentDown.some((down) => down.fromMs <= write.atMs && down.toMs >= fromMs)) return 'agent-down';
  return 'violation';
}

/**
 * No write error in a container that was below maxSize while the pool had room above the reserve
 * (and the agent ran). An error at maxSize, in a container the agent may not grow, while the pool
 * was at its reserve, or while the soak had the agent stopped, is not a violation.
 */
export function checkWriteErrors(
  writes: readonly WriteOutcome[],
  pool: readonly PoolSample[],
  options: WriteErrorOptions,
): Violation[] {
  const violations: Violation[] = [];
  for (const write of writes) {
    if (write.error === null) continue;
    if (classifyWriteError(write, pool, options) !== 'violation') continue;
    const room = smallestRoomBytes(pool, write.atMs - options.windowMs, write.atMs);
    violations.push({
      invariant: 'write-error',
      atMs: write.atMs,
      detail:
        `${write.name} (${write.containerId.slice(0, 12)}): ${write.error.trim()} at limit ` +
        `${write.limitBytes ?? 'none'} below maxSize ${write.maxSizeBytes}, pool room ${Math.round(room ?? 0)} >= ${write.neededRoomBytes}`,
    });
  }
  return violations;
}

// --- limits -------------------------------------------------------------------------------------

export interface LimitSample {
  containerId: string;
  atMs: number;
  /** The live limit, or null when it could not be read. */
  limitBytes: number | null;
}

/** No limit ever smaller than before (per container id: a re-created container starts over). */
export function checkLimitsNeverShrink(samples: readonly LimitSample[]): Violation[] {
  const largest = new Map<string, number>();
  const violations: Violation[] = [];
  for (const sample of [...samples].sort((a, b) => a.atMs - b.atMs)) {
    if (sample.limitBytes === null) continue;
    const before = largest.get(sample.containerId);
    if (before !== undefined && sample.limitBytes < before) {
      violations.push({
        invariant: 'limit-shrank',
        atMs: sample.atMs,
        detail: `${sample.containerId.slice(0, 12)}: limit ${sample.limitBytes} after ${before}`,
      });
    }
    largest.set(sample.containerId, Math.max(before ?? 0, sample.limitBytes));
  }
  return violations;
}

// --- starts -------------------------------------------------------------------------------------

export interface StartOutcome {
  name: string;
  atMs: number;
  /** null: it started (and `docker inspect` says it runs). */
  error: string | null;
}

/** Every container the soak starts starts (no EDQUOT, no "cannot start" at start). */
export function checkStarts(starts: readonly StartOutcome[]): Violation[] {
  return starts
    .filter((start) => start.error !== null)
    .map((start) => ({
      invariant: 'start-failed' as const,
      atMs: start.atMs,
      detail: `${start.name}: ${String(start.error).trim().split('\n')[0]}`,
    }));
}

// --- metrics ------------------------------------------------------------------------------------

/** container_id label values of every per-container series in a Prometheus text exposition. */
export function containerIdsInExposition(text: string, prefix = 'docker_autogrow_container_'): Set<string> {
  const ids = new Set<string>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const match = /[{,]container_id="([^"]*)"/.exec(line);
    if (match) ids.add(match[1] as string);
  }
  return ids;
}

/** After a pass, the per-container series are exactly the running containers (short ids). */
export function checkMetricSeries(
  atMs: number,
  exposition: string,
  runningIds: readonly string[],
): Violation[] {
  const exported = containerIdsInExposition(exposition);
  const running = new Set(runningIds.map((id) => id.slice(0, 12)));
  const violations: Violation[] = [];
  for (const id of running) {
    if (!exported.has(id))
      violations.push({ invariant: 'metric-series', atMs, detail: `running container ${id} has no series` });
  }
  for (const id of exported) {
    if (!running.has(id))
      violations.push({ invariant: 'metric-series', atMs, detail: `series for ${id}, which is not running` });
  }
  return violations;
}

// --- journal ------------------------------------------------------------------------------------

const GROW_ENDS = new Set(['grow-succeeded', 'grow-failed', 'grow-recovered', 'grow-container-gone']);

export interface JournalSummary {
  records: number;
  growsStarted: number;
  growsSucceeded: number;
  growsFailed: number;
  growsRecovered: number;
  /** Grows that ended because Docker removed the container meanwhile (not failures). */
  growsContainerGone: number;
  /** Grows started and not (yet) ended, by container id, with when they started. */
  open: { containerId: string; atMs: number }[];
}

/**
 * Reads journal text (rotated files oldest first, then the live file): every line must be a JSON
 * record with a type, and every grow-started must be followed by an end for the same container
 * (succeeded, failed, container gone, or recovered by the next owner). `openAllowedAfterMs`: a grow started at or
 * after this time may still be open (it may be running right now); use Infinity at the end of a run.
 */
export function checkJournal(
  text: string,
  atMs: number,
  openAllowedAfterMs: number,
): { summary: JournalSummary; violations: Violation[] } {
  const violations: Violation[] = [];
  const open = new Map<string, number[]>();
  const summary: JournalSummary = {
    records: 0,
    growsStarted: 0,
    growsSucceeded: 0,
    growsFailed: 0,
    growsRecovered: 0,
    growsContainerGone: 0,
    open: [],
  };
  const lines = text.split('\n');
  lines.forEach((line, index) => {
    if (line.trim() === '') return;
    let record: { type?: unknown; containerId?: unknown; atMs?: unknown };
    try {
      record = JSON.parse(line) as typeof record;
    } catch {
      violations.push({
        invariant: 'journal',
        atMs,
        detail: `line ${index + 1} is not JSON: ${line.slice(0, 80)}`,
      });
      return;
    }
    if (typeof record !== 'object' || record === null || typeof record.type !== 'string') {
      violations.push({ invariant: 'journal', atMs, detail: `line ${index + 1} has no record type` });
      return;
    }
    summary.records += 1;
    const containerId = typeof record.containerId === 'string' ? record.containerId : '';
    if (record.type === 'grow-started') {
      summary.growsStarted += 1;
      open.set(containerId, [
        ...(open.get(containerId) ?? []),
        typeof record.atMs === 'number' ? record.atMs : 0,
      ]);
    } else if (GROW_ENDS.has(record.type)) {
      if (record.type === 'grow-succeeded') summary.growsSucceeded += 1;
      if (record.type === 'grow-failed') summary.growsFailed += 1;
      if (record.type === 'grow-recovered') summary.growsRecovered += 1;
      if (record.type === 'grow-container-gone') summary.growsContainerGone += 1;
      const started = open.get(containerId) ?? [];
      if (started.length === 0) {
        violations.push({
          invariant: 'journal',
          atMs,
          detail: `line ${index + 1}: ${record.type} for ${containerId.slice(0, 12)} with no grow-started`,
        });
      } else {
        started.shift();
      }
    }
  });
  for (const [containerId, starts] of open) {
    for (const startedAtMs of starts) {
      summary.open.push({ containerId, atMs: startedAtMs });
      if (startedAtMs < openAllowedAfterMs) {
        violations.push({
          invariant: 'journal',
          atMs,
          detail: `grow-started for ${containerId.slice(0, 12)} at ${new Date(startedAtMs).toISOString()} has no end`,
        });
      }
    }
  }
  return { summary, violations };
}

// --- leaks --------------------------------------------------------------------------------------

/** Entries left in the agent's state directory after it stopped; only `allowed` may remain. */
export function checkStateLeftovers(
  atMs: number,
  entries: readonly string[],
  allowed: readonly RegExp[],
): Violation[] {
  return entries
    .filter((entry) => !allowed.some((pattern) => pattern.test(entry)))
    .map((entry) => ({ invariant: 'leak' as const, atMs, detail: `state directory still holds ${entry}` }));
}

/**
 * Level-0 qgroups whose subvolume is gone, beyond those present before (`baseline`): a qgroup left
 * behind for every removed container would grow without bound.
 */
export function checkQgroups(
  atMs: number,
  qgroupIds: readonly string[],
  subvolumeIds: readonly number[],
  allowedStale: number,
): Violation[] {
  const live = new Set(subvolumeIds.map((id) => `0/${id}`));
  const stale = qgroupIds.filter((id) => id.startsWith('0/') && !live.has(id) && id !== '0/5');
  if (stale.length <= allowedStale) return [];
  return [
    {
      invariant: 'leak',
      atMs,
      detail: `${stale.length} qgroups without a subvolume (allowed ${allowedStale}): ${stale.slice(0, 8).join(' ')}`,
    },
  ];
}

/** The XFS project of a container the soak removed, with its hard limit read just after the removal. */
export interface RemovedProject {
  containerId: string;
  projectId: number;
  /** null: no hard limit then. */
  limitAfterRemovalBytes: number | null;
}

/**
 * Projects of removed containers whose hard limit changed after the removal (`limits`: project id
 * to hard limit now, projects without one absent): the agent grew a container that was gone.
 */
export function checkLimitsAfterRemoval(
  atMs: number,
  removed: readonly RemovedProject[],
  limits: ReadonlyMap<number, number>,
): Violation[] {
  return removed
    .filter((project) => (limits.get(project.projectId) ?? null) !== project.limitAfterRemovalBytes)
    .map((project) => ({
      invariant: 'leak' as const,
      atMs,
      detail:
        `XFS project ${project.projectId} of removed container ${project.containerId.slice(0, 12)}: hard limit ` +
        `${limits.get(project.projectId) ?? 'none'} now, ${project.limitAfterRemovalBytes ?? 'none'} after its removal`,
    }));
}

/** Open file descriptors of a process that still point at something the soak removed. */
export function checkFdTargets(
  atMs: number,
  pid: number,
  targets: readonly string[],
  removedPrefixes: readonly string[],
): Violation[] {
  return targets
    .filter(
      (target) =>
        target.endsWith(' (deleted)') || removedPrefixes.some((prefix) => target.startsWith(prefix)),
    )
    .map((target) => ({ invariant: 'leak' as const, atMs, detail: `agent pid ${pid} holds ${target}` }));
}

// --- resources ----------------------------------------------------------------------------------

export interface ResourceSample {
  /** One agent process: a restart starts a new incarnation. */
  incarnation: number;
  atMs: number;
  rssBytes: number;
  fds: number;
  /** Containers alive when sampled (optional: older reports have none). */
  liveContainers?: number;
}

export interface ResourceTrendOptions {
  /** Samples this long after the first of an incarnation are ignored (start-up). */
  warmupMs: number;
  /** Only incarnations whose steady stretch is at least this long are judged. */
  minSpanMs: number;
  maxFdGrowth: number;
  /**
   * Descriptors the agent may legitimately hold per container more alive at the end than at the
   * start (the fill guard keeps a container's sysfs counters open: at most 4 each, up to its cache
   * of 64 qgroups), so a fleet that grows is not read as a leak.
   */
  fdsPerAddedContainer?: number;
  maxRssGrowthBytes: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/**
 * RSS and fd count flat: per incarnation, after the warm-up, the median of the last quarter of
 * samples may exceed the median of the first quarter by at most the allowed growth.
 */
export function checkResourceTrend(
  samples: readonly ResourceSample[],
  options: ResourceTrendOptions,
): Violation[] {
  const byIncarnation = new Map<number, ResourceSample[]>();
  for (const sample of samples)
    byIncarnation.set(sample.incarnation, [...(byIncarnation.get(sample.incarnation) ?? []), sample]);
  const violations: Violation[] = [];
  for (const [incarnation, all] of byIncarnation) {
    const sorted = [...all].sort((a, b) => a.atMs - b.atMs);
    const firstAtMs = sorted[0]?.atMs ?? 0;
    const steady = sorted.filter((sample) => sample.atMs >= firstAtMs + options.warmupMs);
    if (steady.length < 8) continue;
    const spanMs = (steady.at(-1) as ResourceSample).atMs - (steady[0] as ResourceSample).atMs;
    if (spanMs < options.minSpanMs) continue;
    const quarter = Math.max(2, Math.floor(steady.length / 4));
    const head = steady.slice(0, quarter);
    const tail = steady.slice(-quarter);
    const fdGrowth = median(tail.map((sample) => sample.fds)) - median(head.map((sample) => sample.fds));
    const addedContainers = Math.max(
      0,
      median(tail.map((sample) => sample.liveContainers ?? 0)) -
        median(head.map((sample) => sample.liveContainers ?? 0)),
    );
    const allowedFdGrowth = options.maxFdGrowth + (options.fdsPerAddedContainer ?? 0) * addedContainers;
    const rssGrowth =
      median(tail.map((sample) => sample.rssBytes)) - median(head.map((sample) => sample.rssBytes));
    const atMs = (steady.at(-1) as ResourceSample).atMs;
    if (fdGrowth > allowedFdGrowth)
      violations.push({
        invariant: 'resource-trend',
        atMs,
        detail:
          `incarnation ${incarnation}: fds grew by ${fdGrowth} over ${Math.round(spanMs / 1000)} s ` +
          `(allowed ${allowedFdGrowth}: ${addedContainers} containers more alive)`,
      });
    if (rssGrowth > options.maxRssGrowthBytes)
      violations.push({
        invariant: 'resource-trend',
        atMs,
        detail: `incarnation ${incarnation}: RSS grew by ${(rssGrowth / 1024 ** 2).toFixed(1)} MiB over ${Math.round(spanMs / 1000)} s`,
      });
  }
  return violations;
}

// --- healthz ------------------------------------------------------------------------------------

export interface HealthProbe {
  atMs: number;
  /** The agent was meant to be up (ready, not being stopped by the soak). */
  agentUp: boolean;
  ok: boolean;
  error: string | null;
}

/** /healthz answers throughout: every failed probe while the agent was up is a violation. */
export function checkHealthz(probes: readonly HealthProbe[]): Violation[] {
  return probes
    .filter((probe) => probe.agentUp && !probe.ok)
    .map((probe) => ({
      invariant: 'healthz' as const,
      atMs: probe.atMs,
      detail: `/healthz failed: ${probe.error ?? 'not 200'}`,
    }));
}

/**
 * A process lock directory (src/util/process-lock.ts: `<gen>`, `<gen>.released`, `.tmp-*`) after
 * its holder stopped cleanly: the newest generation is released, older generations were cleaned
 * up (at most one generation remains), and no temporary file is left.
 */
export function checkReleasedLock(atMs: number, lockName: string, entries: readonly string[]): Violation[] {
  const generations = entries.filter((entry) => /^\d{1,15}$/.test(entry)).map(Number);
  const released = new Set(
    entries.filter((entry) => /^\d{1,15}\.released$/.test(entry)).map((entry) => Number(entry.split('.')[0])),
  );
  const others = entries.filter((entry) => !/^\d{1,15}(\.released)?$/.test(entry));
  const violations: Violation[] = [];
  const newest = generations.length === 0 ? null : Math.max(...generations);
  if (newest !== null && !released.has(newest))
    violations.push({ invariant: 'leak', atMs, detail: `${lockName}: generation ${newest} is still held` });
  if (generations.length > 1)
    violations.push({
      invariant: 'leak',
      atMs,
      detail: `${lockName}: ${generations.length} generations left behind`,
    });
  for (const entry of others)
    violations.push({ invariant: 'leak', atMs, detail: `${lockName}: stray ${entry}` });
  return violations;
}
