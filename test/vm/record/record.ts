/**
 * `npm run fixtures:record [-- <area>...]`: re-records test/fixtures/<area>/ from inside the test VM.
 *
 * Each test/vm/record/<area>.sh names its environment in a `# environment: <name>` line and runs in a
 * fresh VM of that environment; its recordings (verbatim stdout per fixture, plus an index of what
 * produced each) come back through the run's artifacts. Only when the whole area recorded cleanly is
 * test/fixtures/<area>/ replaced (stale files go too) and its _manifest.json written: commands, exit
 * codes, kernel, tool package versions, date. Areas run one after another (the machine has 2 cores).
 */
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CHECKOUT_DIR, ensureVmImage } from '../harness/image.js';
import { assertVmRunPassed, runInVm, VM_ENVIRONMENTS, type VmEnvironment } from '../harness/run.js';

const RECORD_DIR = path.join(CHECKOUT_DIR, 'test', 'vm', 'record');
const FIXTURES_DIR = path.join(CHECKOUT_DIR, 'test', 'fixtures');
/** Debian packages whose versions go into every manifest (what produced the outputs). */
const TOOL_PACKAGES = [
  'dmsetup',
  'lvm2',
  'thin-provisioning-tools',
  'docker.io',
  'xfsprogs',
  'btrfs-progs',
  'util-linux',
  'e2fsprogs',
];

interface IndexEntry {
  file: string;
  command?: string[];
  exitCode?: number;
  stderrFile?: string;
  recordedAt?: string;
  note?: string;
}

export function recordingAreas(): string[] {
  return readdirSync(RECORD_DIR)
    .filter((name) => name.endsWith('.sh') && name !== 'lib.sh')
    .map((name) => name.slice(0, -'.sh'.length))
    .sort();
}

export function areaEnvironment(area: string): VmEnvironment {
  const script = readFileSync(path.join(RECORD_DIR, `${area}.sh`), 'utf8');
  const declared = /^# environment: (?<name>\S+)$/m.exec(script)?.groups?.name;
  if (!declared || !(VM_ENVIRONMENTS as readonly string[]).includes(declared)) {
    throw new Error(`test/vm/record/${area}.sh: missing or unknown '# environment: <name>' line`);
  }
  return declared as VmEnvironment;
}

function toolVersions(imageDir: string): Record<string, string> {
  const versions: Record<string, string> = {};
  for (const line of readFileSync(path.join(imageDir, 'packages.txt'), 'utf8').split('\n')) {
    const [name, version] = line.split(' ');
    if (name && version && TOOL_PACKAGES.includes(name)) versions[name] = version;
  }
  return versions;
}

async function recordArea(area: string): Promise<void> {
  const environment = areaEnvironment(area);
  const image = await ensureVmImage();
  console.log(`[record] ${area}: booting a ${environment} VM`);
  const result = await runInVm({
    environment,
    label: `record-${area}`,
    script: `test/vm/record/${area}.sh`,
    timeoutMs: 15 * 60_000,
  });
  assertVmRunPassed(result);
  const recorded = path.join(result.artifactsDir, 'fixtures', area);
  const indexFile = path.join(recorded, '_index.jsonl');
  if (!existsSync(indexFile)) throw new Error(`${area}: the guest recorded nothing (${result.runDir})`);
  const entries = readFileSync(indexFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as IndexEntry);
  const fixtures: Record<string, Omit<IndexEntry, 'file'>> = {};
  for (const { file, ...rest } of entries) fixtures[file] = { ...fixtures[file], ...rest };
  const manifest = {
    area,
    recordedBy: `test/vm/record/${area}.sh (npm run fixtures:record); re-record, never edit by hand`,
    environment,
    recordedAt: new Date().toISOString(),
    kernel: readFileSync(path.join(image.dir, 'kernel.txt'), 'utf8').trim(),
    packages: toolVersions(image.dir),
    fixtures,
  };
  rmSync(indexFile);
  const target = path.join(FIXTURES_DIR, area);
  rmSync(target, { recursive: true, force: true });
  cpSync(recorded, target, { recursive: true });
  writeFileSync(path.join(target, '_manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  console.log(
    `[record] ${area}: ${Object.keys(fixtures).length} fixtures -> test/fixtures/${area}/ ` +
      `(${Math.round(result.durationMs / 1000)} s)`,
  );
}

async function main(): Promise<void> {
  const requested = process.argv.slice(2).filter((arg) => arg !== '--');
  const known = recordingAreas();
  const unknown = requested.filter((area) => !known.includes(area));
  if (unknown.length > 0)
    throw new Error(`unknown areas: ${unknown.join(', ')} (known: ${known.join(', ')})`);
  const areas = requested.length > 0 ? requested : known;
  const image = await ensureVmImage();
  console.log(
    `[record] image ${image.dir} (${image.built ? 'built' : 'reused'}); areas: ${areas.join(', ')}`,
  );
  const failures: string[] = [];
  for (const area of areas) {
    try {
      await recordArea(area);
    } catch (error) {
      failures.push(area);
      console.error(`[record] ${area} FAILED: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  if (failures.length > 0) {
    console.error(`[record] failed areas (their fixtures were left unchanged): ${failures.join(', ')}`);
    process.exitCode = 1;
  }
}

await main();
