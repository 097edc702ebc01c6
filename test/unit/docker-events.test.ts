import { PassThrough } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import {
  EventStream,
  LineFramer,
  actionVerb,
  formatSince,
  parseContainerEvent,
  type DockerEventSource,
} from '../../src/docker/events.js';
import type { Timers } from '../../src/util/clock.js';
import type { ContainerEvent } from '../../src/docker/model.js';
import { createLogger, silentLogger, type Logger } from '../../src/log/logger.js';
import { fixture } from '../support/scripted-runner.js';

// Real bytes from a real dockerd (test/fixtures/docker/record.ts): image and container events.
const RECORDED = fixture('docker/btrfs/events.jsonl');
const RECORDED_LINES = RECORDED.split('\n').filter(Boolean);

const ID_A = 'a'.repeat(64);
const ID_B = 'b'.repeat(64);

function eventLine(
  id: string,
  action: string,
  timeNano: bigint,
  attributes: Record<string, string> = {},
): string {
  const seconds = timeNano / 1_000_000_000n;
  return (
    `{"status":"${action}","id":"${id}","Type":"container","Action":"${action}",` +
    `"Actor":{"ID":"${id}","Attributes":${JSON.stringify(attributes)}},"scope":"local",` +
    `"time":${seconds},"timeNano":${timeNano}}`
  );
}

describe('LineFramer', () => {
  it('yields the recorded events whole when chunks split them anywhere', () => {
    const bytes = Buffer.from(RECORDED, 'utf8');
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: bytes.length }), { maxLength: 30 }), (cuts) => {
        const framer = new LineFramer();
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const lines: string[] = [];
        let previous = 0;
        for (const point of [...points, bytes.length]) {
          lines.push(...framer.push(bytes.subarray(previous, point)));
          previous = point;
        }
        expect(lines).toEqual(RECORDED_LINES);
        expect(framer.bufferedBytes).toBe(0);
      }),
    );
  });

  it('yields several events from one chunk and keeps the unfinished tail', () => {
    const framer = new LineFramer();
    const [first, second, third] = RECORDED_LINES as [string, string, string];
    expect(framer.push(`${first}\n${second}\n${third.slice(0, 10)}`)).toEqual([first, second]);
    expect(framer.bufferedBytes).toBe(10);
    expect(framer.push(`${third.slice(10)}\n`)).toEqual([third]);
  });

  it('keeps a multi-byte character split between chunks intact', () => {
    const framer = new LineFramer();
    const line = Buffer.from('{"name":"é→✓"}\n', 'utf8');
    const arrow = line.indexOf(Buffer.from('→', 'utf8'));
    expect(framer.push(line.subarray(0, arrow + 1))).toEqual([]);
    expect(framer.push(line.subarray(arrow + 1))).toEqual(['{"name":"é→✓"}']);
  });

  it('drops oversized lines, counts them, and never holds more than the cap', () => {
    const framer = new LineFramer(100);
    const huge = 'x'.repeat(250);
    expect(framer.push(`{"ok":1}\n${huge.slice(0, 90)}`)).toEqual(['{"ok":1}']);
    expect(framer.bufferedBytes).toBe(90);
    expect(framer.push(huge.slice(90, 200))).toEqual([]);
    expect(framer.bufferedBytes).toBe(0);
    // the rest of the oversized line is skipped up to its newline; the next line is whole
    expect(framer.push(`${huge.slice(200)}\n{"ok":2}\n`)).toEqual(['{"ok":2}']);
    expect(framer.oversizedLines).toBe(1);
    // a line of exactly the cap is fine
    expect(framer.push(`${'y'.repeat(100)}\n`)).toEqual(['y'.repeat(100)]);
    expect(framer.oversizedLines).toBe(1);
  });

  it('skips empty lines and strips CR of CRLF framing', () => {
    const framer = new LineFramer();
    expect(framer.push('\n\r\n{"a":1}\r\n\n  \n{"b":2}\n')).toEqual(['{"a":1}', '{"b":2}']);
  });
});

describe('parseContainerEvent', () => {
  it('parses the recorded container events and ignores the image ones', () => {
    const parsed = RECORDED_LINES.map(parseContainerEvent);
    const containers = parsed.filter((p) => p.kind === 'container');
    expect(containers).toHaveLength(10);
    expect(parsed.filter((p) => p.kind === 'ignored')).toHaveLength(2);
    const first = containers[0];
    if (first?.kind !== 'container') throw new Error('unreachable');
    expect(first.event.action).toBe('create');
    expect(first.event.containerId).toMatch(/^[0-9a-f]{64}$/);
    expect(first.event.attributes).toMatchObject({ name: 'sized-running', team: 'storage' });
    // exact nanoseconds, read from the text (a JS number would round them)
    const digits = /"timeNano":(\d+)/.exec(RECORDED_LINES[2] ?? '')?.[1];
    expect(first.event.timeNano.toString()).toBe(digits);
  });

  it('never throws on garbage and says why', () => {
    const cases: Array<[string, string]> = [
      ['{not json', 'malformed'],
      ['[]', 'malformed'],
      ['null', 'malformed'],
      ['"text"', 'malformed'],
      ['{"Action":"start"}', 'malformed'],
      ['{"Type":"container","Action":"start","Actor":{"ID":"nothex"}}', 'malformed'],
      [`{"Type":"container","Actor":{"ID":"${ID_A}"}}`, 'malformed'],
      [`{"Type":"network","Action":"connect","Actor":{"ID":"${ID_A}"}}`, 'ignored'],
      ['<html>403 Forbidden</html>', 'malformed'],
    ];
    for (const [line, kind] of cases) expect(parseContainerEvent(line).kind, line).toBe(kind);
  });

  it('keeps only string attributes and falls back to `time` seconds', () => {
    const parsed = parseContainerEvent(
      `{"Type":"container","Action":"die","Actor":{"ID":"${ID_A}","Attributes":{"exitCode":"3","n":5,"o":{}}},"time":1700000000}`,
    );
    expect(parsed).toEqual({
      kind: 'container',
      event: {
        action: 'die',
        containerId: ID_A,
        timeNano: 1_700_000_000_000_000_000n,
        attributes: { exitCode: '3' },
      },
    });
  });

  it('takes the verb of suffixed actions', () => {
    expect(actionVerb('exec_start: sh -c x')).toBe('exec_start');
    expect(actionVerb('health_status: healthy')).toBe('health_status');
    expect(actionVerb('start')).toBe('start');
  });
});

describe('formatSince', () => {
  it('formats since as seconds.nanoseconds', () => {
    expect(formatSince(1_795_815_190_580_106_389n)).toBe('1795815190.580106389');
    expect(formatSince(5_000_000_007n)).toBe('5.000000007');
  });
});

/** A scripted event source: each open either fails or hands out a PassThrough the test writes to. */
class FakeSource implements DockerEventSource {
  readonly opens: Array<{ since?: string; signal: AbortSignal }> = [];
  readonly bodies: PassThrough[] = [];
  failuresLeft = 0;

  async openEvents(options: { since?: string; signal: AbortSignal }): Promise<NodeJS.ReadableStream> {
    this.opens.push(options);
    if (this.failuresLeft > 0) {
      this.failuresLeft -= 1;
      throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    }
    const body = new PassThrough();
    this.bodies.push(body);
    return body;
  }

  get current(): PassThrough {
    const body = this.bodies.at(-1);
    if (!body) throw new Error('no connection');
    return body;
  }
}

/** Manual timers: the test decides when a scheduled reconnect fires and sees its delay. */
class ManualTimers implements Timers {
  readonly scheduled: Array<{ callback: () => void; delayMs: number; cleared: boolean }> = [];
  setTimeout(callback: () => void, delayMs: number): unknown {
    const entry = { callback, delayMs, cleared: false };
    this.scheduled.push(entry);
    return entry;
  }
  clearTimeout(handle: unknown): void {
    (handle as { cleared: boolean }).cleared = true;
  }
  get pending() {
    return this.scheduled.filter((entry) => !entry.cleared);
  }
  fireNext(): number {
    const entry = this.pending[0];
    if (!entry) throw new Error('nothing scheduled');
    entry.cleared = true;
    entry.callback();
    return entry.delayMs;
  }
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

function makeStream(overrides: { random?: () => number; nowMs?: () => number; logger?: Logger } = {}) {
  const source = new FakeSource();
  const timers = new ManualTimers();
  const events: ContainerEvent[] = [];
  const states: string[] = [];
  const stream = new EventStream({
    source,
    logger: overrides.logger ?? silentLogger(),
    timers,
    random: overrides.random ?? (() => 0.5),
    nowMs: overrides.nowMs ?? (() => 0),
    backoff: { initialMs: 100, maxMs: 1000 },
    healthyAfterMs: 60_000,
    maxLineBytes: 4096,
    onEvent: (event) => events.push(event),
    onConnected: () => states.push('connected'),
    onDisconnected: (reason) => states.push(`lost: ${reason}`),
  });
  return { source, timers, events, states, stream };
}

describe('EventStream', () => {
  it('delivers framed events and ignores the rest, counting them', async () => {
    const { source, events, stream } = makeStream();
    stream.start();
    await settle();
    expect(stream.connected).toBe(true);
    const bytes = Buffer.from(`${RECORDED}garbage line\n{"Type":"container"}\n`, 'utf8');
    for (let offset = 0; offset < bytes.length; offset += 7)
      source.current.write(bytes.subarray(offset, offset + 7));
    await settle();
    expect(events.map((event) => event.action)).toEqual([
      'create',
      'start',
      'create',
      'create',
      'attach',
      'start',
      'die',
      'rename',
      'create',
      'destroy',
    ]);
    expect(stream.stats).toMatchObject({ eventsDelivered: 10, ignoredEvents: 2, malformedEvents: 2 });
    await stream.stop();
  });

  it('reconnects with growing jittered delays, passes since, and drops replayed events', async () => {
    const { source, timers, events, states, stream } = makeStream();
    stream.start();
    await settle();
    source.current.write(`${eventLine(ID_A, 'start', 1_000_000_000_500n)}\n`);
    await settle();
    // the daemon stops: the response ends (Go's client would say "unexpected EOF")
    source.current.destroy(new Error('aborted'));
    await settle();
    expect(stream.connected).toBe(false);
    expect(states).toEqual(['connected', 'lost: aborted']);
    source.failuresLeft = 2;
    // random() = 0.5: half of 100, 200, 400 ms
    expect(timers.fireNext()).toBe(50);
    await settle();
    expect(timers.fireNext()).toBe(100);
    await settle();
    expect(timers.fireNext()).toBe(200);
    await settle();
    expect(stream.connected).toBe(true);
    expect(stream.reconnects).toBe(1);
    expect(stream.stats.connectFailures).toBe(2);
    expect(source.opens.map((open) => open.since)).toEqual([
      undefined,
      '1000.000000500',
      '1000.000000500',
      '1000.000000500',
    ]);
    // replay from `since` includes the event at exactly that instant: it is not delivered twice
    source.current.write(
      `${eventLine(ID_A, 'start', 1_000_000_000_500n)}\n${eventLine(ID_B, 'start', 1_000_000_000_500n)}\n`,
    );
    await settle();
    expect(events.map((event) => `${event.containerId[0]} ${event.action}`)).toEqual(['a start', 'b start']);
    expect(stream.stats.duplicatesDropped).toBe(1);
    await stream.stop();
  });

  it('resets the backoff after a connection stayed healthy, not after a mere connect', async () => {
    let now = 0;
    const { source, timers, stream } = makeStream({ random: () => 0.999, nowMs: () => now });
    stream.start();
    await settle();
    source.current.end();
    await settle();
    expect(timers.fireNext()).toBe(99);
    await settle();
    // connected, but dropped at once (a proxy answering and closing): the backoff keeps growing
    source.current.end();
    await settle();
    expect(timers.fireNext()).toBe(199);
    await settle();
    now = 61_000;
    source.current.end();
    await settle();
    expect(timers.fireNext()).toBe(99);
    await stream.stop();
  });

  it('warns once per outage: the reconnects that drop at once repeat at debug, a healthy stream warns again', async () => {
    let now = 0;
    const lines: Array<{ level: string; msg: string }> = [];
    const logger = createLogger({
      level: 'debug',
      destination: { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) },
    });
    const { source, timers, stream } = makeStream({ nowMs: () => now, logger });
    const lost = (level: string) =>
      lines.filter((line) => line.level === level && line.msg.startsWith('docker event stream lost')).length;
    stream.start();
    await settle();
    // a daemon that answers and hangs up at once, five times (a proxy in front of a broken daemon)
    for (let flap = 0; flap < 5; flap += 1) {
      source.current.end();
      await settle();
      timers.fireNext();
      await settle();
    }
    expect(lost('warn')).toBe(1);
    expect(lost('debug')).toBe(4);
    // healthy for a minute, then lost: a new outage, a new warning
    now = 61_000;
    source.current.end();
    await settle();
    expect(lost('warn')).toBe(2);
    await stream.stop();
  });

  it('stops cleanly: destroys the connection, cancels the retry, and stays stopped', async () => {
    const { source, timers, stream, states } = makeStream();
    stream.start();
    await settle();
    const body = source.current;
    await stream.stop();
    expect(body.destroyed).toBe(true);
    expect(source.opens[0]?.signal.aborted).toBe(true);
    expect(stream.connected).toBe(false);
    expect(states).toEqual(['connected', 'lost: stopped']);
    expect(timers.pending).toHaveLength(0);

    // stopping while a retry is scheduled cancels it
    const second = makeStream();
    second.source.failuresLeft = 1;
    second.stream.start();
    await settle();
    expect(second.timers.pending).toHaveLength(1);
    await second.stream.stop();
    expect(second.timers.pending).toHaveLength(0);
  });

  it('isolates a throwing event handler', async () => {
    const source = new FakeSource();
    const onEvent = vi.fn(() => {
      throw new Error('listener bug');
    });
    const stream = new EventStream({ source, logger: silentLogger(), onEvent, timers: new ManualTimers() });
    stream.start();
    await settle();
    source.current.write(`${eventLine(ID_A, 'start', 1n)}\n${eventLine(ID_A, 'die', 2n)}\n`);
    await settle();
    expect(onEvent).toHaveBeenCalledTimes(2);
    expect(stream.connected).toBe(true);
    await stream.stop();
  });
});
