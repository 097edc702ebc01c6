import {
  appendFileSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  existsSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HistoryStore } from '../../src/agent/history.js';
import { Journal, type JournalEntry } from '../../src/agent/journal.js';

const directories: string[] = [];
afterEach(() => {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

function tempDir(): string {
  const directory = mkdtempSync(path.join(tmpdir(), 'autogrow-journal-'));
  directories.push(directory);
  return directory;
}

const ID = 'a'.repeat(64);
const T0 = Date.UTC(2026, 10, 27, 12, 0, 0);

function succeeded(atMs: number, toBytes = 2048): JournalEntry {
  return {
    type: 'grow-succeeded',
    atMs,
    containerId: ID,
    name: 'web',
    trigger: 'threshold',
    fromBytes: 1024,
    toBytes,
    requestedBytes: toBytes,
    durationMs: 12,
    noop: false,
    steps: ['btrfs qgroup limit 2048 /x'],
  };
}

describe('journal', () => {
  it('appends one JSON line per record, versioned, and replays them in order', () => {
    const file = path.join(tempDir(), 'state', 'journal.jsonl');
    const journal = new Journal({ path: file, maxSizeBytes: 1 << 20, keep: 3 });

    expect(journal.append(succeeded(T0))).toBe(true);
    expect(journal.append(succeeded(T0 + 1, 4096))).toBe(true);

    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      v: 1,
      type: 'grow-succeeded',
      atMs: T0,
      fromBytes: 1024,
      toBytes: 2048,
    });
    expect(journal.replay().records.map((record) => record.atMs)).toEqual([T0, T0 + 1]);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('tolerates a torn last line and skips unknown records', () => {
    const file = path.join(tempDir(), 'journal.jsonl');
    const journal = new Journal({ path: file, maxSizeBytes: 1 << 20, keep: 3 });
    journal.append(succeeded(T0));
    appendFileSync(file, '{"v":1,"type":"something-else","atMs":1}\n{"v":1,"type":"grow-succ');

    const replay = journal.replay();

    expect(replay.records).toHaveLength(1);
    expect(replay.skippedLines).toBe(2);
  });

  it('rotates by size, keeps N files, and replays across them oldest first', () => {
    const file = path.join(tempDir(), 'journal.jsonl');
    const oneLine = JSON.stringify({ v: 1, ...succeeded(T0) }).length + 1;
    const journal = new Journal({ path: file, maxSizeBytes: oneLine * 2, keep: 2 });

    for (let index = 0; index < 7; index += 1) journal.append(succeeded(T0 + index));

    expect(existsSync(`${file}.1`)).toBe(true);
    expect(existsSync(`${file}.2`)).toBe(true);
    expect(existsSync(`${file}.3`)).toBe(false);
    const atMs = journal.replay().records.map((record) => record.atMs - T0);
    expect(atMs).toEqual([2, 3, 4, 5, 6]);
  });

  it('writes the remembered state first into a fresh file after rotation', () => {
    const file = path.join(tempDir(), 'journal.jsonl');
    const oneLine = JSON.stringify({ v: 1, ...succeeded(T0) }).length + 1;
    const journal = new Journal({ path: file, maxSizeBytes: oneLine, keep: 1 });
    const history = new HistoryStore({ initial: 10_000, max: 600_000 });
    journal.setStateProvider(() => history.stateEntries(T0 + 100));
    history.recordGrowSucceeded(ID, T0, 2048);
    journal.append(succeeded(T0));

    // Each append rotates; with keep=1, the original grow record is gone after two more appends.
    journal.append({ type: 'container-forgotten', atMs: T0 + 1, containerId: 'b'.repeat(64) });
    journal.append({ type: 'container-forgotten', atMs: T0 + 2, containerId: 'c'.repeat(64) });
    const rebuilt = new HistoryStore({ initial: 10_000, max: 600_000 });
    rebuilt.replay(journal.replay().records);

    expect(journal.replay().records.some((record) => record.type === 'grow-succeeded')).toBe(false);
    expect(rebuilt.get(ID)).toMatchObject({ lastGrowAtMs: T0, lastGrowToBytes: 2048 });
  });

  it('counts write errors and never throws', () => {
    const directory = tempDir();
    const blocker = path.join(directory, 'not-a-directory');
    writeFileSync(blocker, 'x');
    const errors: Error[] = [];
    const journal = new Journal({
      path: path.join(blocker, 'journal.jsonl'),
      maxSizeBytes: 1 << 20,
      keep: 3,
      onWriteError: (error) => errors.push(error),
    });

    expect(journal.append(succeeded(T0))).toBe(false);
    expect(journal.append(succeeded(T0 + 1))).toBe(false);

    expect(journal.writeErrors).toBe(2);
    expect(errors).toHaveLength(2);
    expect(errors[0]!.message).toMatch(/ENOTDIR/);
  });
});

describe('history rebuilt from the journal', () => {
  const backoff = { initial: 10_000, max: 600_000 };

  it('restores the cooldown from the last successful grow and the backoff from the last failure', () => {
    const history = new HistoryStore(backoff);
    const other = 'b'.repeat(64);

    history.replay([
      { v: 1, ...succeeded(T0) } as never,
      {
        v: 1,
        type: 'grow-failed',
        atMs: T0 + 5,
        containerId: other,
        name: 'db',
        trigger: 'threshold',
        fromBytes: 1,
        toBytes: 2,
        durationMs: 1,
        error: 'boom',
        consecutiveFailures: 3,
        backoffUntilMs: T0 + 40_005,
      },
    ]);

    expect(history.get(ID)).toMatchObject({ lastGrowAtMs: T0, consecutiveFailures: 0, backoffUntilMs: null });
    expect(history.get(other)).toMatchObject({
      consecutiveFailures: 3,
      backoffUntilMs: T0 + 40_005,
      lastError: 'boom',
    });
  });

  it('forgets destroyed containers and lists an unfinished grow without backing it off', () => {
    const history = new HistoryStore(backoff);
    const interrupted = 'c'.repeat(64);

    const { interruptedGrows } = history.replay([
      { v: 1, ...succeeded(T0) } as never,
      { v: 1, type: 'container-forgotten', atMs: T0 + 1, containerId: ID },
      {
        v: 1,
        type: 'grow-started',
        atMs: T0 + 2,
        containerId: interrupted,
        name: 'x',
        fromBytes: 1,
        toBytes: 2,
        trigger: 'predicted',
        why: 'test',
      },
    ]);

    expect(history.get(ID)).toBeUndefined();
    expect(interruptedGrows).toEqual([interrupted]);
    // still running in another process, or interrupted: closeInterruptedGrows decides, not replay
    expect(history.get(interrupted)?.backoffUntilMs ?? null).toBeNull();
  });

  it('keeps samples within the window, in order, bounded', () => {
    const history = new HistoryStore(backoff);
    for (let second = 0; second < 30; second += 1) {
      history.recordSample(ID, { atMs: T0 + second * 1000, usedBytes: second, sizeBytes: 100 }, 10_000);
    }
    history.recordSample(ID, { atMs: T0, usedBytes: 999, sizeBytes: 100 }, 10_000);

    const samples = history.get(ID)!.samples;
    expect(samples.map((sample) => sample.usedBytes)).toEqual([19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29]);
  });

  it('doubles the backoff per failure up to the cap, and clears it on success', () => {
    const history = new HistoryStore({ initial: 10_000, max: 35_000 });

    const delays = [1, 2, 3, 4].map(() => history.recordGrowFailed(ID, T0, 'x').backoffUntilMs - T0);
    history.recordGrowSucceeded(ID, T0 + 1, 5);

    expect(delays).toEqual([10_000, 20_000, 35_000, 35_000]);
    expect(history.get(ID)).toMatchObject({
      consecutiveFailures: 0,
      backoffUntilMs: null,
      lastGrowAtMs: T0 + 1,
    });
  });
});
