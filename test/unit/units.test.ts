/** src/util/units.ts: the human units of config, labels and the CLI, at their edges. */
import { describe, expect, it } from 'vitest';
import {
  formatBytes,
  formatDurationMs,
  parseDurationMs,
  parsePercentRatio,
  parseSizeBytes,
} from '../../src/util/units.js';

describe('parseSizeBytes', () => {
  it.each([
    ['1073741824', 1024 ** 3],
    ['512M', 512 * 1024 ** 2],
    ['10G', 10 * 1024 ** 3],
    ['10GiB', 10 * 1024 ** 3],
    ['10gb', 10 * 1024 ** 3],
    ['1.5T', 1.5 * 1024 ** 4],
    [' 64 K ', 64 * 1024],
    ['0', 0],
    ['100B', 100],
  ])('%s is %d bytes', (text, bytes) => {
    expect(parseSizeBytes(text)).toBe(bytes);
  });

  it.each(['', 'G', '-1G', '10X', '1e9', '10 G B', '0x10'])('refuses %j', (text) => {
    expect(() => parseSizeBytes(text)).toThrow(/not a size/);
  });

  it('refuses a size past what a double holds exactly', () => {
    expect(() => parseSizeBytes('9000P')).toThrow(/too large/);
    expect(parseSizeBytes('7P')).toBe(7 * 1024 ** 5);
  });
});

describe('parsePercentRatio', () => {
  it('reads 0% to 100% as a ratio', () => {
    expect(parsePercentRatio('85%')).toBe(0.85);
    expect(parsePercentRatio('0%')).toBe(0);
    expect(parsePercentRatio(' 100 %')).toBe(1);
    expect(parsePercentRatio('12.5%')).toBe(0.125);
  });
  it('refuses above 100% and what is no percentage', () => {
    expect(() => parsePercentRatio('150%')).toThrow(/above 100%/);
    expect(() => parsePercentRatio('85')).toThrow(/not a percentage/);
    expect(() => parsePercentRatio('-5%')).toThrow(/not a percentage/);
  });
});

describe('parseDurationMs', () => {
  it.each([
    ['250ms', 250],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    ['1m30s', 90_000],
    ['1.5s', 1500],
    ['1h0m1s', 3_601_000],
  ])('%s is %d ms', (text, ms) => {
    expect(parseDurationMs(text)).toBe(ms);
  });
  it.each(['', '30', 's', '-1m', '5 m', '1w', '30s junk'])('refuses %j', (text) => {
    expect(() => parseDurationMs(text)).toThrow(/not a duration/);
  });
});

describe('formatting for people', () => {
  it('formats bytes with binary units three significant digits, a whole number without decimals', () => {
    expect(formatBytes(0)).toBe('0B');
    expect(formatBytes(1023)).toBe('1023B');
    expect(formatBytes(1024)).toBe('1KiB');
    expect(formatBytes(1.5 * 1024 ** 3)).toBe('1.50GiB');
    expect(formatBytes(15.25 * 1024 ** 3)).toBe('15.3GiB');
    expect(formatBytes(150 * 1024 ** 2)).toBe('150MiB');
    expect(formatBytes(-2 * 1024 ** 2)).toBe('-2MiB');
    expect(formatBytes(Number.NaN)).toBe('NaN');
  });
  it('formats durations as the config writes them, and parses back', () => {
    expect(formatDurationMs(450)).toBe('450ms');
    expect(formatDurationMs(1000)).toBe('1s');
    expect(formatDurationMs(150_000)).toBe('2m30s');
    expect(formatDurationMs(90_061_000)).toBe('1d1h1m1s');
    expect(formatDurationMs(3_600_000)).toBe('1h');
    for (const ms of [1000, 59_000, 61_000, 3_600_000, 90_061_000])
      expect(parseDurationMs(formatDurationMs(ms))).toBe(ms);
  });
});
