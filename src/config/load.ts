/**
 * Loading configuration: the file named by `--config`, else `AUTOGROW_CONFIG`, else
 * /etc/docker-autogrow/config.yaml if it exists, else the embedded defaults. Errors name the key
 * path, the bad value and what is allowed, in one readable message ({@link ConfigError}).
 */
import type { z } from 'zod';
import { parseYamlBounded, readBoundedTextFile, YamlFileError } from './bounded-yaml.js';
import { configSchema, type Config } from './schema.js';

export const DEFAULT_CONFIG_PATH = '/etc/docker-autogrow/config.yaml';

/** Problems listed in one error; a file with thousands (1 MB of unknown keys) gets a count for the rest. */
export const MAX_PROBLEMS_SHOWN = 20;

/** A configuration that cannot be used; the CLI prints `message` and exits 2. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    message: string,
    readonly source: string,
    readonly problems: readonly string[] = [],
  ) {
    super(message);
  }
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let current: unknown = root;
  for (const key of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[key as string];
  }
  return current;
}

function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(top level)';
  return path
    .map((key, index) =>
      typeof key === 'number' ? `[${key}]` : index === 0 ? String(key) : `.${String(key)}`,
    )
    .join('');
}

function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * Turns zod issues into one line per problem: `defaults.step: 10X is not allowed; expected ...`.
 * At most `limit` lines, then one line counting the rest.
 */
export function describeIssues(
  issues: readonly z.core.$ZodIssue[],
  raw: unknown,
  limit = MAX_PROBLEMS_SHOWN,
): string[] {
  const lines: string[] = [];
  let total = 0;
  for (const issue of issues) total += issue.code === 'unrecognized_keys' ? issue.keys.length : 1;
  for (const issue of issues) {
    if (lines.length >= limit) break;
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        if (lines.length >= limit) break;
        const at = formatPath([...issue.path, key]);
        lines.push(
          `${at}: unknown key (value ${describeValue(valueAt(raw, [...issue.path, key]))}); remove it or check its spelling`,
        );
      }
      continue;
    }
    const value = valueAt(raw, issue.path);
    lines.push(`${formatPath(issue.path)}: ${describeValue(value)} is not allowed; ${issue.message}`);
  }
  if (total > lines.length) lines.push(`... and ${total - lines.length} more problems`);
  return lines;
}

/** Validates an already-parsed object (YAML document, or `{}` for the embedded defaults). */
export function parseConfigObject(raw: unknown, source: string): Config {
  const result = configSchema.safeParse(raw ?? {});
  if (result.success) return result.data;
  const problems = describeIssues(result.error.issues, raw);
  throw new ConfigError(`invalid configuration in ${source}:\n  ${problems.join('\n  ')}`, source, problems);
}

/** Parses YAML text (merge keys `<<: *base` supported) and validates it. */
export function parseConfigText(text: string, source: string): Config {
  let raw: unknown;
  try {
    raw = parseYamlBounded(text);
  } catch (error) {
    if (!(error instanceof YamlFileError)) throw error;
    throw new ConfigError(error.describeIn(source), source, [error.reason]);
  }
  return parseConfigObject(raw ?? {}, source);
}

export interface ConfigSource {
  /** Explicit file from `--config`. */
  flagPath?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** The file used when neither the flag nor the environment names one (if it exists). */
  defaultPath?: string;
}

export interface LoadedConfig {
  config: Config;
  /** Where it came from: a path, or `embedded defaults`. */
  source: string;
}

/** Resolves which file applies and loads it. A named file that is missing is an error. */
export function loadConfig(options: ConfigSource = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const named = options.flagPath ?? (env.AUTOGROW_CONFIG ? env.AUTOGROW_CONFIG : undefined);
  const candidate = named ?? options.defaultPath ?? DEFAULT_CONFIG_PATH;
  let text: string;
  try {
    // Bounded: refuses directories, FIFOs and devices without blocking, and files above 1 MiB.
    text = readBoundedTextFile(candidate);
  } catch (error) {
    if (!(error instanceof YamlFileError)) throw error;
    if (!named && error.details.code === 'ENOENT')
      return { config: parseConfigObject({}, 'embedded defaults'), source: 'embedded defaults' };
    throw new ConfigError(`cannot read configuration file ${candidate}: ${error.reason}`, candidate);
  }
  return { config: parseConfigText(text, candidate), source: candidate };
}
