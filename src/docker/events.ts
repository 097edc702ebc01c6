/**
 * The Docker event stream, treated as hints (the inventory's resync is the truth):
 *
 * - {@link LineFramer}: the daemon writes one JSON object per line, but a read may hold half an
 *   event or several (dockerode hands back the raw HTTP body). Lines are split on the byte 0x0A
 *   before decoding, so a multi-byte UTF-8 character split across chunks survives; the buffer is
 *   capped so a runaway line can never grow memory without bound.
 * - {@link parseContainerEvent}: defensive parse; non-container and malformed events are counted,
 *   never thrown.
 * - {@link EventStream}: one long-lived connection that reconnects with exponential backoff and
 *   full jitter, passing `since` to narrow the gap and dropping events replayed twice.
 *
 * No dockerode here: the connection comes from a {@link DockerEventSource} (src/docker/client.ts).
 */
import type { Logger } from '../log/logger.js';
import { isContainerId } from './ids.js';
import type { ContainerEvent } from './model.js';
import { backoffDelayMs, type BackoffSchedule } from '../util/backoff.js';
import { realTimers, type Timers } from '../util/clock.js';

/** Splits a byte stream into lines, holding at most `maxLineBytes` of an unfinished line. */
export class LineFramer {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** True while skipping the rest of a line that already overflowed the cap. */
  private discarding = false;
  /** Lines dropped because they were longer than the cap. */
  oversizedLines = 0;

  constructor(readonly maxLineBytes: number = 1024 * 1024) {}

  /** Feeds one chunk; returns the complete, non-empty lines it finished (without `\n`/`\r\n`). */
  push(chunk: Buffer | string): string[] {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    const lines: string[] = [];
    let start = 0;
    while (start <= bytes.length) {
      const newline = bytes.indexOf(0x0a, start);
      const end = newline === -1 ? bytes.length : newline;
      const segment = bytes.subarray(start, end);
      if (!this.discarding) {
        if (this.pendingBytes + segment.length > this.maxLineBytes) {
          this.oversizedLines += 1;
          this.discarding = true;
          this.pending = [];
          this.pendingBytes = 0;
        } else if (segment.length > 0) {
          this.pending.push(segment);
          this.pendingBytes += segment.length;
        }
      }
      if (newline === -1) break;
      if (!this.discarding) {
        const line = Buffer.concat(this.pending, this.pendingBytes).toString('utf8').replace(/\r$/, '');
        if (line.trim().length > 0) lines.push(line);
      }
      this.pending = [];
      this.pendingBytes = 0;
      this.discarding = false;
      start = newline + 1;
    }
    return lines;
  }

  /** Bytes of the unfinished line currently held (never above maxLineBytes). */
  get bufferedBytes(): number {
    return this.pendingBytes;
  }

  reset(): void {
    this.pending = [];
    this.pendingBytes = 0;
    this.discarding = false;
  }
}

export type ParsedEvent =
  | { kind: 'container'; event: ContainerEvent }
  /** Valid JSON, but not a container event the agent can use (network, image, volume...). */
  | { kind: 'ignored'; reason: string }
  | { kind: 'malformed'; reason: string };

// JSON numbers lose precision above 2^53 and timeNano is ~1.8e18: read its digits from the text.
const TIME_NANO_PATTERN = /"timeNano"\s*:\s*(\d{1,20})\s*[,}]/;

/** Parses one event line. Never throws. */
export function parseContainerEvent(line: string): ParsedEvent {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return { kind: 'malformed', reason: 'invalid JSON' };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { kind: 'malformed', reason: 'not a JSON object' };
  }
  const record = raw as Record<string, unknown>;
  const type = record['Type'];
  if (type !== 'container') {
    return typeof type === 'string'
      ? { kind: 'ignored', reason: `type ${type}` }
      : { kind: 'malformed', reason: 'no Type' };
  }
  const action = record['Action'];
  if (typeof action !== 'string' || action.length === 0) return { kind: 'malformed', reason: 'no Action' };
  const actor = record['Actor'];
  const actorRecord =
    typeof actor === 'object' && actor !== null
      ? (actor as Record<string, unknown>)
      : ({} as Record<string, unknown>);
  const containerId = actorRecord['ID'] ?? record['id'];
  if (!isContainerId(containerId)) return { kind: 'malformed', reason: 'no valid container id' };
  const attributes: Record<string, string> = {};
  const rawAttributes = actorRecord['Attributes'];
  if (typeof rawAttributes === 'object' && rawAttributes !== null) {
    for (const [key, value] of Object.entries(rawAttributes)) {
      if (typeof value === 'string') attributes[key] = value;
    }
  }
  let timeNano = 0n;
  const digits = TIME_NANO_PATTERN.exec(line)?.[1];
  if (digits) timeNano = BigInt(digits);
  else if (typeof record['time'] === 'number' && Number.isSafeInteger(record['time'])) {
    timeNano = BigInt(record['time']) * 1_000_000_000n;
  }
  return { kind: 'container', event: { action, containerId, timeNano, attributes } };
}

/** The verb of an action: `exec_start: sh -c x` → `exec_start`, `health_status: healthy` → `health_status`. */
export function actionVerb(action: string): string {
  const colon = action.indexOf(':');
  return (colon === -1 ? action : action.slice(0, colon)).trim();
}

/** Formats nanoseconds since the epoch as Docker's `since` (`<seconds>.<nanoseconds>`). */
export function formatSince(timeNano: bigint): string {
  const seconds = timeNano / 1_000_000_000n;
  const nanos = timeNano % 1_000_000_000n;
  return `${seconds}.${nanos.toString().padStart(9, '0')}`;
}

/** What the event stream needs from the daemon: one raw HTTP body of `/events?filters=type=container`. */
export interface DockerEventSource {
  openEvents(options: { since?: string; signal: AbortSignal }): Promise<NodeJS.ReadableStream>;
}

export interface EventStreamOptions {
  source: DockerEventSource;
  logger: Logger;
  onEvent(event: ContainerEvent): void;
  /** Called after every successful (re)connect: the inventory resyncs here. */
  onConnected?(): void;
  /** Called when an established connection is lost. */
  onDisconnected?(reason: string): void;
  backoff?: BackoffSchedule;
  /** A connection that lasted this long resets the backoff to its initial value. */
  healthyAfterMs?: number;
  maxLineBytes?: number;
  random?: () => number;
  nowMs?: () => number;
  timers?: Timers;
}

export interface EventStreamStats {
  /** Socket reads: fewer than events when several share a read, more when big events are split. */
  chunksReceived: number;
  eventsDelivered: number;
  duplicatesDropped: number;
  ignoredEvents: number;
  malformedEvents: number;
  oversizedLines: number;
  connectFailures: number;
}

// Docker replays at most its 256 buffered events for `since`; remembering twice that is enough to
// recognise every replayed one.
const RECENT_EVENT_KEYS = 512;

/** One long-lived Docker event subscription that reconnects by itself until {@link stop}. */
export class EventStream {
  private connectedNow = false;
  private disconnectReason: string | null = null;
  private stopped = true;
  private reconnectCount = 0;
  private everConnected = false;
  private attempt = 0;
  private retryTimer: unknown = null;
  private abort: AbortController | null = null;
  private body: NodeJS.ReadableStream | null = null;
  private lastTimeNano: bigint | null = null;
  private readonly recentKeys = new Set<string>();
  private readonly framer: LineFramer;
  private readonly backoff: BackoffSchedule;
  private readonly healthyAfterMs: number;
  private readonly random: () => number;
  private readonly nowMs: () => number;
  private readonly timers: Timers;
  private readonly counters: EventStreamStats = {
    chunksReceived: 0,
    eventsDelivered: 0,
    duplicatesDropped: 0,
    ignoredEvents: 0,
    malformedEvents: 0,
    oversizedLines: 0,
    connectFailures: 0,
  };

  constructor(private readonly options: EventStreamOptions) {
    this.framer = new LineFramer(options.maxLineBytes);
    this.backoff = options.backoff ?? { initialMs: 500, maxMs: 30_000 };
    this.healthyAfterMs = options.healthyAfterMs ?? 60_000;
    this.random = options.random ?? Math.random;
    this.nowMs = options.nowMs ?? Date.now;
    this.timers = options.timers ?? realTimers;
  }

  get connected(): boolean {
    return this.connectedNow;
  }

  /** Successful connections after the first one. */
  get reconnects(): number {
    return this.reconnectCount;
  }

  /** Why the last established connection ended (`aborted` when dockerd stops), null before that. */
  get lastDisconnectReason(): string | null {
    return this.disconnectReason;
  }

  get stats(): Readonly<EventStreamStats> {
    return { ...this.counters, oversizedLines: this.framer.oversizedLines };
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.connect();
  }

  /** Stops reconnecting and closes the connection (the socket is destroyed, not left to linger). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer !== null) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.abort?.abort();
    this.abort = null;
    const body = this.body as (NodeJS.ReadableStream & { destroy?: () => void }) | null;
    this.body = null;
    body?.destroy?.();
    if (this.connectedNow) {
      this.connectedNow = false;
      this.options.onDisconnected?.('stopped');
    }
  }

  private async connect(): Promise<void> {
    this.retryTimer = null;
    if (this.stopped) return;
    const abort = new AbortController();
    this.abort = abort;
    const since = this.lastTimeNano === null ? undefined : formatSince(this.lastTimeNano);
    let body: NodeJS.ReadableStream;
    try {
      body = await this.options.source.openEvents({ since, signal: abort.signal });
    } catch (error) {
      if (this.stopped || abort.signal.aborted) return;
      this.counters.connectFailures += 1;
      this.options.logger.debug({ err: error, attempt: this.attempt }, 'docker event stream connect failed');
      this.scheduleReconnect();
      return;
    }
    if (this.stopped || abort.signal.aborted) {
      (body as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
      return;
    }
    this.body = body;
    this.framer.reset();
    const connectedAtMs = this.nowMs();
    let ended = false;
    const onEnd = (reason: string) => {
      if (ended) return;
      ended = true;
      if (this.body === body) this.body = null;
      (body as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
      if (this.stopped) return;
      this.connectedNow = false;
      if (this.nowMs() - connectedAtMs >= this.healthyAfterMs) this.attempt = 0;
      this.disconnectReason = reason;
      // One warning per outage: the first loss since the stream was last healthy. The losses of the
      // reconnects that follow (a daemon that answers and hangs up at once) repeat at debug.
      if (this.attempt === 0) this.options.logger.warn({ reason }, 'docker event stream lost; reconnecting');
      else this.options.logger.debug({ reason, attempt: this.attempt }, 'docker event stream lost again');
      this.options.onDisconnected?.(reason);
      this.scheduleReconnect();
    };
    body.on('data', (chunk: Buffer | string) => {
      if (ended) return;
      this.counters.chunksReceived += 1;
      for (const line of this.framer.push(chunk)) this.handleLine(line);
    });
    body.on('end', () => onEnd('end of stream'));
    body.on('close', () => onEnd('closed'));
    body.on('aborted', () => onEnd('aborted'));
    body.on('error', (error: Error) => onEnd(error.message || 'error'));
    this.connectedNow = true;
    if (this.everConnected) this.reconnectCount += 1;
    this.everConnected = true;
    this.options.logger.info({ reconnects: this.reconnectCount, since }, 'docker event stream connected');
    this.options.onConnected?.();
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    const delayMs = backoffDelayMs(this.attempt + 1, this.backoff, this.random);
    this.attempt += 1;
    this.retryTimer = this.timers.setTimeout(() => void this.connect(), delayMs);
  }

  private handleLine(line: string): void {
    const parsed = parseContainerEvent(line);
    if (parsed.kind === 'ignored') {
      this.counters.ignoredEvents += 1;
      return;
    }
    if (parsed.kind === 'malformed') {
      this.counters.malformedEvents += 1;
      this.options.logger.warn(
        { reason: parsed.reason, bytes: line.length },
        'malformed docker event ignored',
      );
      return;
    }
    const event = parsed.event;
    // `since` replays events at or after that instant: drop the ones already delivered.
    const key = `${event.containerId} ${event.action} ${event.timeNano}`;
    if (event.timeNano !== 0n && this.recentKeys.has(key)) {
      this.counters.duplicatesDropped += 1;
      return;
    }
    if (event.timeNano !== 0n) {
      this.recentKeys.add(key);
      if (this.recentKeys.size > RECENT_EVENT_KEYS) {
        const oldest = this.recentKeys.values().next().value;
        if (oldest !== undefined) this.recentKeys.delete(oldest);
      }
      if (this.lastTimeNano === null || event.timeNano > this.lastTimeNano)
        this.lastTimeNano = event.timeNano;
    }
    this.counters.eventsDelivered += 1;
    try {
      this.options.onEvent(event);
    } catch (error) {
      this.options.logger.error({ err: error, action: event.action }, 'docker event handler failed');
    }
  }
}
