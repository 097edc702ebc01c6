/**
 * Readiness and watchdog pings reach a real NOTIFY_SOCKET: a python3 datagram receiver stands in
 * for the service manager and records what the real systemd-notify binary sends, through the real
 * command runner. It also answers systemd-notify's BARRIER=1 (closes the passed fd) like PID 1 does.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ExecaRunner } from '../../src/exec/runner.js';
import { silentLogger } from '../../src/log/logger.js';
import { createSystemdNotifier } from '../../src/systemd/notify.js';
import { describeWith, type Prereq, executable } from '../support/prereqs.js';

const PYTHON = '/usr/bin/python3';

const systemdNotify: Prereq = {
  name: 'systemd-notify',
  ok: () => executable('/usr/bin/systemd-notify') || executable('/bin/systemd-notify'),
  fix: 'apt-get install systemd',
};
const python3: Prereq = { name: 'python3', ok: () => executable(PYTHON), fix: 'apt-get install python3' };

// Prints one JSON line per datagram: the text and the sender pid (SO_PASSCRED), closing any fds.
const RECEIVER = String.raw`
import json, os, socket, struct, sys
path = sys.argv[1]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
sock.bind(path)
print(json.dumps({"listening": path}), flush=True)
while True:
    data, ancdata, flags, addr = sock.recvmsg(4096, socket.CMSG_SPACE(64) + socket.CMSG_SPACE(12))
    pid = None
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            for fd in struct.unpack("%di" % (len(payload) // 4), payload[: len(payload) - len(payload) % 4]):
                os.close(fd)
        elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("3i", payload[:12])[0]
    print(json.dumps({"text": data.decode(), "pid": pid}), flush=True)
`;

interface Datagram {
  text: string;
  pid: number | null;
}

describeWith([systemdNotify, python3], 'sd_notify through the real systemd-notify', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'agsdn-'));
  const socketPath = path.join(dir, 'notify.sock');
  const received: Datagram[] = [];
  let receiver: ChildProcess;

  beforeAll(async () => {
    receiver = spawn(PYTHON, ['-c', RECEIVER, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = createInterface({ input: receiver.stdout! });
    await new Promise<void>((resolve, reject) => {
      receiver.once('exit', (code) => reject(new Error(`receiver exited with ${code}`)));
      lines.on('line', (line) => {
        const message = JSON.parse(line) as Partial<Datagram> & { listening?: string };
        if (message.listening) resolve();
        else received.push(message as Datagram);
      });
    });
  });

  afterAll(() => {
    receiver?.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  async function waitFor(predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out; received ${JSON.stringify(received)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  it('sends READY=1 with MAINPID and STATUS, WATCHDOG=1 pings at half of WATCHDOG_USEC, and STOPPING=1', async () => {
    const notifier = createSystemdNotifier({
      runner: new ExecaRunner(),
      // a 400ms watchdog: pings every 200ms
      env: { NOTIFY_SOCKET: socketPath, WATCHDOG_USEC: '400000', WATCHDOG_PID: String(process.pid) },
      logger: silentLogger(),
    });
    expect(notifier.watchdogIntervalMs).toBe(200);

    await notifier.ready('first pass done: 2 containers');
    const ready = received.find((message) => message.text.includes('READY=1'));
    expect(ready?.text.split('\n')).toEqual(
      expect.arrayContaining(['READY=1', `MAINPID=${process.pid}`, 'STATUS=first pass done: 2 containers']),
    );

    const started = Date.now();
    notifier.startWatchdog();
    const pings = () => received.filter((message) => message.text.split('\n').includes('WATCHDOG=1'));
    await waitFor(() => pings().length >= 3);
    const elapsedMs = Date.now() - started;
    // three pings at a 200ms cadence cannot arrive before ~600ms
    expect(elapsedMs).toBeGreaterThanOrEqual(550);
    await notifier.stopping();
    expect(received.some((message) => message.text.split('\n').includes('STOPPING=1'))).toBe(true);
    // a ping already in flight when we stopped may still land; after that, silence
    await new Promise((resolve) => setTimeout(resolve, 100));
    const countAfterStop = pings().length;
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(pings().length).toBe(countAfterStop);
    // systemd-notify waited for the manager after each message (BARRIER=1 with an fd we closed), so
    // a message is never lost because the short-lived sender exited before PID 1 looked it up.
    const barriers = received.filter((message) => message.text === 'BARRIER=1').length;
    expect(barriers).toBeGreaterThanOrEqual(countAfterStop + 2);
  });
});
