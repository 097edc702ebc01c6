/**
 * `npm run soak:guest -- --backend overlay-xfs|devicemapper|devicemapper-loop --seed S (--ops K | --minutes M) [--control-ops C]
 * [--control-seed S2 --control-min-containers A2 --control-max-containers B2] [--control-only]
 * [--min-containers A --max-containers B] [--pool-gib G] [--verbose] [--timeout-minutes T]`:
 * the soak (soak/main.ts, the driver the host runs on btrfs) on a backend the host's kernel cannot
 * serve, in ONE fresh test VM (test/vm/harness, environment `none`; test/vm/guest/soak.sh): the soak,
 * then its control (`--no-agent`, the first C operations of the same seed, or of S2 with A2..B2
 * containers; default 30, 0: none) in the same boot; `--control-only` boots for the control alone. Build first (`npm run soak:guest` does): the guest runs dist/ from the shared
 * checkout.
 *
 * Prints both runs' figures (from the run's artifacts: soak.json, soak-control.json, their
 * operation and agent logs) and the run directory; exits 0 when the soak found no violation and
 * the control bit, 1 otherwise. A run replays on the same backend with the same arguments.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { SoakResult } from '../../soak/driver.js';
import { formatSoakResult } from '../../soak/report.js';
import { runInVm } from './harness/run.js';

/** Backends with a guest rig (soak/rigs/) and what test/vm/guest/soak.sh loads for them. */
const GUEST_BACKENDS = ['overlay-xfs', 'devicemapper', 'devicemapper-loop'] as const;
/** Every word handed to the guest's shell is one of these (numbers, flags): nothing to quote. */
const SAFE_WORD = /^[A-Za-z0-9._-]+$/;

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'overlay-xfs' },
    seed: { type: 'string', default: '1' },
    ops: { type: 'string' },
    minutes: { type: 'string' },
    'control-ops': { type: 'string', default: '30' },
    'control-seed': { type: 'string' },
    'control-min-containers': { type: 'string' },
    'control-max-containers': { type: 'string' },
    'control-only': { type: 'boolean', default: false },
    'min-containers': { type: 'string', default: '8' },
    'max-containers': { type: 'string', default: '20' },
    'pool-gib': { type: 'string', default: '4' },
    verbose: { type: 'boolean', default: false },
    'timeout-minutes': { type: 'string' },
    'memory-mib': { type: 'string', default: '3072' },
  },
  allowPositionals: false,
});

function fail(message: string): never {
  console.error(`soak:guest: ${message}`);
  process.exit(2);
}
function word(name: string, text: string | undefined): string {
  if (text === undefined || !SAFE_WORD.test(text))
    fail(`--${name} ${JSON.stringify(text)} is not a plain value`);
  return text;
}

const backend = word('backend', values.backend);
if (!(GUEST_BACKENDS as readonly string[]).includes(backend))
  fail(`--backend must be one of ${GUEST_BACKENDS.join(', ')} (btrfs runs on the host: npm run soak)`);
const controlOnly = values['control-only'];
if (!controlOnly && (values.ops === undefined) === (values.minutes === undefined))
  fail('give exactly one of --ops K, --minutes M');
const common = [
  '--seed',
  word('seed', values.seed),
  '--min-containers',
  word('min-containers', values['min-containers']),
  '--max-containers',
  word('max-containers', values['max-containers']),
  '--pool-gib',
  word('pool-gib', values['pool-gib']),
];
const soakArgs = controlOnly
  ? []
  : [
      ...common,
      ...(values.ops !== undefined
        ? ['--ops', word('ops', values.ops)]
        : ['--minutes', word('minutes', values.minutes)]),
      ...(values.verbose ? ['--verbose'] : []),
    ];
const controlOps = Number(word('control-ops', values['control-ops']));
// The control may take its operations from another seed and container range than the soak: a
// long soak's first operations are mostly creates (it fills to --min-containers first), so its
// first 30 may hold no write that reaches a limit; the CI control (seed 6, 8..20 containers,
// 30 operations) does bite.
const controlCommon = [
  '--seed',
  word('control-seed', values['control-seed'] ?? values.seed),
  '--min-containers',
  word('control-min-containers', values['control-min-containers'] ?? values['min-containers']),
  '--max-containers',
  word('control-max-containers', values['control-max-containers'] ?? values['max-containers']),
  '--pool-gib',
  word('pool-gib', values['pool-gib']),
];
if (controlOnly && controlOps === 0) fail('--control-only needs --control-ops above 0');
const controlArgs = controlOps > 0 ? [...controlCommon, '--ops', String(controlOps)] : [];
const minutes = controlOnly ? 0 : Number(values.minutes ?? 10);
const poolGiB = Number(values['pool-gib']);
// measured under TCG: boot, containerd and the first dockerd take minutes; the soak's operations
// run several times slower than on the host; the control comes on top
const timeoutMinutes = Number(values['timeout-minutes'] ?? 30 + 2 * minutes);

const result = await runInVm({
  environment: 'none',
  label: controlOnly ? `soak-${backend}-control-${controlCommon[1]}` : `soak-${backend}-${values.seed}`,
  script: 'test/vm/guest/soak.sh',
  env: {
    AUTOGROW_SOAK_BACKEND: backend,
    AUTOGROW_SOAK_ARGS: soakArgs.join(' '),
    AUTOGROW_SOAK_CONTROL_ARGS: controlArgs.join(' '),
  },
  // the pool's loop file and the soak's work dir live on the scratch disk (sparse on the host)
  scratchSizeBytes: Math.max(8, Math.ceil(poolGiB) + 4) * 1024 ** 3,
  memoryMiB: Number(word('memory-mib', values['memory-mib'])),
  timeoutMs: timeoutMinutes * 60_000,
  echoConsole: values.verbose,
});

for (const name of ['soak', 'soak-control']) {
  const file = path.join(result.artifactsDir, `${name}.json`);
  if (existsSync(file)) console.log(formatSoakResult(JSON.parse(readFileSync(file, 'utf8')) as SoakResult));
  else if ((name === 'soak' && !controlOnly) || (name === 'soak-control' && controlArgs.length > 0))
    console.log(`${name}: no figures (${file} missing)`);
}
const summary = /^SOAK-GUEST .*$/m.exec(result.consoleLog)?.[0] ?? 'SOAK-GUEST line missing';
console.log(summary);
console.log(
  `guest soak on ${backend}: exit ${result.exitCode}${result.timedOut ? ' (timed out)' : ''} in ` +
    `${Math.round(result.durationMs / 1000)} s; artifacts ${result.runDir}`,
);
if (result.exitCode !== 0) console.log(result.consoleLog.split('\n').slice(-40).join('\n'));
const controlReplay =
  values['control-seed'] !== undefined ||
  values['control-min-containers'] !== undefined ||
  values['control-max-containers'] !== undefined
    ? ` --control-seed ${controlCommon[1]} --control-min-containers ${controlCommon[3]} --control-max-containers ${controlCommon[5]}`
    : '';
console.log(
  `replay: npm run soak:guest -- --backend ${backend} ${controlOnly ? `--control-only --pool-gib ${values['pool-gib']}` : soakArgs.join(' ')} --control-ops ${controlOps}${controlReplay}`,
);
process.exit(result.exitCode === 0 ? 0 : 1);
