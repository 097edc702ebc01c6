import { describe, expect, it } from 'vitest';
import { decideReclaim } from '../../src/policy/reclaim.js';
import { planLadder, selectRung } from '../../src/reclaim/select.js';
import type { ContainerFacts, ImageFacts, ReclaimInventory } from '../../src/contracts/reclaim.js';
import { configSchema } from '../../src/config/schema.js';

const HOUR = 3_600_000;
const NOW = Date.UTC(2026, 11, 3, 12);
const hex = (n: number) => n.toString(16).padStart(64, '0');

function image(n: number, tags: string[], ageHours: number, extra: Partial<ImageFacts> = {}): ImageFacts {
  return {
    id: `sha256:${hex(n)}`,
    parentId: null,
    repoTags: tags,
    createdAtMs: NOW - ageHours * HOUR,
    sizeBytes: n * 1000,
    labels: {},
    ...extra,
  };
}

function container(
  n: number,
  state: ContainerFacts['state'],
  imageN: number,
  ageHours: number,
): ContainerFacts {
  return {
    id: hex(1000 + n),
    name: `c${n}`,
    state,
    createdAtMs: NOW - ageHours * HOUR,
    imageId: `sha256:${hex(imageN)}`,
    labels: {},
    volumeNames: [],
  };
}

const inventory: ReclaimInventory = {
  images: [
    image(1, [], 5), // dangling, unused
    image(2, [], 1, { labels: { keep: 'yes' } }), // dangling with a keep label
    image(3, [], 10), // dangling, used by a stopped container
    image(4, ['app:old'], 400), // tagged, unused, old
    image(5, ['app:new'], 2), // tagged, unused, new
    image(6, ['base:1'], 500), // tagged, parent of 7
    image(7, [], 3, { parentId: `sha256:${hex(6)}` }), // dangling child of 6
  ],
  containers: [container(1, 'exited', 3, 48), container(2, 'running', 5, 100), container(3, 'exited', 5, 1)],
  buildCache: [
    { id: 'aaa', inUse: false, sizeBytes: 10, lastUsedAtMs: NOW - 30 * HOUR, description: 'old' },
    { id: 'bbb', inUse: true, sizeBytes: 20, lastUsedAtMs: NOW - 30 * HOUR, description: 'in use' },
    { id: 'ccc', inUse: false, sizeBytes: 30, lastUsedAtMs: NOW - HOUR, description: 'recent' },
  ],
  volumes: [
    { name: hex(77), labels: {}, createdAtMs: NOW },
    { name: 'pgdata', labels: {}, createdAtMs: NOW },
  ],
};

describe('reclaim selection (pure)', () => {
  it('never selects an image a container uses or another image is built on', () => {
    const ids = (kind: 'dangling-images' | 'unused-images') =>
      selectRung(kind === 'dangling-images' ? { kind } : { kind, olderThanMs: 0 }, inventory, NOW).map(
        (item) => item.id,
      );
    // oldest first: image 1 (5 h old), 7 (3 h), 2 (1 h)
    expect(ids('dangling-images')).toEqual([`sha256:${hex(1)}`, `sha256:${hex(7)}`, `sha256:${hex(2)}`]);
    expect(ids('dangling-images')).not.toContain(`sha256:${hex(3)}`);
    expect(ids('unused-images')).toEqual([`sha256:${hex(4)}`]); // 5 is used, 6 is a parent
  });

  it('applies ages and label filters', () => {
    const rung = { kind: 'dangling-images' as const, olderThanMs: 4 * HOUR, exceptLabels: { keep: '*' } };
    expect(selectRung(rung, inventory, NOW).map((item) => item.id)).toEqual([`sha256:${hex(1)}`]);
    expect(
      selectRung({ kind: 'dangling-images', labels: { keep: 'yes' } }, inventory, NOW).map((item) => item.id),
    ).toEqual([`sha256:${hex(2)}`]);
    expect(
      selectRung({ kind: 'unused-images', olderThanMs: 168 * HOUR }, inventory, NOW).map(
        (item) => item.references,
      ),
    ).toEqual([['app:old']]);
    expect(
      selectRung({ kind: 'build-cache', unusedForMs: 24 * HOUR }, inventory, NOW).map((i) => i.id),
    ).toEqual(['aaa']);
    expect(selectRung({ kind: 'build-cache' }, inventory, NOW).map((i) => i.id)).toEqual(['aaa', 'ccc']);
  });

  it('removes only stopped containers past the age, and only unmounted anonymous volumes unless named', () => {
    expect(
      selectRung({ kind: 'stopped-containers', olderThanMs: 24 * HOUR }, inventory, NOW).map((i) => i.name),
    ).toEqual(['c1']);
    expect(selectRung({ kind: 'volumes', named: false }, inventory, NOW).map((i) => i.id)).toEqual([hex(77)]);
    expect(selectRung({ kind: 'volumes', named: true }, inventory, NOW).map((i) => i.id)).toEqual(
      ['pgdata', hex(77)].sort(),
    );
  });

  it('shows a later rung what the earlier ones leave: containers first free their images', () => {
    const plan = planLadder(
      [{ kind: 'stopped-containers', olderThanMs: 24 * HOUR }, { kind: 'dangling-images' }],
      inventory,
      NOW,
    );
    expect(plan[0]!.items.map((item) => item.name)).toEqual(['c1']);
    expect(plan[1]!.items.map((item) => item.id)).toContain(`sha256:${hex(3)}`);
    // the other order keeps image 3 (its container still exists when the image rung runs)
    const reversed = planLadder(
      [{ kind: 'dangling-images' }, { kind: 'stopped-containers', olderThanMs: 24 * HOUR }],
      inventory,
      NOW,
    );
    expect(reversed[0]!.items.map((item) => item.id)).not.toContain(`sha256:${hex(3)}`);
  });
});

describe('reclaim trigger (pure)', () => {
  const settings = { threshold: 0.9, target: 0.8, cooldownMs: 10 * 60_000 };
  const history = { lastThresholdRunAtMs: null, lastRunLeftOverThreshold: false };
  it('runs only over the threshold and when growth is impossible', () => {
    const observe = (usedRatio: number, cannotGrowReason: string | null) =>
      decideReclaim(settings, { subject: 'data filesystem /d', usedRatio, cannotGrowReason }, history, NOW)
        .action;
    expect(observe(0.5, 'vg-exhausted')).toBe('none');
    expect(observe(0.95, null)).toBe('none');
    expect(observe(0.95, 'vg-exhausted')).toBe('reclaim');
    expect(observe(0.9, 'not-lvm')).toBe('reclaim');
  });
  it('waits the cooldown and reports exhaustion when the last run did not help', () => {
    const decision = decideReclaim(
      settings,
      { subject: 'd', usedRatio: 0.95, cannotGrowReason: 'max-size-reached' },
      { lastThresholdRunAtMs: NOW - 60_000, lastRunLeftOverThreshold: true },
      NOW,
    );
    expect(decision).toMatchObject({ action: 'cooldown', exhausted: true, untilMs: NOW + 9 * 60_000 });
  });
});

describe('reclaim config', () => {
  it('is off by default with build cache then dangling images', () => {
    const config = configSchema.parse({});
    expect(config.reclaim.enabled).toBe(false);
    expect(config.reclaim.ladder).toEqual([{ kind: 'build-cache' }, { kind: 'dangling-images' }]);
  });
  it('converts ages and refuses volumes unless allowed, and bad cron expressions', () => {
    const config = configSchema.parse({
      reclaim: {
        enabled: true,
        schedules: ['0 3 * * *'],
        ladder: [{ kind: 'stopped-containers', olderThan: '2h' }],
      },
    });
    expect(config.reclaim.ladder).toEqual([{ kind: 'stopped-containers', olderThanMs: 2 * HOUR }]);
    expect(() => configSchema.parse({ reclaim: { ladder: [{ kind: 'volumes' }] } })).toThrow(/allowVolumes/);
    expect(
      configSchema.parse({ reclaim: { allowVolumes: true, ladder: [{ kind: 'volumes' }] } }).reclaim.ladder,
    ).toEqual([{ kind: 'volumes', named: false }]);
    expect(() => configSchema.parse({ reclaim: { schedules: ['61 * * * *'] } })).toThrow(/cron/);
    expect(() => configSchema.parse({ reclaim: { ladder: [{ kind: 'everything' }] } })).toThrow();
  });
});
