/**
 * systemd readiness and watchdog (sd_notify) for `Type=notify` units.
 *
 * Node cannot send unix datagrams without a native addon, so messages go through the real
 * `systemd-notify` binary via the command runner. The sender is then a child process, which is why
 * the unit sets `NotifyAccess=all` and READY=1 carries `--pid=<our pid>` (MAINPID). systemd 252's
 * systemd-notify waits for the manager to process each message (no `--no-block`), so the message is
 * not dropped because the short-lived child exited before systemd looked up its cgroup.
 *
 * Everything is a no-op without NOTIFY_SOCKET (not started by systemd). Failures are logged and
 * swallowed: notification is a courtesy to the service manager, never a reason to stop serving
 * (zigbee2mqtt does the same).
 */
import type { CommandRunner } from '../exec/runner.js';
import type { Logger } from '../log/logger.js';
import { realTimers, unrefTimer, type Timers } from '../util/clock.js';

export interface SystemdNotifier {
  /** True when NOTIFY_SOCKET is set: messages are actually sent. */
  readonly enabled: boolean;
  /** Watchdog ping interval (half of WATCHDOG_USEC), or null when systemd set no watchdog for us. */
  readonly watchdogIntervalMs: number | null;
  /** READY=1 plus a status line; call after the first pass completed. */
  ready(status: string): Promise<void>;
  /** STATUS=<text>: shown by `systemctl status`. */
  status(text: string): Promise<void>;
  /**
   * Starts WATCHDOG=1 pings every watchdogIntervalMs (no-op without a watchdog). Idempotent.
   * `isHealthy` (e.g. "the last pass finished less than N intervals ago") withholds pings while it
   * returns false, so systemd restarts an agent whose loop is wedged even though its timers still run.
   */
  startWatchdog(isHealthy?: () => boolean): void;
  /** Stops the pings (also done by stopping()). */
  stopWatchdog(): void;
  /** STOPPING=1: the agent is shutting down. */
  stopping(): Promise<void>;
}

export interface SystemdNotifierOptions {
  runner: CommandRunner;
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** Our pid (default process.pid): sent as MAINPID and compared with WATCHDOG_PID. */
  pid?: number;
  /** Timer functions (default: the globals, which tests fake with vi.useFakeTimers). */
  timers?: Timers;
}

/** Timeout for one systemd-notify call: the manager answers in milliseconds unless it is wedged. */
const NOTIFY_TIMEOUT_MS = 5_000;

/**
 * Half of WATCHDOG_USEC in milliseconds, as sd_watchdog_enabled() would allow: null when unset,
 * unparsable, zero, or meant for another process (WATCHDOG_PID set to a different pid).
 */
export function watchdogIntervalMsFromEnv(env: NodeJS.ProcessEnv, pid: number): number | null {
  const usecText = env.WATCHDOG_USEC;
  if (!usecText || !/^\d+$/.test(usecText)) return null;
  const watchdogPid = env.WATCHDOG_PID;
  if (watchdogPid && watchdogPid !== String(pid)) return null;
  const usec = Number(usecText);
  if (usec <= 0) return null;
  return Math.max(1, Math.floor(usec / 1000 / 2));
}

export function createSystemdNotifier(options: SystemdNotifierOptions): SystemdNotifier {
  const { runner, env, logger } = options;
  const pid = options.pid ?? process.pid;
  const notifySocket = env.NOTIFY_SOCKET;
  const enabled = Boolean(notifySocket);
  const watchdogIntervalMs = enabled ? watchdogIntervalMsFromEnv(env, pid) : null;
  const timers = options.timers ?? realTimers;
  let watchdogTimer: unknown = null;
  let pingInFlight = false;

  async function send(args: string[]): Promise<void> {
    if (!notifySocket) return;
    try {
      await runner.run({
        tool: 'systemd-notify',
        args,
        env: { NOTIFY_SOCKET: notifySocket },
        timeoutMs: NOTIFY_TIMEOUT_MS,
      });
    } catch (error) {
      logger.warn({ err: error, args }, 'systemd notification failed');
    }
  }

  function stopWatchdog(): void {
    if (watchdogTimer === null) return;
    timers.clearTimeout(watchdogTimer);
    watchdogTimer = null;
  }

  return {
    enabled,
    watchdogIntervalMs,
    ready: (status) => send(['--ready', `--pid=${pid}`, `--status=${status}`]),
    status: (text) => send([`--status=${text}`]),
    startWatchdog(isHealthy) {
      if (watchdogIntervalMs === null || watchdogTimer !== null) return;
      logger.debug({ watchdogIntervalMs }, 'systemd watchdog pings started');
      const interval = watchdogIntervalMs;
      const tick = () => {
        watchdogTimer = timers.setTimeout(tick, interval);
        unrefTimer(watchdogTimer); // the pings never keep the process alive
        // A ping that is still waiting for the manager is enough; never queue more behind it.
        if (pingInFlight) return;
        if (isHealthy && !isHealthy()) {
          logger.warn('agent unhealthy: systemd watchdog ping withheld');
          return;
        }
        pingInFlight = true;
        void send(['WATCHDOG=1']).finally(() => {
          pingInFlight = false;
        });
      };
      watchdogTimer = timers.setTimeout(tick, interval);
      unrefTimer(watchdogTimer);
    },
    stopWatchdog,
    async stopping() {
      stopWatchdog();
      await send(['STOPPING=1']);
    },
  };
}
