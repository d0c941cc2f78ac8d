// A real sd_notify socket for tests: a python3 process binds an AF_UNIX datagram socket (Node has
// none), prints every datagram it receives as a JSON line, and closes the fds that come with
// BARRIER=1 messages the way PID 1 does, so that systemd-notify's barrier returns at once.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const LISTENER = String.raw`
import array, json, os, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print(json.dumps({"listening": path}), flush=True)
while True:
    msg, anc, flags, addr = s.recvmsg(65536, socket.CMSG_SPACE(64 * 4) + socket.CMSG_SPACE(12))
    pid = None
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
            for fd in fds:
                os.close(fd)
        elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = int.from_bytes(data[0:4], sys.byteorder)
    print(json.dumps({"message": msg.decode("utf-8", "replace"), "pid": pid}), flush=True)
`;

export interface NotifyMessage {
  /** The assignments, e.g. { READY: '1', STATUS: '...' }. */
  fields: Record<string, string>;
  raw: string;
  pid: number | null;
  at: number;
}

export interface NotifySocket {
  path: string;
  /** Every message but systemd-notify's BARRIER=1 ones, which are only counted. */
  messages: NotifyMessage[];
  barriers(): number;
  /** Resolves with the first message (from `from` on) that satisfies `pred`. */
  waitFor(pred: (m: NotifyMessage) => boolean, timeoutMs?: number, from?: number): Promise<NotifyMessage>;
  close(): Promise<void>;
}

export function parseNotify(raw: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of raw.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) fields[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return fields;
}

export async function startNotifySocket(): Promise<NotifySocket> {
  const dir = mkdtempSync(join(tmpdir(), 'notify-'));
  const path = join(dir, 'notify.sock');
  const proc: ChildProcess = spawn('python3', ['-c', LISTENER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages: NotifyMessage[] = [];
  let barriers = 0;
  const waiters = new Set<() => void>();
  let listening: () => void = () => {};
  const bound = new Promise<void>((resolve, reject) => {
    listening = resolve;
    proc.once('error', reject);
    proc.once('exit', (code) => reject(new Error(`notify listener exited with ${code}`)));
  });
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    const obj = JSON.parse(line) as { listening?: string; message?: string; pid?: number | null };
    if (obj.listening !== undefined) return listening();
    if (obj.message === undefined) return;
    if (obj.message === 'BARRIER=1') {
      barriers++;
      return;
    }
    messages.push({ raw: obj.message, fields: parseNotify(obj.message), pid: obj.pid ?? null, at: Date.now() });
    for (const w of [...waiters]) w();
  });
  await bound;
  return {
    path,
    messages,
    barriers: () => barriers,
    waitFor(pred, timeoutMs = 10_000, from = 0) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = messages.slice(from).find(pred);
          if (found) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(found);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching notify message within ${timeoutMs} ms; got: ${JSON.stringify(messages.map((m) => m.raw))}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async close() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
