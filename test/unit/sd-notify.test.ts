import { afterEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../src/log/logger.js';
import { createSystemdNotifier, watchdogIntervalMsFromEnv } from '../../src/systemd/notify.js';
import { ScriptedRunner } from '../support/scripted-runner.js';

const PID = 4242;
const SOCKET = '/run/systemd/notify';

afterEach(() => {
  vi.useRealTimers();
});

describe('watchdogIntervalMsFromEnv', () => {
  it('pings at half of WATCHDOG_USEC', () => {
    expect(watchdogIntervalMsFromEnv({ WATCHDOG_USEC: '30000000' }, PID)).toBe(15_000);
  });
  it('honours WATCHDOG_PID only when it is ours', () => {
    expect(watchdogIntervalMsFromEnv({ WATCHDOG_USEC: '2000000', WATCHDOG_PID: String(PID) }, PID)).toBe(
      1000,
    );
    expect(watchdogIntervalMsFromEnv({ WATCHDOG_USEC: '2000000', WATCHDOG_PID: '1' }, PID)).toBeNull();
  });
  it('is off when unset, zero or garbage', () => {
    expect(watchdogIntervalMsFromEnv({}, PID)).toBeNull();
    expect(watchdogIntervalMsFromEnv({ WATCHDOG_USEC: '0' }, PID)).toBeNull();
    expect(watchdogIntervalMsFromEnv({ WATCHDOG_USEC: '30s' }, PID)).toBeNull();
  });
});

describe('createSystemdNotifier', () => {
  it('does nothing without NOTIFY_SOCKET (a strict runner with no script fails on any call)', async () => {
    const runner = new ScriptedRunner();
    const notifier = createSystemdNotifier({
      runner,
      env: { WATCHDOG_USEC: '1000000' },
      logger: silentLogger(),
      pid: PID,
    });
    expect(notifier.enabled).toBe(false);
    expect(notifier.watchdogIntervalMs).toBeNull();
    await notifier.ready('ok');
    await notifier.status('x');
    notifier.startWatchdog();
    await notifier.stopping();
    expect(runner.calls).toHaveLength(0);
  });

  it('sends READY with MAINPID and status, then STOPPING, with NOTIFY_SOCKET in the environment', async () => {
    const runner = new ScriptedRunner()
      .expect('systemd-notify', ['--ready', `--pid=${PID}`, '--status=watching 3 containers'])
      .expect('systemd-notify', ['--status=pass 2: 3 containers'])
      .expect('systemd-notify', ['STOPPING=1']);
    const notifier = createSystemdNotifier({
      runner,
      env: { NOTIFY_SOCKET: SOCKET },
      logger: silentLogger(),
      pid: PID,
    });
    await notifier.ready('watching 3 containers');
    await notifier.status('pass 2: 3 containers');
    await notifier.stopping();
    runner.assertDone();
    expect(runner.calls.map((call) => call.env)).toEqual([
      { NOTIFY_SOCKET: SOCKET },
      { NOTIFY_SOCKET: SOCKET },
      { NOTIFY_SOCKET: SOCKET },
    ]);
  });

  it('pings WATCHDOG=1 every half period while healthy and withholds pings while unhealthy', async () => {
    vi.useFakeTimers();
    const runner = new ScriptedRunner().allow('systemd-notify', ['WATCHDOG=1']);
    let healthy = true;
    const notifier = createSystemdNotifier({
      runner,
      env: { NOTIFY_SOCKET: SOCKET, WATCHDOG_USEC: '10000000' },
      logger: silentLogger(),
      pid: PID,
    });
    notifier.startWatchdog(() => healthy);
    notifier.startWatchdog(() => healthy); // idempotent: still one timer
    await vi.advanceTimersByTimeAsync(4_999);
    expect(runner.calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(runner.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(runner.calls).toHaveLength(3);
    healthy = false;
    await vi.advanceTimersByTimeAsync(20_000);
    expect(runner.calls).toHaveLength(3);
    healthy = true;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(runner.calls).toHaveLength(4);
    notifier.stopWatchdog();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(runner.calls).toHaveLength(4);
  });

  it('survives a failing systemd-notify (notification is never fatal)', async () => {
    const runner = new ScriptedRunner().expect('systemd-notify', ['--ready', `--pid=${PID}`, '--status=up'], {
      exitCode: 1,
      stderr: 'No such file or directory',
    });
    const warnings: unknown[] = [];
    const logger = silentLogger();
    logger.warn = ((...args: unknown[]) => {
      warnings.push(args);
    }) as typeof logger.warn;
    const notifier = createSystemdNotifier({ runner, env: { NOTIFY_SOCKET: SOCKET }, logger, pid: PID });
    await expect(notifier.ready('up')).resolves.toBeUndefined();
    expect(warnings).toHaveLength(1);
  });
});
