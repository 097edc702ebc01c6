/**
 * Reads the devicemapper outputs recorded in the VM by test/vm/record/{dm-thin,docker-dm-lvm,
 * docker-dm-loop}.sh. Each file is one command's verbatim stdout; test/fixtures/<area>/_manifest.json
 * says which argv produced it, its exit code and, for the states that took setting up, a note.
 * Reading through the manifest makes a test fail when it names a file the recorder never wrote.
 */
import { fixture } from './scripted-runner.js';

export type DmFixtureArea = 'dm-thin' | 'docker-dm-lvm' | 'docker-dm-loop';

export interface RecordedDmOutput {
  /** The argv that was recorded. */
  command: string[];
  exitCode: number;
  note?: string;
  stdout: string;
}

interface Manifest {
  fixtures: Record<string, { command: string[]; exitCode: number; note?: string }>;
}

const manifests = new Map<DmFixtureArea, Manifest>();

function manifest(area: DmFixtureArea): Manifest {
  let loaded = manifests.get(area);
  if (!loaded) {
    loaded = JSON.parse(fixture(`${area}/_manifest.json`)) as Manifest;
    manifests.set(area, loaded);
  }
  return loaded;
}

/** A recorded output and how it was produced; throws when the area's manifest does not list it. */
export function recordedDm(area: DmFixtureArea, file: string): RecordedDmOutput {
  const entry = manifest(area).fixtures[file];
  if (!entry) throw new Error(`test/fixtures/${area}/_manifest.json records no ${file}`);
  return { ...entry, stdout: fixture(`${area}/${file}`) };
}

/** The recorded stdout alone. */
export function recordedDmText(area: DmFixtureArea, file: string): string {
  return recordedDm(area, file).stdout;
}

/** A recorded JSON output (docker inspect/info, lvs/vgs reports, Docker's metadata files). */
export function recordedDmJson<T>(area: DmFixtureArea, file: string): T {
  return JSON.parse(recordedDmText(area, file)) as T;
}

/**
 * Recorded `dmsetup info -c` lines cut down to the columns `fields` names, in that order, from the
 * columns the recording asked for (its `-o` argument): the recordings also asked for segments and
 * events, the backend does not.
 */
export function infoColumnsAs(recorded: RecordedDmOutput, fields: string): string {
  const separator = recorded.command[recorded.command.indexOf('--separator') + 1];
  const recordedFields = recorded.command[recorded.command.indexOf('-o') + 1]?.split(',') ?? [];
  if (!separator || recordedFields.length === 0) throw new Error(`not a dmsetup info -c recording`);
  const wanted = fields.split(',').map((field) => {
    const index = recordedFields.indexOf(field);
    if (index < 0) throw new Error(`the recording has no ${field} column`);
    return index;
  });
  return recorded.stdout
    .split('\n')
    .map((line) => {
      if (!line) return line;
      // The uuid is the last column and may itself contain the separator: keep its rest whole.
      const columns = line.split(separator);
      const last = recordedFields.length - 1;
      const whole = [...columns.slice(0, last), columns.slice(last).join(separator)];
      return wanted.map((index) => whole[index] ?? '').join(separator);
    })
    .join('\n');
}
