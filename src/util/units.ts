/**
 * Human units used in configuration, labels and the CLI: sizes (`512M`, `10G`, `1.5T`, binary
 * multiples), percentages (`85%`) and durations (`30s`, `5m`). Everything is converted to base
 * units (bytes, a 0..1 ratio, milliseconds) at the edge so the rest of the code never sees text.
 */

const SIZE_MULTIPLIERS: Record<string, number> = {
  '': 1,
  B: 1,
  K: 1024,
  M: 1024 ** 2,
  G: 1024 ** 3,
  T: 1024 ** 4,
  P: 1024 ** 5,
};

const SIZE_PATTERN = /^(\d+(?:\.\d+)?)\s*([KMGTP]?)(?:i?B)?$/i;

/** Parses `512M`, `10G`, `1.5T`, `10GiB`, `1073741824` into bytes (binary multiples). */
export function parseSizeBytes(text: string): number {
  const match = SIZE_PATTERN.exec(text.trim());
  if (!match)
    throw new Error(
      `not a size: ${JSON.stringify(text)} (expected a number with an optional unit K, M, G, T, P, e.g. 512M, 10G, 1.5T)`,
    );
  const value = Number(match[1]);
  const unit = (match[2] ?? '').toUpperCase();
  const multiplier = SIZE_MULTIPLIERS[unit];
  if (multiplier === undefined) throw new Error(`unknown size unit in ${JSON.stringify(text)}`);
  const bytes = Math.round(value * multiplier);
  if (!Number.isSafeInteger(bytes)) throw new Error(`size too large: ${JSON.stringify(text)}`);
  return bytes;
}

const PERCENT_PATTERN = /^(\d+(?:\.\d+)?)\s*%$/;

/** Parses `85%` into 0.85. Accepts 0% to 100% only. */
export function parsePercentRatio(text: string): number {
  const match = PERCENT_PATTERN.exec(text.trim());
  if (!match) throw new Error(`not a percentage: ${JSON.stringify(text)} (expected e.g. 85%)`);
  const value = Number(match[1]);
  if (value > 100) throw new Error(`percentage above 100%: ${JSON.stringify(text)}`);
  return value / 100;
}

const DURATION_MULTIPLIERS_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const DURATION_PATTERN = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/** Parses `250ms`, `30s`, `5m`, `1h`, `1d` (or a sequence like `1m30s`) into milliseconds. */
export function parseDurationMs(text: string): number {
  const trimmed = text.trim();
  const parts = trimmed.match(/\d+(?:\.\d+)?(?:ms|s|m|h|d)/g);
  if (!parts || parts.join('') !== trimmed) {
    throw new Error(`not a duration: ${JSON.stringify(text)} (expected e.g. 500ms, 30s, 5m, 1h, 1d)`);
  }
  let total = 0;
  for (const part of parts) {
    const match = DURATION_PATTERN.exec(part);
    if (!match) throw new Error(`not a duration: ${JSON.stringify(text)}`);
    total += Number(match[1]) * (DURATION_MULTIPLIERS_MS[match[2] ?? 's'] ?? 1000);
  }
  return Math.round(total);
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** Formats bytes for people, three significant digits, a whole number without decimals: `1.50GiB`, `15.3GiB`, `2GiB`. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  let value = Math.abs(bytes);
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const sign = bytes < 0 ? '-' : '';
  const digits = unit === 0 || value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${sign}${value.toFixed(digits).replace(/\.0+$/, '')}${BYTE_UNITS[unit]}`;
}

/** Formats milliseconds for people: `2m30s`, `450ms`. */
export function formatDurationMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const totalSeconds = Math.round(ms / 1000);
  const days = Math.floor(totalSeconds / 86_400);
  const hours = Math.floor((totalSeconds % 86_400) / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  const seconds = totalSeconds % 60;
  const parts: string[] = [];
  if (days) parts.push(`${days}d`);
  if (hours) parts.push(`${hours}h`);
  if (minutes) parts.push(`${minutes}m`);
  if (seconds || parts.length === 0) parts.push(`${seconds}s`);
  return parts.join('');
}
