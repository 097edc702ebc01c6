/**
 * Generated, seeded, replayable orders of events on grown devicemapper containers in the VM
 * (test/vm/guest/dm-sequence.sh; orders from test/vm/dm-sequence-orders.ts): grows by `run`,
 * `once` and `grow`, docker stop + start, docker restart, a container stopped and started while
 * the agent is down, agent SIGTERM / SIGKILL / restart, dockerd restart. After every step each
 * container runs at least at its grown size, or `status` names it as not persistent with the
 * fix; never a smaller device or filesystem; after the order settles every container runs and
 * `docker rm -f` leaves no device behind.
 *
 * CI: one fixed order per variant (DM_SEQ_CI_SEEDS, DM_SEQ_STEPS steps), one VM per variant:
 * direct-lvm with live-restore, direct-lvm without, loop-lvm. More (outside CI):
 *   AUTOGROW_DMSEQ_SEEDS=1,2,3 (or a count: AUTOGROW_DMSEQ_SEEDS=count:20 → seeds 1..20), for
 *     every selected variant
 *   AUTOGROW_DMSEQ_STEPS=12
 *   AUTOGROW_DMSEQ_VARIANTS=lvm (default: lvm-live-restore,lvm,loop; also lvm-no-deferred:
 *     dockerd without deferred removal and deletion, so no kernel hold, the unheld path)
 * A failing order is replayed by giving its seed (and the variant) again.
 */
import { execFileSync } from 'node:child_process';
import { expect, it, beforeAll } from 'vitest';
import { describeWith } from '../support/prereqs.js';
import { assertVmRunPassed, runInVm, vmPrereqs, type VmEnvironment } from './harness/index.js';
import {
  DM_SEQ_CI_SEEDS,
  DM_SEQ_CONTAINERS,
  DM_SEQ_LIVE_RESTORE,
  DM_SEQ_CI_VARIANTS,
  DM_SEQ_STEPS,
  DM_SEQ_VARIANTS,
  type DmSeqVariant,
  actionCounts,
  formatOrder,
  generateOrder,
} from './dm-sequence-orders.js';

const ENVIRONMENTS: Record<DmSeqVariant, VmEnvironment> = {
  'lvm-live-restore': 'docker-dm-lvm',
  lvm: 'docker-dm-lvm',
  loop: 'docker-dm-loop',
  'lvm-no-deferred': 'docker-dm-lvm',
};
/** Guest environment per variant beyond live-restore (test/vm/guest/dm-sequence.sh). */
const GUEST_ENV: Partial<Record<DmSeqVariant, Record<string, string>>> = {
  'lvm-no-deferred': { AUTOGROW_DMSEQ_NO_DEFERRED: '1' },
};

function seedsFromEnv(variant: DmSeqVariant): readonly number[] {
  const text = process.env.AUTOGROW_DMSEQ_SEEDS;
  if (!text) return DM_SEQ_CI_SEEDS[variant];
  // `count:20` → seeds 1..20; otherwise a comma list (one seed replays one order)
  const count = /^count:(\d+)$/.exec(text);
  if (count) return Array.from({ length: Number(count[1]) }, (_, index) => index + 1);
  return text.split(',').map((seed) => Number(seed.trim()));
}

const variants = (process.env.AUTOGROW_DMSEQ_VARIANTS ?? DM_SEQ_CI_VARIANTS.join(','))
  .split(',')
  .map((text) => {
    const name = text.trim();
    if (!(DM_SEQ_VARIANTS as readonly string[]).includes(name))
      throw new Error(`AUTOGROW_DMSEQ_VARIANTS: unknown variant ${name}`);
    const variant = name as DmSeqVariant;
    return {
      name: variant,
      environment: ENVIRONMENTS[variant],
      liveRestore: DM_SEQ_LIVE_RESTORE[variant],
      seeds: seedsFromEnv(variant),
    };
  });
const steps = Number(process.env.AUTOGROW_DMSEQ_STEPS ?? DM_SEQ_STEPS);

describeWith(vmPrereqs, 'devicemapper: generated orders of grows, stops, restarts and agent downtime', () => {
  beforeAll(() => {
    if (process.env.AUTOGROW_SKIP_BUILD !== '1')
      execFileSync('npm', ['run', 'build', '--silent'], { stdio: 'inherit' });
  });

  for (const variant of variants) {
    const seeds = variant.seeds;
    const vmTimeoutMs = Number(
      // measured: ~2.2 min per step and ~6 min per order (setup, settle, rm) under TCG with host
      // load 20-25; boot and dockerd ~4 min
      process.env.AUTOGROW_DM_VM_TIMEOUT_MS ?? (10 + seeds.length * (steps * 3 + 8)) * 60_000,
    );
    it(
      `${variant.name}: seeds ${seeds.join(',')} x ${steps} steps`,
      async () => {
        const orders = seeds.map((seed) =>
          generateOrder(seed, { steps, containers: DM_SEQ_CONTAINERS, liveRestore: variant.liveRestore }),
        );
        for (const order of orders) console.log(`dm-sequence ${variant.name} ${formatOrder(order)}`);
        console.log(
          `dm-sequence ${variant.name} actions: ${[...actionCounts(orders)].map(([action, count]) => `${action}=${count}`).join(' ')}`,
        );
        const env: Record<string, string> = {
          AUTOGROW_VM_LIVE_RESTORE: variant.liveRestore ? '1' : '0',
          AUTOGROW_DMSEQ_ORDERS: orders.map(formatOrder).join(';'),
          ...GUEST_ENV[variant.name],
        };
        if (process.env.AUTOGROW_DM_CLI) env.AUTOGROW_DM_CLI = process.env.AUTOGROW_DM_CLI;
        const result = await runInVm({
          environment: variant.environment,
          label: `dm-sequence-${variant.name}`,
          script: 'test/vm/guest/dm-sequence.sh',
          env,
          timeoutMs: Number(
            process.env.AUTOGROW_DM_VM_TIMEOUT_MS ?? (10 + orders.length * (steps + 6)) * 60_000,
          ),
        });
        console.log(
          `dm-sequence ${variant.name}: exit ${result.exitCode} in ${Math.round(result.durationMs / 1000)} s (${result.runDir})`,
        );
        const lines = result.consoleLog.split('\n').filter((line) => /DMSEQ(-ORDER)? /.test(line));
        for (const line of lines) console.log(line.trim());
        assertVmRunPassed(result);
        const summaries = lines
          .map((line) =>
            /DMSEQ-ORDER seed=(\d+) steps=(\d+) ok=(\d+) reported=(\d+) violations=(\d+)/.exec(line),
          )
          .filter((match): match is RegExpExecArray => match !== null);
        // every order ran to its end
        expect(summaries.map((match) => Number(match[1]))).toEqual([...seeds]);
        for (const match of summaries) {
          expect({ seed: Number(match[1]), steps: Number(match[2]) }).toEqual({
            seed: Number(match[1]),
            steps,
          });
          expect({ seed: Number(match[1]), violations: Number(match[5]) }).toEqual({
            seed: Number(match[1]),
            violations: 0,
          });
        }
        const violations = lines.filter((line) => line.includes('result=violation'));
        expect(violations).toEqual([]);
      },
      vmTimeoutMs + 60_000,
    );
  }
});
