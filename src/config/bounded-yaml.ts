/**
 * Reading a YAML file someone else wrote, in bounded time and memory: the one module that imports
 * `yaml`, used for the agent's configuration (./load.ts) and the metrics web config
 * (src/http/web-config.ts).
 *
 * What a hostile or mistaken file can do to a naive `readFileSync` + `parseDocument` + `toJS`, and
 * what stops it here:
 *  - a FIFO blocks the read forever, /dev/zero never ends: the file is opened with O_NONBLOCK and
 *    anything but a regular file is refused (fstat on the opened descriptor, so no race with a
 *    rename), and at most {@link MAX_YAML_FILE_BYTES} are read;
 *  - an alias bomb (`b: [*a, *a, ...]` nine levels deep) expands exponentially in `toJS`: yaml's
 *    `maxAliasCount` bounds the expansion, and its ReferenceError becomes a {@link YamlFileError};
 *  - deep nesting (`[[[[...` or `- - - -`) overflows the stack of every recursive consumer (toJS,
 *    zod, JSON.stringify in messages): the depth, aliases followed, is measured iteratively and
 *    refused beyond {@link MAX_YAML_DEPTH};
 *  - yaml's own duplicate-key check compares each key with every earlier one (quadratic: 50,000
 *    keys took minutes); it is replaced by a linear check with a Set.
 */
import { errorMessage } from '../util/errors.js';
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import {
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  type Document,
  type Node as YamlNode,
} from 'yaml';

/** Larger than any real configuration (the documented example is ~6 KB). */
export const MAX_YAML_FILE_BYTES = 1024 * 1024;
/** Configuration nests 4 levels; 64 leaves room for anything legitimate and none for a stack overflow. */
export const MAX_YAML_DEPTH = 64;
/** yaml's default, stated here: alias expansion beyond this is refused as a resource exhaustion attack. */
export const MAX_YAML_ALIAS_COUNT = 100;

/** A file that cannot be read or parsed; `reason` says why, without the file name. */
export class YamlFileError extends Error {
  override readonly name = 'YamlFileError';
  constructor(
    readonly reason: string,
    readonly details: {
      /** errno code (ENOENT, EACCES, ...) when the file could not be opened or read. */
      code?: string | undefined;
      /** 1-based position of a parse problem in the text. */
      line?: number;
      column?: number;
    } = {},
  ) {
    super(
      details.line === undefined ? reason : `at line ${details.line}, column ${details.column}: ${reason}`,
    );
  }

  /** `invalid YAML in <source> at line 3, column 1: duplicate key "interval"`. */
  describeIn(source: string): string {
    const where =
      this.details.line === undefined ? '' : ` at line ${this.details.line}, column ${this.details.column}`;
    return `invalid YAML in ${source}${where}: ${this.reason}`;
  }
}

function fileKind(stat: Stats): string {
  if (stat.isDirectory()) return 'a directory';
  if (stat.isFIFO()) return 'a FIFO (named pipe)';
  if (stat.isCharacterDevice()) return 'a character device';
  if (stat.isBlockDevice()) return 'a block device';
  if (stat.isSocket()) return 'a socket';
  return 'not a regular file';
}

function formatKiB(bytes: number): string {
  return `${Math.round(bytes / 1024)} KiB`;
}

/**
 * Reads a regular file as UTF-8, at most `maxBytes`. Never blocks on a FIFO or device: the open is
 * non-blocking and the type is checked on the opened descriptor before the first read.
 */
export function readBoundedTextFile(file: string, maxBytes = MAX_YAML_FILE_BYTES): string {
  let fd: number;
  try {
    fd = openSync(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOCTTY);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new YamlFileError(code ?? String(error), { code });
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new YamlFileError(`${fileKind(stat)}, not a regular file`);
    if (stat.size > maxBytes) {
      throw new YamlFileError(`too large (${formatKiB(stat.size)}; at most ${formatKiB(maxBytes)})`);
    }
    // One byte more than allowed: a file that grew after fstat is noticed, not silently cut.
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    for (;;) {
      const read = readSync(fd, buffer, length, buffer.length - length, null);
      if (read === 0) break;
      length += read;
      if (length > maxBytes) {
        throw new YamlFileError(`too large (more than ${formatKiB(maxBytes)})`);
      }
    }
    return buffer.toString('utf8', 0, length);
  } catch (error) {
    if (error instanceof YamlFileError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw new YamlFileError(code ?? String(error), { code });
  } finally {
    closeSync(fd);
  }
}

function children(node: YamlNode): YamlNode[] {
  const out: YamlNode[] = [];
  if (isMap(node)) {
    for (const pair of node.items) {
      if (isPair(pair)) {
        if (pair.key && typeof pair.key === 'object') out.push(pair.key as YamlNode);
        if (pair.value && typeof pair.value === 'object') out.push(pair.value as YamlNode);
      }
    }
  } else if (isSeq(node)) {
    for (const item of node.items) if (item && typeof item === 'object') out.push(item as YamlNode);
  }
  return out;
}

/**
 * Checks, in one linear pass with an explicit stack, what the parser lets through: duplicate keys
 * and nesting deeper than `maxDepth` counting what aliases expand to (each anchor's height is
 * computed once and remembered, so an alias bomb costs no more than its text).
 * Returns the first problem with its offset in the text, or null.
 */
function checkStructure(
  document: Document,
  maxDepth: number,
): { message: string; offset: number | undefined } | null {
  const root = document.contents as YamlNode | null;
  if (!root) return null;
  const height = new Map<YamlNode, number>();
  const stack: { node: YamlNode; expanded: boolean; depth: number }[] = [
    { node: root, expanded: false, depth: 1 },
  ];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const { node } = top;
    if (top.depth > maxDepth) {
      return { message: `nested deeper than ${maxDepth} levels`, offset: node.range?.[0] };
    }
    if (isAlias(node)) {
      const target = node.resolve(document) as YamlNode | undefined;
      const targetHeight = target ? height.get(target) : 0;
      if (targetHeight === undefined) {
        return { message: 'an alias refers to its own anchor', offset: node.range?.[0] };
      }
      if (top.depth - 1 + targetHeight > maxDepth) {
        return {
          message: `nested deeper than ${maxDepth} levels (through the alias *${node.source})`,
          offset: node.range?.[0],
        };
      }
      height.set(node, targetHeight);
      stack.pop();
      continue;
    }
    if (!top.expanded) {
      top.expanded = true;
      if (isMap(node)) {
        const seen = new Set<string>();
        for (const pair of node.items) {
          const key = isPair(pair) ? pair.key : undefined;
          if (!isScalar(key)) continue;
          const name = String(key.value);
          // `<<` may repeat: each merges another mapping (YAML merge keys).
          if (name === '<<') continue;
          if (seen.has(name)) {
            return { message: `duplicate key ${JSON.stringify(name)}`, offset: key.range?.[0] };
          }
          seen.add(name);
        }
      }
      // Reversed so that children are finished in document order: an anchor before its aliases.
      for (const child of children(node).reverse()) {
        stack.push({ node: child, expanded: false, depth: top.depth + 1 });
      }
      continue;
    }
    let tallest = 0;
    for (const child of children(node)) tallest = Math.max(tallest, height.get(child) ?? 0);
    height.set(node, tallest + 1);
    stack.pop();
  }
  return null;
}

function positionOf(
  lineCounter: LineCounter,
  offset: number | undefined,
): { line?: number; column?: number } {
  if (offset === undefined) return {};
  const { line, col } = lineCounter.linePos(offset);
  return { line, column: col };
}

/**
 * Nesting deeper than this, written with brackets (`[[[[`), compact indicators (`- - - -`) or
 * indentation, is refused before parsing: yaml's parser recurses on it (a stack overflow near 800
 * levels), and 500,000 levels took 7 to 10 s and up to 530 MB before failing.
 */
const MAX_TEXT_NESTING = 256;

/**
 * Where the text nests deeper than `limit`, or null: flow brackets outside quotes and comments,
 * and per line the indentation plus the leading `- `/`? ` indicators. Approximate on purpose (a
 * bracket inside a plain scalar counts): a cheap linear bound run before the parser, not a YAML
 * parser; {@link checkStructure} measures the exact depth after parsing.
 */
function textNestingExceeds(text: string, limit: number): number | null {
  let depth = 0;
  let quote: '"' | "'" | null = null;
  let comment = false;
  let lineStart = true;
  let blockNesting = 0;
  for (let index = 0; index < text.length; index++) {
    const char = text[index];
    if (char === '\n') {
      // A quote left open at the end of a line is most likely an apostrophe in a plain scalar.
      quote = null;
      comment = false;
      lineStart = true;
      blockNesting = 0;
      continue;
    }
    if (lineStart) {
      const next = text[index + 1];
      if (char === ' ' || char === '\t') blockNesting++;
      else if ((char === '-' || char === '?') && (next === ' ' || next === '\t')) blockNesting += 2;
      else lineStart = false;
      if (blockNesting > limit) return index;
      if (lineStart) continue;
    }
    if (comment) continue;
    if (quote) {
      if (char === '\\' && quote === '"') index++;
      else if (char === quote) quote = null;
      continue;
    }
    if (char === '"' || char === "'") quote = char;
    else if (char === '#' && (index === 0 || text[index - 1] === ' ' || text[index - 1] === '\t'))
      comment = true;
    else if (char === '[' || char === '{') {
      if (++depth > limit) return index;
    } else if ((char === ']' || char === '}') && depth > 0) depth--;
  }
  return null;
}

/** 1-based line and column of an offset, counted directly (no parser ran yet). */
function positionInText(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStartOffset = 0;
  for (
    let index = text.indexOf('\n');
    index !== -1 && index < offset;
    index = text.indexOf('\n', index + 1)
  ) {
    line++;
    lineStartOffset = index + 1;
  }
  return { line, column: offset - lineStartOffset + 1 };
}

export interface YamlParseOptions {
  maxDepth?: number;
  maxAliasCount?: number;
}

/**
 * Parses one YAML document into plain data. YAML merge keys (`<<: *base`) are supported: the keys
 * of the merged mapping apply unless the mapping itself sets them. Throws {@link YamlFileError}
 * with the position of the first problem.
 */
export function parseYamlBounded(text: string, options: YamlParseOptions = {}): unknown {
  const maxDepth = options.maxDepth ?? MAX_YAML_DEPTH;
  const lineCounter = new LineCounter();
  const textLimit = Math.max(MAX_TEXT_NESTING, maxDepth);
  const tooDeepAt = textNestingExceeds(text, textLimit);
  if (tooDeepAt !== null) {
    throw new YamlFileError(
      `nested or indented deeper than ${textLimit} levels`,
      positionInText(text, tooDeepAt),
    );
  }
  let document: Document;
  try {
    document = parseDocument(text, {
      lineCounter,
      prettyErrors: false,
      uniqueKeys: false, // quadratic; checkStructure does it in linear time
      merge: true,
      stringKeys: true,
    });
  } catch (error) {
    // The parser recurses on flow collections; deep enough ones overflow its stack.
    throw new YamlFileError(errorMessage(error));
  }
  const first = document.errors[0];
  if (first) {
    const reason = first.message.split('\n')[0] ?? first.message;
    const reasonWithoutPosition = reason.replace(/ at line \d+, column \d+:?$/, '');
    throw new YamlFileError(reasonWithoutPosition, positionOf(lineCounter, first.pos[0]));
  }
  const problem = checkStructure(document, maxDepth);
  if (problem) throw new YamlFileError(problem.message, positionOf(lineCounter, problem.offset));
  try {
    return document.toJS({ maxAliasCount: options.maxAliasCount ?? MAX_YAML_ALIAS_COUNT }) as unknown;
  } catch (error) {
    // yaml throws a ReferenceError when alias expansion exceeds maxAliasCount.
    const reason = errorMessage(error);
    throw new YamlFileError(
      `${reason} (aliases expand to more than ${options.maxAliasCount ?? MAX_YAML_ALIAS_COUNT} times their anchors)`,
    );
  }
}
