/**
 * Test certificates made with the real openssl binary: a CA, server certificates for 127.0.0.1 /
 * localhost and client certificates, in a directory of their own.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Prereq } from '../support/prereqs.js';
import { executable as isExecutable } from '../support/prereqs.js';

const execFileAsync = promisify(execFile);

export const SERVER_EXTENSIONS = 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n';
export const CLIENT_EXTENSIONS = 'subjectAltName=DNS:prometheus.example\nextendedKeyUsage=clientAuth\n';

export function executable(name: string, file: string): Prereq {
  return {
    name,
    ok: () => isExecutable(file),
    fix: `apt-get install ${name}`,
  };
}

export const opensslPrereq = executable('openssl', '/usr/bin/openssl');

export class TestCertificates {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'agtls-'));

  file(name: string): string {
    return path.join(this.dir, name);
  }

  private async openssl(args: string[]): Promise<void> {
    await execFileAsync('/usr/bin/openssl', args, { cwd: this.dir });
  }

  /** A self-signed CA: `<name>.crt` and `<name>.key` (EC P-256, valid two days). */
  async makeCa(name: string): Promise<void> {
    const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
    const out = ['-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`];
    await this.openssl(['req', '-x509', ...key, ...out]);
  }

  /** A certificate signed by `ca` with the given X.509v3 extensions. */
  async makeCert(name: string, ca: string, extensions: string): Promise<void> {
    const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
    await this.openssl([
      'req',
      ...key,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      `/CN=${name}`,
    ]);
    writeFileSync(this.file(`${name}.ext`), extensions);
    const signer = ['-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial'];
    const out = ['-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`];
    await this.openssl(['x509', '-req', '-in', `${name}.csr`, ...signer, ...out]);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
