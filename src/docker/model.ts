/**
 * The agent's typed view of Docker: what the inventory holds about each container and what
 * `docker info` says about the host. Built from dockerode responses by src/docker/client.ts and
 * validated there; nothing else reads raw Docker JSON.
 */

export type ContainerState = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

export interface ContainerInfo {
  /** Full 64-hex-digit id, validated. */
  id: string;
  /** Name without the leading slash. */
  name: string;
  /** Image reference as the user gave it (Config.Image). */
  image: string;
  labels: Readonly<Record<string, string>>;
  state: ContainerState;
  running: boolean;
  /** Host PID of the container's init process; 0 when not running. */
  pid: number;
  /** GraphDriver.Name: devicemapper, btrfs, overlay2, ... */
  storageDriver: string;
  /** GraphDriver.Data (string values only; btrfs has none). */
  graphDriverData: Readonly<Record<string, string>>;
  /** HostConfig.StorageOpt.size in bytes, when the container was created with a size limit. */
  storageOptSizeBytes: number | null;
}

export interface DockerInfo {
  serverVersion: string;
  apiVersion: string;
  /** Storage driver name (overlay2, btrfs, devicemapper, ...). */
  driver: string;
  /** DriverStatus as key/value pairs, in order (devicemapper: Pool Name, Data file, ...). */
  driverStatus: ReadonlyArray<readonly [string, string]>;
  /** DockerRootDir, e.g. /var/lib/docker. */
  dockerRootDir: string;
  liveRestoreEnabled: boolean;
  containersRunning: number;
}

/** A Docker event reduced to what the agent reacts to. */
export interface ContainerEvent {
  /** create, start, die, stop, destroy, rename, update, ... */
  action: string;
  containerId: string;
  /** Unix time in nanoseconds as reported by the daemon (timeNano), 0 if absent. */
  timeNano: bigint;
  attributes: Readonly<Record<string, string>>;
}
