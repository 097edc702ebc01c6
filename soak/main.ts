/**
 * `npm run soak -- --minutes N --seed S [--backend btrfs|overlay-xfs|devicemapper|devicemapper-loop] [--no-agent] [--ops K]
 * [--min-containers A --max-containers B] [--pool-gib G] [--out FILE] [--log-dir DIR]
 * [--containerd-socket SOCK] [--print-schedule] [--verbose]`: one soak run (soak/driver.ts) and
 * its figures. overlay-xfs needs XFS project quotas and devicemapper(-loop) device-mapper, which
 * the development host's kernel lacks: run them in the guest with `npm run soak:guest` (test/vm/soak-guest.ts), which runs this file there.
 *
 * Exit status: 0 when no invariant was violated; 1 when one was. The control run (`--no-agent`)
 * inverts the write-error invariant: it must report violations (the rig bites), so it exits 0 only
 * when it did.
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_SOAK_OPTIONS, SOAK_POLICY, runSoak, soakRunName, type SoakResult } from './driver.js';
import { BACKENDS, type BackendName } from './rigs/index.js';
import { describeOp, generateSchedule } from './schedule.js';
import { formatSoakResult } from './report.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '5' },
    seed: { type: 'string', default: '1' },
    backend: { type: 'string', default: DEFAULT_SOAK_OPTIONS.backend },
    ops: { type: 'string' },
    'no-agent': { type: 'boolean', default: false },
    'min-containers': { type: 'string', default: String(DEFAULT_SOAK_OPTIONS.minContainers) },
    'max-containers': { type: 'string', default: String(DEFAULT_SOAK_OPTIONS.maxContainers) },
    'pool-gib': { type: 'string', default: String(DEFAULT_SOAK_OPTIONS.poolBytes / 1024 ** 3) },
    out: { type: 'string' },
    'log-dir': { type: 'string' },
    'containerd-socket': { type: 'string' },
    'print-schedule': { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
  },
  allowPositionals: false,
});

function positiveInteger(name: string, text: string | undefined): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0) {
    console.error(`soak: --${name} must be a whole number, not ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return value;
}

const seed = positiveInteger('seed', values.seed);
if (!(BACKENDS as readonly string[]).includes(values.backend ?? '')) {
  console.error(
    `soak: --backend must be one of ${BACKENDS.join(', ')}, not ${JSON.stringify(values.backend)}`,
  );
  process.exit(2);
}
const backend = values.backend as BackendName;
const minutes = Number(values.minutes);
if (!Number.isFinite(minutes) || minutes <= 0) {
  console.error(`soak: --minutes must be above 0, not ${JSON.stringify(values.minutes)}`);
  process.exit(2);
}
const minContainers = positiveInteger('min-containers', values['min-containers']);
const maxContainers = positiveInteger('max-containers', values['max-containers']);
const ops = values.ops === undefined ? undefined : positiveInteger('ops', values.ops);
const poolBytes = Math.round(Number(values['pool-gib']) * 1024 ** 3);

if (values['print-schedule']) {
  for (const scheduled of generateSchedule({
    seed,
    count: ops ?? Math.max(200, Math.ceil(minutes * 150)),
    minContainers,
    maxContainers,
    writeBudgetMiB: Math.floor((poolBytes / 1024 ** 2) * 0.4),
    checkpointEvery: 40,
    defaultMaxSizeMiB: SOAK_POLICY.maxSizeMiB,
  })) {
    console.log(describeOp(scheduled));
  }
  process.exit(0);
}

const result: SoakResult = await runSoak({
  ...DEFAULT_SOAK_OPTIONS,
  seed,
  backend,
  minutes,
  ops,
  agent: !values['no-agent'],
  minContainers,
  maxContainers,
  poolBytes,
  verbose: values.verbose,
  ...(values['log-dir'] ? { logDir: path.resolve(values['log-dir']) } : {}),
  ...(values['containerd-socket'] ? { containerdSocket: values['containerd-socket'] } : {}),
  log: (line) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`),
});
const out = values.out ?? path.join(tmpdir(), `docker-autogrow-soak-${soakRunName(result)}.json`);
writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
console.log(formatSoakResult(result));
console.log(`figures: ${out}`);
if (result.agent) {
  process.exit(result.violationsTotal === 0 ? 0 : 1);
} else {
  const bites = result.violations['write-error'] > 0;
  console.log(
    bites
      ? `control: ${result.violations['write-error']} write errors below maxSize with no agent: the rig bites`
      : 'control: NO write error without the agent: the rig does not bite',
  );
  process.exit(bites ? 0 : 1);
}
