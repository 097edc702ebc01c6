/**
 * The `reclaim` section of the configuration (src/config/schema.ts): the opt-in prune ladder run
 * when the data filesystem (or a pool) is full and cannot grow, and on cron schedules. Its own
 * file so the schema stays one screen per concern; it takes the unit helpers from schema.ts to
 * avoid an import cycle.
 */
import { z } from 'zod';
import type { ReclaimRung } from '../contracts/reclaim.js';
import { cronExpressionProblem } from '../schedule/cron.js';

type Unit = () => z.ZodType<number, unknown>;
type Duration = (bounds?: { minMs?: number; maxMs?: number }) => z.ZodType<number, string>;

const labelFilter = () =>
  z
    .record(z.string().min(1), z.string())
    .optional()
    .meta({ description: 'label: value pairs (value "*" matches any)' });

export function reclaimSchema(percentRatio: Unit, durationMs: Duration) {
  const rung = z.discriminatedUnion('kind', [
    z.strictObject({
      kind: z.literal('build-cache'),
      unusedFor: durationMs().optional().meta({ description: 'only cache records unused this long' }),
    }),
    z.strictObject({
      kind: z.literal('dangling-images'),
      olderThan: durationMs().optional().meta({ description: 'only images created this long ago' }),
      labels: labelFilter(),
      exceptLabels: labelFilter(),
    }),
    z.strictObject({
      kind: z.literal('unused-images'),
      olderThan: durationMs().prefault('168h').meta({
        description:
          'tagged images no container uses, created this long ago (Docker records no last-use time)',
      }),
      labels: labelFilter(),
      exceptLabels: labelFilter(),
    }),
    z.strictObject({
      kind: z.literal('stopped-containers'),
      olderThan: durationMs().prefault('24h').meta({ description: 'only containers created this long ago' }),
      labels: labelFilter(),
      exceptLabels: labelFilter(),
    }),
    z.strictObject({
      kind: z.literal('volumes'),
      named: z
        .boolean()
        .prefault(false)
        .meta({ description: 'also named volumes (default: only anonymous ones)' }),
      labels: labelFilter(),
      exceptLabels: labelFilter(),
    }),
  ]);
  const toRung = (input: z.output<typeof rung>): ReclaimRung => {
    const labels = 'labels' in input && input.labels ? { labels: input.labels } : {};
    const except = 'exceptLabels' in input && input.exceptLabels ? { exceptLabels: input.exceptLabels } : {};
    switch (input.kind) {
      case 'build-cache':
        return {
          kind: input.kind,
          ...(input.unusedFor !== undefined ? { unusedForMs: input.unusedFor } : {}),
        };
      case 'dangling-images':
        return {
          kind: input.kind,
          ...(input.olderThan !== undefined ? { olderThanMs: input.olderThan } : {}),
          ...labels,
          ...except,
        };
      case 'unused-images':
      case 'stopped-containers':
        return { kind: input.kind, olderThanMs: input.olderThan, ...labels, ...except };
      case 'volumes':
        return { kind: input.kind, named: input.named, ...labels, ...except };
    }
  };
  return z
    .strictObject({
      enabled: z.boolean().prefault(false).meta({
        description:
          'run the prune ladder when the data filesystem (or pool) is over threshold and cannot grow, and on the schedules',
      }),
      threshold: percentRatio()
        .prefault('90%')
        .meta({ description: 'run when bytes used >= this share and growth is impossible' }),
      target: percentRatio()
        .prefault('80%')
        .meta({ description: 'a threshold run stops climbing once bytes used are below this share' }),
      cooldown: durationMs().prefault('10m').meta({ description: 'between two threshold-triggered runs' }),
      schedules: z
        .array(
          z.string().superRefine((expression, ctx) => {
            const problem = cronExpressionProblem(expression);
            if (problem) ctx.addIssue({ code: 'custom', message: `invalid cron expression: ${problem}` });
          }),
        )
        .max(16)
        .prefault([])
        .meta({ description: 'cron expressions (`0 3 * * *`) at which the whole ladder runs' }),
      timezone: z
        .string()
        .min(1)
        .optional()
        .meta({ description: "IANA zone of the schedules (default: the host's)" }),
      allowVolumes: z
        .boolean()
        .prefault(false)
        .meta({ description: 'permit a `volumes` rung (volumes hold data: off unless you mean it)' }),
      ladder: z
        .array(rung)
        .min(1)
        .max(16)
        .prefault([{ kind: 'build-cache' }, { kind: 'dangling-images' }])
        .meta({ description: 'rungs in the order they are climbed' }),
    })
    .superRefine((section, ctx) => {
      if (!section.allowVolumes && section.ladder.some((entry) => entry.kind === 'volumes'))
        ctx.addIssue({
          code: 'custom',
          path: ['ladder'],
          message: 'a volumes rung needs reclaim.allowVolumes: true (volumes hold data)',
        });
      if (section.target > section.threshold)
        ctx.addIssue({ code: 'custom', path: ['target'], message: 'target must not be above threshold' });
    })
    .transform(({ ladder, ...rest }) => ({ ...rest, ladder: ladder.map(toRung) }))
    .prefault({})
    .meta({ description: 'reclaim by an ordered, opt-in prune ladder when nothing can grow' });
}
