import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseConfigObject } from '../../src/config/load.js';
import { estimateFillRate, timeToFullSeconds } from '../../src/policy/fill-rate.js';
import { globMatches } from '../../src/policy/glob.js';
import { lintPolicyConfig, resolvePolicy, type PolicySubject } from '../../src/policy/resolve.js';
import { computeTarget } from '../../src/policy/sizing.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

function subject(overrides: Partial<PolicySubject> = {}): PolicySubject {
  return { id: 'x', name: 'web', image: 'nginx:1.27', labels: {}, ...overrides };
}

describe('glob', () => {
  it.each`
    glob            | text                           | matches
    ${'pg-*'}       | ${'pg-main'}                   | ${true}
    ${'pg-*'}       | ${'my-pg-main'}                | ${false}
    ${'postgres:*'} | ${'postgres:16.2'}             | ${true}
    ${'*/redis:*'}  | ${'docker.io/library/redis:7'} | ${true}
    ${'web-?'}      | ${'web-1'}                     | ${true}
    ${'web-?'}      | ${'web-10'}                    | ${false}
    ${'a.b'}        | ${'axb'}                       | ${false}
    ${'(x)+[y]'}    | ${'(x)+[y]'}                   | ${true}
    ${'*'}          | ${''}                          | ${true}
    ${'a**b'}       | ${'a/x/b'}                     | ${true}
  `('$glob vs $text: $matches', ({ glob, text, matches }) => {
    expect(globMatches(glob, text)).toBe(matches);
  });
});

it('agrees with an anchored regular expression on small inputs', () => {
  const reference = (glob: string) =>
    new RegExp(
      `^${[...glob].map((char) => (char === '*' ? '.*' : char === '?' ? '.' : char)).join('')}$`,
      's',
    );
  fc.assert(
    fc.property(
      fc.string({ unit: fc.constantFrom('a', 'b', '*', '?'), maxLength: 6 }),
      fc.string({ unit: fc.constantFrom('a', 'b'), maxLength: 8 }),
      (glob, text) => {
        expect(globMatches(glob, text)).toBe(reference(glob).test(text));
      },
    ),
    { numRuns: 2000 },
  );
});

it('matches a hostile many-star glob against a long name quickly', () => {
  const startedMs = performance.now();

  expect(globMatches('*a*a*a*a*a*a*a*b', 'a'.repeat(128))).toBe(false);
  expect(performance.now() - startedMs).toBeLessThan(1000);
});

describe('resolvePolicy', () => {
  const config = parseConfigObject(
    {
      rules: [
        { name: 'labelled', match: { labels: { tier: '*', env: 'prod' } }, threshold: '75%' },
        { name: 'big', match: { name: 'big-*', image: 'postgres:*' }, minStep: '60G' },
      ],
    },
    'test',
  );

  it('needs every label of a rule, with "*" matching any value', () => {
    expect(resolvePolicy(config, subject({ labels: { tier: 'db', env: 'prod' } })).ruleName).toBe('labelled');
    expect(resolvePolicy(config, subject({ labels: { tier: 'db', env: 'dev' } })).ruleName).toBe('defaults');
    expect(resolvePolicy(config, subject({ labels: { env: 'prod' } })).ruleName).toBe('defaults');
  });

  it('needs both name and image when a rule sets both', () => {
    expect(resolvePolicy(config, subject({ name: 'big-1', image: 'postgres:16' })).ruleName).toBe('big');
    expect(resolvePolicy(config, subject({ name: 'big-1', image: 'mysql:8' })).ruleName).toBe('defaults');
  });

  it('warns and caps when a rule sets minStep above maxStep', () => {
    const resolved = resolvePolicy(config, subject({ name: 'big-1', image: 'postgres:16' }));

    expect(resolved.settings.minStep).toBe(50 * GiB);
    expect(resolved.warnings).toEqual([expect.stringMatching(/minStep .* is above maxStep/)]);
  });

  it('keeps the rule name as matchedRuleName when labels override', () => {
    const resolved = resolvePolicy(
      config,
      subject({ labels: { tier: 'db', env: 'prod', 'autogrow.step': '5G', 'autogrow.enable': 'no' } }),
    );

    expect(resolved).toMatchObject({
      ruleName: 'label',
      matchedRuleName: 'labelled',
      settings: { threshold: 0.75, step: { kind: 'bytes', bytes: 5 * GiB }, enabled: false },
      warnings: [],
    });
  });

  it.each`
    label                   | value
    ${'autogrow.threshold'} | ${'0%'}
    ${'autogrow.threshold'} | ${'85'}
    ${'autogrow.step'}      | ${'-1G'}
    ${'autogrow.max-size'}  | ${'0'}
    ${'autogrow.cooldown'}  | ${'soon'}
    ${'autogrow.enable'}    | ${'disabled'}
  `('ignores $label=$value with a warning naming the label and value', ({ label, value }) => {
    const resolved = resolvePolicy(config, subject({ labels: { [label]: value } }));

    expect(resolved.ruleName).toBe('defaults');
    expect(resolved.settings).toEqual(config.defaults);
    expect(resolved.warnings).toEqual([
      expect.stringContaining(`label ${label}=${JSON.stringify(value)} ignored`),
    ]);
  });
});

describe('lintPolicyConfig', () => {
  it('flags rules shadowed by a match-everything rule and inconsistent steps', () => {
    const config = parseConfigObject(
      {
        rules: [
          { name: 'all', match: {}, threshold: '80%' },
          { name: 'never', match: { name: 'x' }, minStep: '2G', maxStep: '1G' },
        ],
      },
      'test',
    );

    expect(lintPolicyConfig(config)).toEqual([
      'never: never applies, all matches every container first',
      'never: minStep is above maxStep; maxStep is used as the minimum',
    ]);
  });

  it('is quiet for the embedded defaults', () => {
    expect(lintPolicyConfig(parseConfigObject({}, 'test'))).toEqual([]);
  });
});

describe('fill rate', () => {
  const T0 = 1_000_000;

  it('measures a steady fill over the window', () => {
    const samples = [0, 1, 2, 3, 4].map((second) => ({
      atMs: T0 + second * 1000,
      usedBytes: second * 10 * MiB,
      sizeBytes: null,
    }));

    expect(estimateFillRate(samples, T0 + 4000, 20_000)).toEqual({
      bytesPerSecond: 10 * MiB,
      sampleCount: 5,
    });
  });

  it('catches a burst that the window slope would dilute', () => {
    const flat = Array.from({ length: 20 }, (_, second) => ({
      atMs: T0 + second * 1000,
      usedBytes: GiB,
      sizeBytes: null,
    }));
    const samples = [...flat, { atMs: T0 + 20_000, usedBytes: GiB + 500 * MiB, sizeBytes: null }];

    expect(estimateFillRate(samples, T0 + 20_000, 30_000).bytesPerSecond).toBe(500 * MiB);
  });

  it('ignores samples outside the window, is never negative, and needs two samples', () => {
    const old = { atMs: T0 - 60_000, usedBytes: 0, sizeBytes: null };
    const shrinking = [
      { atMs: T0, usedBytes: 5 * GiB, sizeBytes: null },
      { atMs: T0 + 1000, usedBytes: 4 * GiB, sizeBytes: null },
    ];

    expect(estimateFillRate([old, shrinking[1]!], T0 + 1000, 20_000).bytesPerSecond).toBeNull();
    expect(estimateFillRate(shrinking, T0 + 1000, 20_000).bytesPerSecond).toBe(0);
  });

  it('does not divide by a tiny interval between two close samples', () => {
    const samples = [
      { atMs: T0, usedBytes: 0, sizeBytes: null },
      { atMs: T0 + 1000, usedBytes: 10 * MiB, sizeBytes: null },
      { atMs: T0 + 1005, usedBytes: 11 * MiB, sizeBytes: null },
    ];

    expect(estimateFillRate(samples, T0 + 1005, 20_000).bytesPerSecond).toBeCloseTo((11 * MiB) / 1.005, 0);
  });

  it('gives time to full, 0 when full, null when not filling', () => {
    expect(timeToFullSeconds(9 * GiB, 10 * GiB, 100 * MiB)).toBeCloseTo(10.24, 2);
    expect(timeToFullSeconds(10 * GiB, 10 * GiB, null)).toBe(0);
    expect(timeToFullSeconds(1, 10, 0)).toBeNull();
  });
});

describe('computeTarget', () => {
  const settings = parseConfigObject({}, 'test').defaults;

  it('is a no-op at or above maxSize', () => {
    expect(
      computeTarget({
        sizeBytes: 100 * GiB,
        usedBytes: 99 * GiB,
        settings,
        bytesPerSecond: null,
        horizonMs: 30_000,
      }),
    ).toEqual({
      toBytes: 100 * GiB,
      limitedBy: 'max-size',
    });
  });

  it('leaves a sustained writer with two horizons of room', () => {
    const rate = 100 * MiB;
    const target = computeTarget({
      sizeBytes: 10 * GiB,
      usedBytes: 9 * GiB,
      settings,
      bytesPerSecond: rate,
      horizonMs: 30_000,
    });

    expect(target.limitedBy).toBe('predicted-fill');
    expect(target.toBytes - 9 * GiB).toBeGreaterThanOrEqual(2 * 30 * rate);
    expect(target.toBytes % MiB).toBe(0);
  });
});
