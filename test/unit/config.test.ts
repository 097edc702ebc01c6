import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { ConfigError, loadConfig, parseConfigObject, parseConfigText } from '../../src/config/load.js';
import { configJsonSchemaText } from '../../src/config/json-schema.js';
import { configSchema } from '../../src/config/schema.js';

const repoRoot = path.resolve(import.meta.dirname, '..', '..');

function configErrorOf(text: string): ConfigError {
  try {
    parseConfigText(text, 'test.yaml');
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error(`expected a ConfigError for:\n${text}`);
}

describe('configuration', () => {
  it('runs with no file at all: embedded defaults in base units', () => {
    const config = parseConfigObject({}, 'embedded defaults');
    expect(config.interval).toBe(1000);
    expect(config.defaults.threshold).toBe(0.85);
    expect(config.defaults.step).toEqual({ kind: 'ratio', ratio: 0.2 });
    expect(config.defaults.minStep).toBe(1024 ** 3);
    expect(config.defaults.maxSize).toBe(100 * 1024 ** 3);
    expect(config.defaults.cooldown).toBe(120_000);
    expect(config.pool.reserve).toBe(0.15);
    expect(config.pool.grow.maxSize).toBe(2 * 1024 ** 4);
    expect(config.journal.path).toBe('/var/lib/docker-autogrow/journal.jsonl');
  });

  it('accepts human units', () => {
    const config = parseConfigText(
      'interval: 500ms\ndefaults:\n  step: 10G\n  maxSize: 1.5T\n  threshold: 90%\n  cooldown: 1m30s\n',
      'x',
    );
    expect(config.interval).toBe(500);
    expect(config.defaults.step).toEqual({ kind: 'bytes', bytes: 10 * 1024 ** 3 });
    expect(config.defaults.maxSize).toBe(Math.round(1.5 * 1024 ** 4));
    expect(config.defaults.threshold).toBe(0.9);
    expect(config.defaults.cooldown).toBe(90_000);
  });

  it.each([
    ['an unknown key', 'bogus: 1\n', 'bogus', '1'],
    ['an unknown nested key', 'pool:\n  reserv: 10%\n', 'pool.reserv', '"10%"'],
    ['a bad size unit', 'defaults:\n  step: 10X\n', 'defaults.step', '"10X"'],
    ['a percentage above 100%', 'defaults:\n  threshold: 150%\n', 'defaults.threshold', '"150%"'],
    ['a negative duration', 'defaults:\n  cooldown: -5m\n', 'defaults.cooldown', '"-5m"'],
    ['a guard look loop', 'guard:\n  minInterval: 0s\n', 'guard.minInterval', '"0s"'],
    ['a zero peak write rate', 'guard:\n  peakWriteRate: 0G/s\n', 'guard.peakWriteRate', '"0G/s"'],
    [
      'a bad size in a rule',
      'rules:\n  - match: { name: "pg-*" }\n    maxSize: lots\n',
      'rules[0].maxSize',
      '"lots"',
    ],
  ])('rejects %s naming the key path and the value', (_what, text, keyPath, value) => {
    const error = configErrorOf(text);
    expect(error.message).toContain(keyPath);
    expect(error.message).toContain(value);
    expect(error.message).not.toMatch(/\n\s+at /); // no stack trace in the message
  });

  it('rejects a YAML syntax error with its position', () => {
    const error = configErrorOf('defaults:\n  step: [10G\n');
    expect(error.message).toMatch(/invalid YAML in test\.yaml at line \d+, column \d+/);
  });

  it('rejects duplicate keys', () => {
    expect(() => parseConfigText('interval: 1s\ninterval: 2s\n', 'x')).toThrow(ConfigError);
  });

  it('loads --config over AUTOGROW_CONFIG over the default path', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'agcfg-'));
    const flagFile = path.join(dir, 'flag.yaml');
    const envFile = path.join(dir, 'env.yaml');
    writeFileSync(flagFile, 'interval: 3s\n');
    writeFileSync(envFile, 'interval: 4s\n');
    const missingDefault = path.join(dir, 'none.yaml');
    expect(
      loadConfig({ flagPath: flagFile, env: { AUTOGROW_CONFIG: envFile }, defaultPath: missingDefault })
        .config.interval,
    ).toBe(3000);
    expect(
      loadConfig({ env: { AUTOGROW_CONFIG: envFile }, defaultPath: missingDefault }).config.interval,
    ).toBe(4000);
    const fallback = loadConfig({ env: {}, defaultPath: missingDefault });
    expect(fallback.source).toBe('embedded defaults');
    expect(() => loadConfig({ flagPath: missingDefault, env: {} })).toThrow(/cannot read configuration file/);
  });
});

describe('config/example.yaml', () => {
  const exampleText = readFileSync(path.join(repoRoot, 'config', 'example.yaml'), 'utf8');

  it('is a valid configuration', () => {
    expect(() => parseConfigText(exampleText, 'config/example.yaml')).not.toThrow();
  });

  it('documents every key of the schema', () => {
    const example = parseDocument(exampleText).toJS() as Record<string, unknown>;
    const missingKeys: string[] = [];
    const walk = (shape: Record<string, unknown>, value: unknown, prefix: string) => {
      for (const [key, child] of Object.entries(shape)) {
        const keyPath = prefix ? `${prefix}.${key}` : key;
        const present = value && typeof value === 'object' && key in (value as Record<string, unknown>);
        // An optional key with no default (metrics.webConfigFile) is documented commented out.
        const commentedOut = new RegExp(`^\\s*# ${key}: `, 'm').test(exampleText);
        if (!present && commentedOut) continue;
        if (!present) {
          missingKeys.push(keyPath);
          continue;
        }
        const inner = objectShapeOf(child);
        const childValue = (value as Record<string, unknown>)[key];
        if (inner) walk(inner, childValue, keyPath);
        if (Array.isArray(childValue)) {
          const elementShape = arrayElementShapeOf(child);
          if (elementShape) walk(elementShape, childValue[0], `${keyPath}[0]`);
        }
      }
    };
    walk(configSchema.shape as Record<string, unknown>, example, '');
    expect(missingKeys).toEqual([]);
  });
});

describe('README configuration reference', () => {
  it('names every key of the schema', () => {
    const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
    const section = readme.slice(
      readme.indexOf('<!-- config:start -->'),
      readme.indexOf('<!-- config:end -->'),
    );
    const missingKeys: string[] = [];
    const walk = (shape: Record<string, unknown>, prefix: string) => {
      for (const [key, child] of Object.entries(shape)) {
        const keyPath = prefix ? `${prefix}.${key}` : key;
        const inner = objectShapeOf(child);
        const element = arrayElementShapeOf(child);
        if (inner) walk(inner, keyPath);
        else if (element) {
          if (!section.includes(`\`${keyPath}[]\``)) missingKeys.push(`${keyPath}[]`);
          // rule fields repeat the defaults; the reference names the rule-only ones
          walk({ name: element.name, match: element.match }, `${keyPath}[]`);
        } else if (keyPath === 'binaries') {
          if (!section.includes('`binaries.<tool>`')) missingKeys.push(keyPath);
        } else if (!section.includes(`\`${keyPath}\``)) missingKeys.push(keyPath);
      }
    };
    walk(configSchema.shape as Record<string, unknown>, '');
    expect(missingKeys).toEqual([]);
  });
});

describe('config/docker-autogrow.schema.json', () => {
  it('is in sync with the zod schema (run `npm run schema` to regenerate)', () => {
    const committed = readFileSync(path.join(repoRoot, 'config', 'docker-autogrow.schema.json'), 'utf8');
    expect(committed).toBe(configJsonSchemaText());
  });
});

/** Unwraps zod wrappers (prefault, optional, pipe) to an object shape, if it is an object. */
function objectShapeOf(schema: unknown): Record<string, unknown> | null {
  let current = schema as { def?: Record<string, unknown>; shape?: Record<string, unknown> } | undefined;
  for (let depth = 0; depth < 10 && current; depth += 1) {
    if (current.shape && typeof current.shape === 'object') return current.shape;
    const def = current.def as { innerType?: unknown; in?: unknown } | undefined;
    current = (def?.innerType ?? def?.in) as typeof current;
  }
  return null;
}

function arrayElementShapeOf(schema: unknown): Record<string, unknown> | null {
  let current = schema as { def?: Record<string, unknown> } | undefined;
  for (let depth = 0; depth < 10 && current; depth += 1) {
    const def = current.def as
      { type?: string; element?: unknown; innerType?: unknown; in?: unknown } | undefined;
    if (def?.type === 'array') return objectShapeOf(def.element);
    current = (def?.innerType ?? def?.in) as typeof current;
  }
  return null;
}
