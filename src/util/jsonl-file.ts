/**
 * Durable JSON-lines files: each record is one line, appended with O_APPEND and fsync'd before the
 * call returns, so a crash never loses an acknowledged record. Reading tolerates a torn last line
 * (a crash mid-write) and skips it.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';

export function appendJsonLineDurable(file: string, record: unknown): void {
  appendJsonLine(file, record, { fsync: true });
}

/**
 * Appends one line; with `fsync: false` the line is in the kernel when this returns (it survives
 * the agent being killed, not a power cut) but the call never waits for the disk, which under a
 * heavy writer on the same filesystem can take hundreds of ms (measured: 360 ms).
 */
export function appendJsonLine(file: string, record: unknown, options: { fsync: boolean }): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const fd = openSync(file, 'a', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(record)}\n`);
    if (options.fsync) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export interface ReadJsonLinesResult<T> {
  records: T[];
  /** Lines that were not valid JSON (a torn last line after a crash, or corruption). */
  badLines: number;
}

export function readJsonLines<T = unknown>(file: string): ReadJsonLinesResult<T> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { records: [], badLines: 0 };
    throw error;
  }
  const records: T[] = [];
  let badLines = 0;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      records.push(JSON.parse(line) as T);
    } catch {
      badLines += 1;
    }
  }
  return { records, badLines };
}
