/**
 * Host checks for `doctor` that do not depend on a storage backend, as pure functions of facts the
 * caller gathered (docker info, binary resolution, the data root's mount, privileges, the state
 * directory, a metrics port probe). Backend-specific checks (btrfs quotas, dm udev sync, LVM
 * autoextend...) come from each backend's `doctor()` and are merged in ./run-doctor.ts.
 *
 * Every failing check carries a fix a person can act on.
 */
import { isSupportedDriver } from '../storage/select.js';
import { containerdImageStore, containerdStoreNotice } from '../storage/containerd/store.js';
import type { DockerInfo } from '../docker/model.js';
import type { ToolName } from '../exec/runner.js';
import type { MountEntry } from '../storage/filesystem.js';
import type { DoctorCheck } from '../contracts/doctor-check.js';

/** The Docker API version we test against: 1.41 is Docker 20.10. */
export const TESTED_DOCKER_API_VERSION = '1.41';

/** Debian package that ships each tool, for fixes. */
export const TOOL_PACKAGES: Readonly<Record<ToolName, string>> = {
  dmsetup: 'dmsetup',
  lvs: 'lvm2',
  vgs: 'lvm2',
  lvm: 'lvm2',
  lvextend: 'lvm2',
  losetup: 'util-linux',
  truncate: 'coreutils',
  xfs_growfs: 'xfsprogs',
  xfs_quota: 'xfsprogs',
  xfs_io: 'xfsprogs',
  resize2fs: 'e2fsprogs',
  btrfs: 'btrfs-progs',
  blkid: 'util-linux',
  findmnt: 'util-linux',
  stat: 'coreutils',
  df: 'coreutils',
  'systemd-notify': 'systemd',
  pvs: 'lvm2',
  pvresize: 'lvm2',
};

export interface ToolRequirement {
  tool: ToolName;
  /** error: the driver cannot work without it; warn: one feature (pool grow, ext4 devices) is lost. */
  severity: 'error' | 'warn';
  why: string;
}

/** The tools each driver runs. */
export function requiredTools(driver: string): ToolRequirement[] {
  switch (driver) {
    case 'btrfs':
      return [{ tool: 'btrfs', severity: 'error', why: 'reads qgroups and raises qgroup limits' }];
    case 'overlay2':
      return [
        { tool: 'xfs_quota', severity: 'error', why: 'reads and raises XFS project quotas' },
        { tool: 'xfs_io', severity: 'warn', why: 'reads project ids of container directories' },
      ];
    case 'devicemapper':
      return [
        { tool: 'dmsetup', severity: 'error', why: 'reads and reloads thin devices' },
        {
          tool: 'xfs_growfs',
          severity: 'error',
          why: 'grows XFS inside thin devices (dm.fs=xfs, the default)',
        },
        { tool: 'resize2fs', severity: 'warn', why: 'grows ext4 inside thin devices (dm.fs=ext4)' },
        { tool: 'lvs', severity: 'warn', why: 'reads a direct-lvm thin pool (pool grow)' },
        { tool: 'lvextend', severity: 'warn', why: 'grows a direct-lvm thin pool (pool grow)' },
        { tool: 'losetup', severity: 'warn', why: 'grows a loop-lvm pool (pool grow)' },
      ];
    default:
      return [];
  }
}

export interface BinaryFact {
  tool: ToolName;
  /** Absolute path the runner will use, or null when not found. */
  resolvedPath: string | null;
  /** The configured override (config `binaries`), if any. */
  override?: string;
}

export type DockerFact =
  | { reachable: true; socketPath: string; info: DockerInfo }
  | { reachable: false; socketPath: string; error: string };

export interface PrivilegeFacts {
  uid: number;
  /** CAP_SYS_ADMIN in the effective set. */
  capSysAdmin: boolean;
  socket: { path: string; exists: boolean; readWrite: boolean };
  stateDir: { path: string; writable: boolean; detail: string };
}

export interface PortFact {
  enabled: boolean;
  listen: string;
  free: boolean;
  error?: string;
  /** metrics.webConfigFile, when set, and why it cannot be loaded (`run` would exit 1). */
  webConfigFile?: string;
  webConfigError?: string;
}

export interface HostFacts {
  docker: DockerFact;
  binaries: readonly BinaryFact[];
  /** The mount holding Docker's data root, when Docker was reachable and the path exists. */
  dataRootMount: MountEntry | null;
  privileges: PrivilegeFacts;
  metricsPort: PortFact;
}

function check(
  name: string,
  ok: boolean,
  severity: DoctorCheck['severity'],
  detail: string,
  fix?: string,
): DoctorCheck {
  return ok ? { name, ok, severity, detail } : { name, ok, severity, detail, ...(fix ? { fix } : {}) };
}

/** Compares dotted API versions numerically: `1.41` vs `1.9`. */
export function compareApiVersions(a: string, b: string): number {
  const left = a.split('.').map(Number);
  const right = b.split('.').map(Number);
  for (let index = 0; index < Math.max(left.length, right.length); index += 1) {
    const difference = (left[index] ?? 0) - (right[index] ?? 0);
    if (difference !== 0) return Math.sign(difference);
  }
  return 0;
}

export function dockerChecks(docker: DockerFact): DoctorCheck[] {
  if (!docker.reachable) {
    return [
      check(
        'Docker reachable',
        false,
        'error',
        // the Docker client's errors already name the endpoint, where it came from, and a hint
        docker.error.startsWith('cannot reach Docker at ')
          ? docker.error
          : `cannot reach dockerd at ${docker.socketPath}: ${docker.error}`,
        `start Docker (systemctl start docker), or point --host, docker.host or DOCKER_HOST at the daemon (docs/engines.md)`,
      ),
    ];
  }
  const { info } = docker;
  const apiOk = /^\d+(\.\d+)*$/.test(info.apiVersion)
    ? compareApiVersions(info.apiVersion, TESTED_DOCKER_API_VERSION) >= 0
    : false;
  return [
    check(
      'Docker reachable',
      true,
      'error',
      `Docker ${info.serverVersion} at ${docker.socketPath}, data root ${info.dockerRootDir}`,
    ),
    check(
      'Docker API version',
      apiOk,
      'warn',
      `API ${info.apiVersion} (tested: ${TESTED_DOCKER_API_VERSION} = Docker 20.10 and newer)`,
      'upgrade Docker to 20.10 or newer; older daemons are untested',
    ),
  ];
}

/** Storage driver supported; overlay2 only on XFS mounted with project quotas. */
export function driverChecks(info: DockerInfo, dataRootMount: MountEntry | null): DoctorCheck[] {
  const driver = info.driver;
  const containerdStore = containerdImageStore(info);
  if (!isSupportedDriver(driver)) {
    return [
      check(
        'storage driver supported',
        false,
        'error',
        containerdStore
          ? containerdStoreNotice(containerdStore)
          : `Docker uses the ${driver} storage driver; supported: devicemapper, btrfs, overlay2 on XFS with pquota`,
        `run Docker with "storage-driver": "overlay2" on an XFS data root mounted with pquota (or btrfs with quotas, or devicemapper direct-lvm); changing the driver needs containers to be recreated`,
      ),
    ];
  }
  const checks = [check('storage driver supported', true, 'error', `Docker uses ${driver}`)];
  if (driver === 'overlay2') {
    const backing = info.driverStatus.find(([key]) => key === 'Backing Filesystem')?.[1];
    const fsType = dataRootMount?.fsType ?? backing ?? 'unknown';
    const onXfs = fsType === 'xfs';
    checks.push(
      check(
        'overlay2 on XFS',
        onXfs,
        'error',
        `${info.dockerRootDir} is on ${fsType}${dataRootMount ? ` (${dataRootMount.mountPoint})` : ''}`,
        `put ${info.dockerRootDir} on an XFS filesystem (mkfs.xfs -n ftype=1) mounted with pquota; overlay2 size limits exist only on XFS`,
      ),
    );
    if (onXfs) {
      const options = dataRootMount ? [...dataRootMount.mountOptions, ...dataRootMount.superOptions] : [];
      const pquota = options.some((option) => ['prjquota', 'pquota', 'pqnoenforce'].includes(option));
      const mountPoint = dataRootMount?.mountPoint ?? info.dockerRootDir;
      checks.push(
        check(
          'XFS mounted with pquota',
          pquota,
          'error',
          pquota
            ? `${mountPoint} has project quotas (${options.filter((o) => /quota|qnoenforce/.test(o)).join(',')})`
            : `${mountPoint} is mounted without project quotas (options: ${options.join(',') || 'unknown'})`,
          `mount ${mountPoint} with -o pquota (add pquota to its /etc/fstab options; for the root filesystem add rootflags=pquota to the kernel command line), then restart Docker`,
        ),
      );
    }
  }
  return checks;
}

export function binaryChecks(driver: string, binaries: readonly BinaryFact[]): DoctorCheck[] {
  return requiredTools(driver).map((requirement) => {
    const fact = binaries.find((binary) => binary.tool === requirement.tool);
    const found = fact?.resolvedPath ?? null;
    const override = fact?.override;
    const pkg = TOOL_PACKAGES[requirement.tool];
    return check(
      `binary ${requirement.tool}`,
      found !== null,
      requirement.severity,
      found
        ? `${found} (${requirement.why})`
        : override
          ? `${override} (from config binaries.${requirement.tool}) is missing or not executable; ${requirement.why}`
          : `not found in /usr/sbin, /usr/bin, /sbin, /bin, /usr/local/sbin, /usr/local/bin; ${requirement.why}`,
      override
        ? `fix binaries.${requirement.tool} in the config (or remove it to search the usual directories), or apt-get install ${pkg}`
        : `apt-get install ${pkg} (or set binaries.${requirement.tool} to its absolute path)`,
    );
  });
}

export function privilegeChecks(facts: PrivilegeFacts): DoctorCheck[] {
  const privileged = facts.uid === 0 || facts.capSysAdmin;
  return [
    check(
      'privileges',
      privileged,
      'error',
      facts.uid === 0
        ? 'running as root'
        : `uid ${facts.uid}${facts.capSysAdmin ? ' with CAP_SYS_ADMIN' : ''}`,
      'run as root (sudo, the systemd unit, or the container with --privileged): device-mapper, quota and filesystem ioctls need CAP_SYS_ADMIN',
    ),
    check(
      'Docker socket accessible',
      facts.socket.exists && facts.socket.readWrite,
      'error',
      !facts.socket.exists
        ? `${facts.socket.path} does not exist`
        : facts.socket.readWrite
          ? `${facts.socket.path} is readable and writable`
          : `${facts.socket.path} is not readable and writable by uid ${facts.uid}`,
      !facts.socket.exists
        ? `start Docker, or set docker.socketPath to the daemon's socket (in a container: -v /var/run/docker.sock:/var/run/docker.sock)`
        : 'run as root (the socket is root-equivalent; prefer an allowlisting socket proxy to adding users to the docker group)',
    ),
    check(
      'state directory writable',
      facts.stateDir.writable,
      'error',
      facts.stateDir.detail,
      `create ${facts.stateDir.path} owned by root, mode 0700 (systemd: StateDirectory=docker-autogrow; container: -v /var/lib/docker-autogrow:/var/lib/docker-autogrow)`,
    ),
  ];
}

export function metricsPortCheck(port: PortFact): DoctorCheck {
  if (!port.enabled)
    return check('metrics port free', true, 'warn', 'metrics disabled (metrics.enabled: false)');
  return check(
    'metrics port free',
    port.free,
    'warn',
    port.free
      ? `${port.listen} can be bound`
      : `${port.listen} cannot be bound: ${port.error ?? 'unknown error'}`,
    `stop what listens on ${port.listen} (a docker-autogrow already running here is fine: check with \`ss -ltnp\`), or set metrics.listen to a free address`,
  );
}

/** metrics.webConfigFile names a file `run` can load (a missing one makes `run` exit 1). */
export function metricsWebConfigCheck(port: PortFact): DoctorCheck {
  const file = port.webConfigFile ?? '';
  return check(
    'metrics web config readable',
    port.webConfigError === undefined,
    'error',
    port.webConfigError === undefined ? `${file} loads` : port.webConfigError,
    `create ${file} (Prometheus exporter-toolkit web-config format), or remove metrics.webConfigFile from the config`,
  );
}

/** Live-restore: a dockerd restart keeps containers running (matters for dm grows and upgrades). */
export function liveRestoreCheck(info: DockerInfo): DoctorCheck {
  return check(
    'live-restore',
    info.liveRestoreEnabled,
    'warn',
    info.liveRestoreEnabled
      ? 'live-restore on: containers keep running while dockerd restarts'
      : 'live-restore off: every dockerd restart (upgrades, config reloads) stops all containers',
    'set "live-restore": true in /etc/docker/daemon.json and reload dockerd (systemctl reload docker)',
  );
}

/** Every generic check, in checklist order. */
export function genericChecks(facts: HostFacts): DoctorCheck[] {
  const checks: DoctorCheck[] = [...dockerChecks(facts.docker)];
  if (facts.docker.reachable) {
    const info = facts.docker.info;
    checks.push(...driverChecks(info, facts.dataRootMount));
    checks.push(...binaryChecks(info.driver, facts.binaries));
    checks.push(liveRestoreCheck(info));
  }
  checks.push(...privilegeChecks(facts.privileges));
  checks.push(metricsPortCheck(facts.metricsPort));
  if (facts.metricsPort.enabled && facts.metricsPort.webConfigFile !== undefined) {
    checks.push(metricsWebConfigCheck(facts.metricsPort));
  }
  return checks;
}

/** True when no error-severity check failed: the agent can serve this host. */
export function hostServable(checks: readonly DoctorCheck[]): boolean {
  return checks.every((item) => item.ok || item.severity !== 'error');
}
