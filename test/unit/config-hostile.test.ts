/**
 * Hostile configuration files: every one gives a ConfigError that names the file (the CLI exits 2)
 * in bounded time and memory. Found by trying the project as a hostile tester would (issue 18):
 * `config check /dev/zero` grew to 16.8 GB, a FIFO hung forever, a 50 MB rule list ran past 120 s
 * at 4 GB, 1 MB of unknown keys took 119 s and printed 73,019 lines, an alias bomb exited 1
 * without the file name, and `interval: 0s` / `100000000h` passed `config check`.
 *
 * Timings are never asserted tightly (a shared 2-core machine): bounds are generous (10 s where
 * the old code took minutes or never ended) and the memory bound is a V8 heap cap on a child
 * process, which fails the run with a crash instead of a number to compare.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_YAML_FILE_BYTES, parseYamlBounded, readBoundedTextFile } from '../../src/config/bounded-yaml.js';
import { ConfigError, loadConfig, MAX_PROBLEMS_SHOWN, parseConfigText } from '../../src/config/load.js';
import { MAX_DURATION_MS } from '../../src/config/schema.js';
import { webConfigFileProblem } from '../../src/http/web-config.js';

const repoRoot = path.resolve(import.meta.dirname, '..', '..');
const mainJs = path.join(repoRoot, 'dist', 'src', 'main.js');
const dir = mkdtempSync(path.join(tmpdir(), 'agcfg-hostile-'));

function file(name: string, text: string): string {
  const full = path.join(dir, name);
  writeFileSync(full, text);
  return full;
}

function configErrorOf(action: () => unknown): ConfigError {
  try {
    action();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

function textErrorOf(text: string): ConfigError {
  return configErrorOf(() => parseConfigText(text, 'hostile.yaml'));
}

function timed<T>(action: () => T): { result: T; ms: number } {
  const started = performance.now();
  const result = action();
  return { result, ms: performance.now() - started };
}

/** The alias bomb ("billion laughs"): nine levels of nine aliases, 9^7 strings if expanded. */
const ALIAS_BOMB = [
  'a: &a ["x","x","x","x","x","x","x","x","x"]',
  'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
  'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
  'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
  'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
  'f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]',
  'g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]',
  '',
].join('\n');

/** About `bytes` of text: `unknownKey123: 1` lines. */
function unknownKeys(bytes: number): { text: string; count: number } {
  const lines: string[] = [];
  let size = 0;
  for (let index = 0; size < bytes; index++) {
    const line = `unknownKey${index}: 1\n`;
    if (size + line.length > bytes) break;
    lines.push(line);
    size += line.length;
  }
  return { text: lines.join(''), count: lines.length };
}

describe('config files that are not files', () => {
  it.each([
    ['a directory', () => path.join(dir, 'a-dir'), /a directory, not a regular file/],
    ['/dev/zero (never ends)', () => '/dev/zero', /a character device, not a regular file/],
    ['a missing file', () => path.join(dir, 'missing.yaml'), /ENOENT/],
  ])('%s: a ConfigError naming the file', (_what, pathOf, reason) => {
    mkdirSync(path.join(dir, 'a-dir'), { recursive: true });
    const named = pathOf();
    const error = configErrorOf(() => loadConfig({ flagPath: named, env: {} }));
    expect(error.message).toContain(`cannot read configuration file ${named}`);
    expect(error.message).toMatch(reason);
  });

  it('a FIFO is refused without blocking (no writer ever opens it)', () => {
    const fifo = path.join(dir, 'config.fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    // A blocking open or read would hang this test until vitest's timeout.
    const error = configErrorOf(() => loadConfig({ flagPath: fifo, env: {} }));
    expect(error.message).toMatch(/a FIFO \(named pipe\), not a regular file/);
  });

  it('a file above 1 MiB is refused before it is parsed; 1 MiB exactly is read', () => {
    const justRight = file('just-right.yaml', `# ${'x'.repeat(MAX_YAML_FILE_BYTES - 3)}\n`);
    expect(readBoundedTextFile(justRight)).toHaveLength(MAX_YAML_FILE_BYTES);
    const tooLarge = file('too-large.yaml', `# ${'x'.repeat(MAX_YAML_FILE_BYTES)}\n`);
    const error = configErrorOf(() => loadConfig({ flagPath: tooLarge, env: {} }));
    expect(error.message).toMatch(/too-large\.yaml: too large \(1024 KiB; at most 1024 KiB\)/);
  });

  it('the default path, when it is a directory, is an error (only a missing default falls back)', () => {
    mkdirSync(path.join(dir, 'default-dir'), { recursive: true });
    expect(() => loadConfig({ env: {}, defaultPath: path.join(dir, 'default-dir') })).toThrow(ConfigError);
    expect(loadConfig({ env: {}, defaultPath: path.join(dir, 'nothing-here.yaml') }).source).toBe(
      'embedded defaults',
    );
  });
});

describe('YAML that expands, nests or repeats', () => {
  it('an alias bomb is a ConfigError naming the file, not an exit 1', () => {
    const error = textErrorOf(ALIAS_BOMB);
    expect(error.message).toMatch(/^invalid YAML in hostile\.yaml: Excessive alias count/);
  });

  it.each([
    ['500,000 flow brackets', `a: ${'['.repeat(500_000)}`, /deeper than 256 levels/],
    ['500,000 nested flow maps', `a: ${'{b: '.repeat(200_000)}1${'}'.repeat(200_000)}`, /deeper than 256/],
    ['500,000 compact sequence indicators', `${'- '.repeat(500_000)}x\n`, /deeper than 256 levels/],
    [
      '1,400 levels of indentation',
      Array.from({ length: 1400 }, (_, depth) => `${' '.repeat(depth)}k:\n`).join(''),
      /deeper than 256 levels/,
    ],
    [
      '100 nested maps (parses, then measured)',
      `a: ${'{b: '.repeat(100)}1${'}'.repeat(100)}\n`,
      /deeper than 64/,
    ],
  ])('%s: refused with a position, in bounded time', (_what, text, reason) => {
    const { result: error, ms } = timed(() => textErrorOf(text));
    expect(error.message).toMatch(/^invalid YAML in hostile\.yaml at line \d+, column \d+: /);
    expect(error.message).toMatch(reason);
    // Generous: the stack overflow path took 7-10 s and 530 MB for the first three before.
    expect(ms).toBeLessThan(10_000);
  });

  it('depth is counted through aliases without expanding them', () => {
    const deep = `${'['.repeat(40)}1${']'.repeat(40)}`;
    expect(() => parseYamlBounded(`a: &a ${deep}\n`)).not.toThrow();
    const error = configErrorOf(() =>
      parseConfigText(
        `a: &a ${deep}\nb: &b [[[[[[[[[[[[[[[[[[[[[[[[[[*a]]]]]]]]]]]]]]]]]]]]]]]]]]\n`,
        'x.yaml',
      ),
    );
    expect(error.message).toMatch(/deeper than 64 levels \(through the alias \*a\)/);
  });

  it('a duplicate key is named with its line, and 50,000 of them cost linear time', () => {
    expect(textErrorOf('interval: 1s\ndryRun: true\ninterval: 2s\n').message).toBe(
      'invalid YAML in hostile.yaml at line 3, column 1: duplicate key "interval"',
    );
    // yaml's own check compares every key with all earlier ones; 50,000 distinct keys and a
    // duplicate at the end was quadratic. Generous bound, see the header.
    const keys = Array.from({ length: 50_000 }, (_, index) => `k${index}: 1\n`).join('');
    const { result: error, ms } = timed(() => textErrorOf(`${keys}k0: 2\n`));
    expect(error.message).toMatch(/at line 50001, column 1: duplicate key "k0"/);
    expect(ms).toBeLessThan(10_000);
  });

  it('1 MB of unknown keys: at most 20 problems listed and a count of the rest, in linear time', () => {
    const { text, count } = unknownKeys(1_000_000);
    expect(count).toBeGreaterThan(50_000);
    const { result: error, ms } = timed(() => textErrorOf(text));
    expect(error.problems).toHaveLength(MAX_PROBLEMS_SHOWN + 1);
    expect(error.problems.at(-1)).toBe(`... and ${count - MAX_PROBLEMS_SHOWN} more problems`);
    expect(error.message.split('\n')).toHaveLength(MAX_PROBLEMS_SHOWN + 2);
    expect(ms).toBeLessThan(10_000); // 119 s before
  });

  it('a huge rule list: more than 1000 rules is refused (each rule costs every container every pass)', () => {
    const rules = (count: number) =>
      `rules:\n${Array.from({ length: count }, (_, index) => `  - match: { name: "c${index}-*" }\n`).join('')}`;
    expect(parseConfigText(rules(1000), 'x').rules).toHaveLength(1000);
    expect(textErrorOf(rules(1001)).message).toMatch(/rules: .* at most 1000 rules/);
    // Far more rules (the most that fit in 1 MiB is ~30,000): refused with one problem, not one per rule.
    const many = rules(5000);
    const { result: error, ms } = timed(() => textErrorOf(many));
    expect(error.problems).toHaveLength(1);
    expect(ms).toBeLessThan(10_000);
  });
});

describe('YAML merge keys are supported', () => {
  it('a rule built from another with <<: *anchor keeps its own keys over the merged ones', () => {
    const config = parseConfigText(
      [
        'rules:',
        '  - &db',
        '    match: { image: "postgres:*" }',
        '    maxSize: 200G',
        '    step: 20G',
        '  - <<: *db',
        '    match: { image: "mysql:*" }',
        '',
      ].join('\n'),
      'x',
    );
    expect(config.rules[1]).toEqual({ ...config.rules[0], match: { image: 'mysql:*' } });
    expect(config.rules[1]?.maxSize).toBe(200 * 1024 ** 3);
  });

  it('a merge key where no mapping fits is still a readable error', () => {
    expect(textErrorOf('interval: 1s\n<<: { bogus: 1 }\n').message).toMatch(/bogus: unknown key/);
  });
});

describe('bounded durations', () => {
  it.each([
    ['interval: 0s', 'interval', /from 100ms to 24d/],
    ['interval: 100000000h', 'interval', /from 100ms to 24d \(2\^31-1 ms/],
    ['resyncInterval: 0s', 'resyncInterval', /from 10s to 24d/],
    ['commandTimeout: 0s', 'commandTimeout', /from 100ms/],
    ['docker: { timeout: 0s }', 'docker.timeout', /from 100ms/],
    ['defaults: { cooldown: 25d }', 'defaults.cooldown', /at most 24d/],
    ['backoff: { max: 9999999999999999999999999h }', 'backoff.max', /at most 24d/],
    ['prediction: { horizon: 30d }', 'prediction.horizon', /at most 24d/],
  ])('%s fails with a clear error', (text, keyPath, bound) => {
    const error = textErrorOf(`${text}\n`);
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toMatch(new RegExp(`^${keyPath.replace('.', '\\.')}: `));
    expect(error.problems[0]).toMatch(bound);
  });

  it('the bounds themselves are allowed', () => {
    const config = parseConfigText(
      'interval: 100ms\nresyncInterval: 10s\ndefaults: { cooldown: 0s }\nbackoff: { max: 24d }\n',
      'x',
    );
    expect(config.interval).toBe(100);
    expect(config.resyncInterval).toBe(10_000);
    expect(config.defaults.cooldown).toBe(0);
    expect(config.backoff.max).toBeLessThanOrEqual(MAX_DURATION_MS);
  });
});

describe('values checked at config check, not at run', () => {
  it.each([
    ['metrics: { listen: "127.0.0.1:99999" }', /metrics\.listen: .*port 0-65535/],
    ['metrics: { listen: "not-a-host" }', /metrics\.listen: .*expected host:port/],
    ['docker: { socketPath: "tcp://1.2.3.4:2375" }', /docker\.socketPath: .*set docker\.host or DOCKER_HOST/],
    ['docker: { socketPath: "1.2.3.4:2375" }', /docker\.socketPath: .*not a unix socket path/],
    ['docker: { socketPath: "unix:///run/docker.sock" }', /without unix:\/\/, e\.g\. \/run\/docker\.sock/],
    ['docker: { socketPath: "docker.sock" }', /docker\.socketPath: .*an absolute path/],
    ['binaries: { rm: /bin/rm }', /binaries\.rm: unknown key/],
    ['binaries: { btrfs: "$(reboot)" }', /binaries\.btrfs: .*an absolute path/],
  ])('%s is refused', (text, message) => {
    expect(textErrorOf(`${text}\n`).problems[0]).toMatch(message);
  });

  it('the usual values pass', () => {
    const config = parseConfigText(
      'metrics: { listen: "[::1]:9839" }\ndocker: { socketPath: /run/docker.sock }\nbinaries: { btrfs: /usr/local/bin/btrfs }\n',
      'x',
    );
    expect(config.docker.socketPath).toBe('/run/docker.sock');
    expect(config.binaries.btrfs).toBe('/usr/local/bin/btrfs');
  });

  it('a webConfigFile that does not exist is reported (config check and doctor warn about it)', () => {
    expect(webConfigFileProblem(path.join(dir, 'no-web-config.yml'))).toMatch(
      /cannot read web config .*ENOENT/,
    );
    expect(webConfigFileProblem('/dev/zero')).toMatch(/a character device, not a regular file/);
    expect(webConfigFileProblem(file('web.yml', 'basic_auth_users: {}\n'))).toBeNull();
  });

  it('the shipped example does not set webConfigFile (it was a file that does not exist)', () => {
    const example = parseConfigText(readFileSync(path.join(repoRoot, 'config', 'example.yaml'), 'utf8'), 'x');
    expect(example.metrics.webConfigFile).toBeUndefined();
  });
});

describe('the CLI on hostile files: exit 2 in bounded time and memory', () => {
  beforeAll(() => {
    if (!existsSync(mainJs)) {
      const build = spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: repoRoot, encoding: 'utf8' });
      if (build.status !== 0) throw new Error(`build failed:\n${build.stdout}${build.stderr}`);
    }
  });

  /**
   * The heap cap is the memory bound: past it V8 aborts (exit 134), which fails the test. 128 MB
   * is generous for a 1 MiB file and far below the 4-17 GB the old code reached.
   */
  function configCheck(target: string) {
    const result = spawnSync(
      process.execPath,
      ['--max-old-space-size=128', mainJs, 'config', 'check', target],
      {
        encoding: 'utf8',
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
        timeout: 30_000, // a FIFO that blocks would hang: killed, status null, the test fails
      },
    );
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  it.each([
    ['/dev/zero', () => '/dev/zero'],
    [
      'a FIFO',
      () => {
        const fifo = path.join(dir, 'cli.fifo');
        if (!existsSync(fifo)) expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
        return fifo;
      },
    ],
    ['an alias bomb', () => file('bomb.yaml', ALIAS_BOMB)],
    [
      'a 20 MB rule list',
      () => file('rules.yaml', `rules:\n${'  - match: { name: "x" }\n'.repeat(800_000)}`),
    ],
  ])('%s', (_what, target) => {
    const named = target();
    const { code, stderr } = configCheck(named);
    expect(code).toBe(2);
    expect(stderr).toContain(named);
    expect(stderr.split('\n').length).toBeLessThanOrEqual(MAX_PROBLEMS_SHOWN + 3);
  });

  it('config check warns when metrics.webConfigFile does not exist', () => {
    const missing = path.join(dir, 'missing-web-config.yml');
    const { code, stdout } = configCheck(file('with-web.yaml', `metrics:\n  webConfigFile: ${missing}\n`));
    expect(code).toBe(0);
    expect(stdout).toMatch(
      new RegExp(
        `warning: metrics.webConfigFile: cannot read web config ${missing}: ENOENT \\(run will exit 1\\)`,
      ),
    );
  });
});
