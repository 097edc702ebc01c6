/**
 * Hostile variants of a real recorded tool output, and the check every parser of tool output must
 * pass on them (issue 18: "dmsetup/btrfs/xfs_quota outputs that do not parse"): it either returns
 * or throws a ToolOutputError (never a TypeError, SyntaxError or a bare Error), and what it returns
 * holds no wrong number: every number a safe non-negative integer, no NUL in a string, and for the
 * variants whose right answer is known (an extra column, whole lines cut off) only what the real
 * output says.
 *
 * What parsing cannot catch: a cut inside the last number of the last line ("16384" read as
 * "163"). The runner never hands a parser partial output (a timed-out or killed command is a
 * CommandError, src/exec/runner.ts), so the check for those cuts is only "typed error or safe
 * numbers".
 */
import { expect } from 'vitest';
import { ToolOutputError } from '../../src/storage/tool-output-error.js';

export type HostileKind =
  | 'empty'
  | 'blank-lines'
  | 'lines-cut'
  | 'mid-line-cut'
  | 'garbage'
  | 'garbage-line'
  | 'extra-column'
  | 'huge-number'
  | 'past-2^53'
  | 'nul'
  | 'crlf';

export interface HostileInput {
  kind: HostileKind;
  text: string;
}

/** A small seeded generator, so a failing variant is the same every run. */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/** The hostile variants of `real` (a verbatim recorded output). */
/** A recorded file without its '# ' header lines (command, versions, date), as the tool printed it. */
export function withoutRecordingHeader(text: string): string {
  const lines = text.split('\n');
  let index = 0;
  while (index < lines.length && lines[index]?.startsWith('# ')) index += 1;
  return lines.slice(index).join('\n');
}

export function hostileVariants(real: string, seed = 18): HostileInput[] {
  const random = lcg(seed);
  const lines = real.split('\n');
  const dataLines = lines.map((line, index) => ({ line, index })).filter(({ line }) => line.trim() !== '');
  const variants: HostileInput[] = [
    { kind: 'empty', text: '' },
    { kind: 'blank-lines', text: '\n\n  \n' },
    { kind: 'crlf', text: real.replace(/\n/g, '\r\n') },
  ];
  for (let keep = 1; keep < lines.length; keep += 1)
    variants.push({ kind: 'lines-cut', text: `${lines.slice(0, keep).join('\n')}\n` });
  const cuts = Math.min(40, real.length);
  for (let index = 1; index <= cuts; index += 1)
    variants.push({
      kind: 'mid-line-cut',
      text: real.slice(0, Math.floor((real.length * index) / (cuts + 1))),
    });
  for (let index = 0; index < 8; index += 1) {
    const bytes = Array.from({ length: 1 + Math.floor(random() * 200) }, () =>
      String.fromCharCode(Math.floor(random() * 256)),
    ).join('');
    variants.push({ kind: 'garbage', text: bytes });
    const at = Math.floor(random() * (lines.length + 1));
    variants.push({
      kind: 'garbage-line',
      text: [...lines.slice(0, at), bytes, ...lines.slice(at)].join('\n'),
    });
  }
  for (const { index } of dataLines) {
    const changed = [...lines];
    changed[index] = `${lines[index]} extra-column 12345`;
    variants.push({ kind: 'extra-column', text: changed.join('\n') });
  }
  variants.push({ kind: 'huge-number', text: real.replace(/\d+/g, '99999999999999999999999999') });
  variants.push({ kind: 'past-2^53', text: real.replace(/\d{3,}/g, '9007199254740993') });
  for (const { line, index } of dataLines) {
    const changed = [...lines];
    const at = Math.floor(random() * (line.length + 1));
    changed[index] = `${line.slice(0, at)}\0${line.slice(at)}`;
    variants.push({ kind: 'nul', text: changed.join('\n') });
  }
  return variants;
}

/** The items of a parser's result: array elements, map entries, or the value itself. */
function items(result: unknown): string[] {
  if (Array.isArray(result)) return result.map((item) => JSON.stringify(normalise(item)));
  if (result instanceof Map) return [...result].map((entry) => JSON.stringify(normalise(entry)));
  return [JSON.stringify(normalise(result))];
}

function normalise(value: unknown): unknown {
  if (value instanceof Map) return [...value].map(normalise);
  if (Array.isArray(value)) return value.map(normalise);
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, normalise(inner)]));
  return value;
}

/** Every number in `value` is a safe non-negative integer; no string holds a NUL. */
function badValues(value: unknown, where = '$'): string[] {
  if (typeof value === 'number')
    return Number.isSafeInteger(value) && value >= 0 ? [] : [`${where} = ${value}`];
  if (typeof value === 'string') return value.includes('\0') ? [`${where} holds a NUL`] : [];
  if (value instanceof Map)
    return [...value].flatMap(([key, inner], i) => badValues([key, inner], `${where}<${i}>`));
  if (Array.isArray(value)) return value.flatMap((inner, i) => badValues(inner, `${where}[${i}]`));
  if (value !== null && typeof value === 'object')
    return Object.entries(value).flatMap(([key, inner]) => badValues(inner, `${where}.${key}`));
  return [];
}

export interface HostileOutcome {
  kind: HostileKind;
  outcome: 'parsed' | 'refused';
}

/**
 * Runs `parse` on every hostile variant of `real` and fails on the first misbehaviour, naming the
 * variant. Returns what happened per variant (tests assert that refusals did happen).
 */
export interface HostileOptions {
  /**
   * The last field of a row is free text (a path: btrfs prints it last, spaces included), so a
   * column appended to a row becomes part of it: for 'extra-column' only the numbers must match.
   */
  freeTextLastField?: boolean;
  /**
   * A carriage return is a legal raw byte of the format (mountinfo escapes only space, tab,
   * newline and backslash), so a CRLF variant is not hostile there: skip it.
   */
  crIsData?: boolean;
}

function withoutStrings(value: unknown): unknown {
  if (Array.isArray(value)) return value.filter((inner) => typeof inner !== 'string').map(withoutStrings);
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, inner]) => typeof inner !== 'string')
        .map(([key, inner]) => [key, withoutStrings(inner)]),
    );
  return value;
}

export function expectHostileSafe(
  parse: (text: string) => unknown,
  real: string,
  options: HostileOptions = {},
): HostileOutcome[] {
  const truth = new Set(items(parse(real)));
  const truthNumbers = new Set(
    items(parse(real)).map((item) => JSON.stringify(withoutStrings(JSON.parse(item)))),
  );
  const outcomes: HostileOutcome[] = [];
  for (const variant of hostileVariants(real)) {
    if (variant.kind === 'crlf' && options.crIsData) continue;
    const label = `${variant.kind}: ${JSON.stringify(variant.text.slice(0, 160))}`;
    let result: unknown;
    try {
      result = parse(variant.text);
    } catch (error) {
      if (!(error instanceof ToolOutputError))
        expect.fail(`${label}\nthrew an untyped ${(error as Error)?.name}: ${(error as Error)?.message}`);
      outcomes.push({ kind: variant.kind, outcome: 'refused' });
      continue;
    }
    expect(badValues(result), label).toEqual([]);
    if (variant.kind === 'extra-column' && options.freeTextLastField) {
      expect(
        items(result)
          .map((item) => JSON.stringify(withoutStrings(JSON.parse(item))))
          .filter((item) => !truthNumbers.has(item)),
        label,
      ).toEqual([]);
    } else if (variant.kind === 'extra-column' || variant.kind === 'lines-cut' || variant.kind === 'crlf') {
      // the answer is known: only what the real output says (a cut may drop rows, never change one)
      expect(
        items(result).filter((item) => !truth.has(item)),
        label,
      ).toEqual([]);
    }
    outcomes.push({ kind: variant.kind, outcome: 'parsed' });
  }
  // NULs are refused, never read (numbers past 2^53 need only be refused where they are read:
  // badValues above fails any that came through)
  for (const kind of ['nul'] as const) {
    const seen = outcomes.filter((outcome) => outcome.kind === kind);
    expect(seen.length, kind).toBeGreaterThan(0);
    expect(
      seen.filter((outcome) => outcome.outcome === 'parsed'),
      `${kind} parsed`,
    ).toEqual([]);
  }
  return outcomes;
}
