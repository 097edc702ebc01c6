/**
 * The soak schedule: a pure function of (seed, options) to a list of operations. The generator
 * keeps a model of what it has asked for (which containers exist, which run, how much each should
 * hold) so every operation names a concrete container; the list is a stream, so operation i
 * depends only on the seed and operations 0..i-1: `--ops K` replays exactly the first K operations
 * of any longer run with the same seed.
 *
 * The runtime (soak/driver.ts) executes the list in order; where the real host disagrees with the
 * model (a container Docker stopped on its own), the operation is still run and its result recorded.
 */
import { Prng } from './prng.js';

export type WriterMode = 'trickle' | 'steady' | 'full';

export type SoakOp =
  | {
      kind: 'create';
      name: string;
      /** `--storage-opt size=`, or null for a container without a limit. */
      limitMiB: number | null;
      labels: Record<string, string>;
      /** `--restart unless-stopped`: Docker starts it again after a daemon restart. */
      restartPolicy: boolean;
    }
  | { kind: 'start'; name: string }
  | { kind: 'stop'; name: string }
  | { kind: 'restart'; name: string }
  | { kind: 'rm'; name: string }
  /** A label change: Docker labels are immutable, so the container is removed and created again. */
  | { kind: 'recreate'; name: string; limitMiB: number | null; labels: Record<string, string> }
  | { kind: 'write'; name: string; mode: WriterMode; mib: number }
  | { kind: 'drain'; name: string }
  | { kind: 'cli-grow'; name: string; byMiB: number }
  | { kind: 'cli-once' }
  | { kind: 'dockerd-restart' }
  | { kind: 'agent-term' }
  | { kind: 'agent-kill' }
  | { kind: 'event-cut' }
  | { kind: 'pool-fill' }
  | { kind: 'pool-drain' }
  /** Quiet point: let two passes run, then compare metrics with the live containers. */
  | { kind: 'checkpoint' };

export type SoakOpKind = SoakOp['kind'];

/** An operation and the pause before it. */
export interface ScheduledOp {
  index: number;
  delayMs: number;
  op: SoakOp;
}

export interface ScheduleOptions {
  seed: number;
  count: number;
  /** Containers alive at once (the target wanders between these). */
  minContainers: number;
  maxContainers: number;
  /** Bytes the containers may hold together in the model, so writes cannot fill the pool alone. */
  writeBudgetMiB: number;
  /** A checkpoint after about this many operations. */
  checkpointEvery: number;
  /** The defaults' maxSize (MiB) of the agent config, the ceiling of a container without a label. */
  defaultMaxSizeMiB: number;
}

interface ModelContainer {
  running: boolean;
  limitMiB: number | null;
  /** What the container may hold: its effective maxSize, or the write cap for unlimited ones. */
  capMiB: number;
  /** Bytes written and not drained (model). */
  heldMiB: number;
  restartPolicy: boolean;
}

/** What the soak is allowed to write per container without a limit. */
const UNLIMITED_CAP_MIB = 192;
const LIMITS_MIB = [32, 48, 64, 96, 128, 256];
const MAX_SIZE_LABELS_MIB = [128, 192, 256, 384];

/** Labels of a new container: max-size, threshold, step; sometimes a hostile value (ignored). */
function drawLabels(prng: Prng, limitMiB: number | null): Record<string, string> {
  const labels: Record<string, string> = { 'soak.generation': String(prng.int(0, 1_000_000)) };
  if (limitMiB === null) return labels;
  if (prng.chance(0.5)) {
    const maxSizes = MAX_SIZE_LABELS_MIB.filter((mib) => mib > limitMiB);
    if (maxSizes.length > 0) labels['autogrow.max-size'] = `${prng.pick(maxSizes)}M`;
  }
  if (prng.chance(0.3)) labels['autogrow.threshold'] = prng.pick(['70%', '75%', '80%']);
  if (prng.chance(0.2)) labels['autogrow.step'] = prng.pick(['32M', '50%', '64M']);
  // the agent ignores a value that does not parse, with a warning, and keeps the defaults
  if (prng.chance(0.05))
    labels['autogrow.cooldown'] = prng.pick(['$(reboot)', '1s; rm -rf /', '\u0060id\u0060']);
  return labels;
}

/** The effective maxSize (MiB) of a container with these labels, as the model sees it. */
export function labelMaxSizeMiB(labels: Record<string, string>, defaultMaxSizeMiB: number): number {
  const raw = labels['autogrow.max-size'];
  const match = raw === undefined ? null : /^(\d+)M$/.exec(raw);
  return match ? Number(match[1]) : defaultMaxSizeMiB;
}

function drawWrite(prng: Prng): { mode: WriterMode; mib: number } {
  const mode = prng.weighted<WriterMode>({ trickle: 3, steady: 4, full: 3 });
  if (mode === 'trickle') return { mode, mib: prng.int(2, 12) };
  if (mode === 'steady') return { mode, mib: prng.int(8, 64) };
  return { mode, mib: prng.int(16, 160) };
}

export function generateSchedule(options: ScheduleOptions): ScheduledOp[] {
  const prng = new Prng(options.seed);
  const containers = new Map<string, ModelContainer>();
  let nextName = 0;
  let poolFilled = false;
  let target = prng.int(options.minContainers, options.maxContainers);
  let sinceCheckpoint = 0;
  const ops: ScheduledOp[] = [];

  const names = (filter: (container: ModelContainer) => boolean) =>
    [...containers.entries()].filter(([, container]) => filter(container)).map(([name]) => name);
  const heldMiB = () => [...containers.values()].reduce((sum, container) => sum + container.heldMiB, 0);
  const newContainer = (): SoakOp => {
    const limitMiB = prng.chance(0.8) ? prng.pick(LIMITS_MIB) : null;
    const labels = drawLabels(prng, limitMiB);
    const restartPolicy = prng.chance(0.4);
    const name = `soak-${nextName}`;
    nextName += 1;
    containers.set(name, {
      running: true,
      limitMiB,
      capMiB: limitMiB === null ? UNLIMITED_CAP_MIB : labelMaxSizeMiB(labels, options.defaultMaxSizeMiB),
      heldMiB: 0,
      restartPolicy,
    });
    return { kind: 'create', name, limitMiB, labels, restartPolicy };
  };

  while (ops.length < options.count) {
    if (prng.chance(0.02)) target = prng.int(options.minContainers, options.maxContainers);
    const alive = containers.size;
    const running = names((container) => container.running);
    const stopped = names((container) => !container.running);
    const all = [...containers.keys()];
    let op: SoakOp | null = null;

    if (sinceCheckpoint >= options.checkpointEvery) {
      op = { kind: 'checkpoint' };
    } else if (alive < Math.min(target, options.minContainers) || (alive < target && prng.chance(0.6))) {
      op = newContainer();
    } else if (alive > target && prng.chance(0.5)) {
      const name = prng.pick(all);
      containers.delete(name);
      op = { kind: 'rm', name };
    } else {
      const kind = prng.weighted<SoakOpKind>({
        create: alive < options.maxContainers ? 4 : 0,
        start: stopped.length > 0 ? 5 : 0,
        stop: running.length > 0 ? 4 : 0,
        restart: running.length > 0 ? 3 : 0,
        rm: alive > options.minContainers ? 3 : 0,
        recreate: alive > 0 ? 2 : 0,
        write: running.length > 0 ? 26 : 0,
        drain: all.length > 0 ? 4 : 0,
        'cli-grow': running.length > 0 ? 3 : 0,
        'cli-once': 2,
        'dockerd-restart': 0.4,
        'agent-term': 0.6,
        'agent-kill': 0.6,
        'event-cut': 1.5,
        'pool-fill': poolFilled ? 0 : 0.8,
        'pool-drain': poolFilled ? 3 : 0,
        checkpoint: 0,
      });
      switch (kind) {
        case 'create':
          op = newContainer();
          break;
        case 'start': {
          const name = prng.pick(stopped);
          containers.get(name)!.running = true;
          op = { kind, name };
          break;
        }
        case 'stop': {
          const name = prng.pick(running);
          containers.get(name)!.running = false;
          op = { kind, name };
          break;
        }
        case 'restart':
          op = { kind, name: prng.pick(running) };
          break;
        case 'rm': {
          const name = prng.pick(all);
          containers.delete(name);
          op = { kind, name };
          break;
        }
        case 'recreate': {
          const name = prng.pick(all);
          const previous = containers.get(name)!;
          const labels = drawLabels(prng, previous.limitMiB);
          containers.set(name, {
            ...previous,
            running: true,
            heldMiB: 0,
            capMiB:
              previous.limitMiB === null
                ? UNLIMITED_CAP_MIB
                : labelMaxSizeMiB(labels, options.defaultMaxSizeMiB),
          });
          op = { kind, name, limitMiB: previous.limitMiB, labels };
          break;
        }
        case 'write': {
          const name = prng.pick(running);
          const container = containers.get(name)!;
          const write = drawWrite(prng);
          // mostly stay below the container's ceiling; now and then write past it (an error at
          // maxSize is expected and must not count as a violation)
          const room = container.capMiB - container.heldMiB;
          const overshoot = prng.chance(0.05);
          const mib = overshoot ? write.mib : Math.min(write.mib, Math.floor(room * 0.85));
          if (mib < 1 || heldMiB() + mib > options.writeBudgetMiB) {
            const full = all.filter((candidate) => containers.get(candidate)!.heldMiB > 0);
            const drained = full.length > 0 ? prng.pick(full) : name;
            containers.get(drained)!.heldMiB = 0;
            op = { kind: 'drain', name: drained };
            break;
          }
          container.heldMiB = Math.min(container.capMiB, container.heldMiB + mib);
          op = { kind, name, mode: write.mode, mib };
          break;
        }
        case 'drain': {
          const name = prng.pick(all);
          containers.get(name)!.heldMiB = 0;
          op = { kind, name };
          break;
        }
        case 'cli-grow':
          op = { kind, name: prng.pick(running), byMiB: prng.pick([16, 32, 64]) };
          break;
        case 'dockerd-restart':
          for (const container of containers.values()) {
            container.running = container.running && container.restartPolicy;
          }
          op = { kind };
          break;
        case 'pool-fill':
          poolFilled = true;
          op = { kind };
          break;
        case 'pool-drain':
          poolFilled = false;
          op = { kind };
          break;
        case 'cli-once':
        case 'agent-term':
        case 'agent-kill':
        case 'event-cut':
        case 'checkpoint':
          op = { kind };
          break;
      }
    }
    if (op === null) continue;
    sinceCheckpoint = op.kind === 'checkpoint' ? 0 : sinceCheckpoint + 1;
    ops.push({
      index: ops.length,
      delayMs: prng.int(0, 3) === 0 ? prng.int(200, 1500) : prng.int(0, 150),
      op,
    });
  }
  return ops;
}

/** One line per operation, for the printed schedule and the replay log. */
export function describeOp(scheduled: ScheduledOp): string {
  const { op } = scheduled;
  const parts: string[] = [`#${scheduled.index}`, `+${scheduled.delayMs}ms`, op.kind];
  if ('name' in op) parts.push(op.name);
  if (op.kind === 'create' || op.kind === 'recreate') {
    parts.push(op.limitMiB === null ? 'no-limit' : `size=${op.limitMiB}M`);
    const labels = Object.entries(op.labels)
      .filter(([key]) => key.startsWith('autogrow.'))
      .map(([key, value]) => `${key}=${JSON.stringify(value)}`);
    if (labels.length > 0) parts.push(labels.join(','));
    if (op.kind === 'create' && op.restartPolicy) parts.push('restart=unless-stopped');
  }
  if (op.kind === 'write') parts.push(op.mode, `${op.mib}MiB`);
  if (op.kind === 'cli-grow') parts.push(`--by ${op.byMiB}M`);
  return parts.join(' ');
}
