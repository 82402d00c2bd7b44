// Power control of a QEMU machine over QMP (the test lab's "BMC"). One connection per call: greeting,
// qmp_capabilities, then commands. Replies are matched by their echoed id, never by order, because
// asynchronous events (STOP, RESET, SHUTDOWN) may arrive before a command's return.

import { connect, type Socket } from 'node:net';
import type { PowerControl, PowerState } from './power.ts';

type QmpMessage = {
  QMP?: unknown;
  return?: unknown;
  error?: { class: string; desc: string };
  event?: string;
  id?: unknown;
};

export class QmpError extends Error {
  constructor(
    readonly qmpClass: string,
    message: string,
  ) {
    super(message);
    this.name = 'QmpError';
  }
}

/** A QMP session on a unix socket. */
export class QmpClient {
  private buf = '';
  private nextId = 1;
  private waiters = new Map<string, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private greeting?: (m: QmpMessage) => void;
  readonly events: QmpMessage[] = [];

  private constructor(
    private readonly sock: Socket,
    private readonly path: string,
  ) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (line) this.onMessage(JSON.parse(line) as QmpMessage);
      }
    });
    const fail = (e: Error) => {
      for (const w of this.waiters.values()) w.reject(e);
      this.waiters.clear();
    };
    sock.on('error', (e) => fail(new Error(`qmp ${path}: ${e.message}`)));
    sock.on('close', () => fail(new Error(`qmp ${path}: connection closed`)));
  }

  static open(path: string, timeoutMs = 10_000): Promise<QmpClient> {
    return new Promise((resolve, reject) => {
      const sock = connect(path);
      const client = new QmpClient(sock, path);
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error(`qmp ${path}: no greeting within ${timeoutMs} ms`));
      }, timeoutMs);
      sock.once('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`qmp ${path}: ${e.message}`));
      });
      client.greeting = () => {
        clearTimeout(timer);
        client.execute('qmp_capabilities').then(() => resolve(client), reject);
      };
    });
  }

  private onMessage(m: QmpMessage): void {
    if (m.QMP !== undefined) {
      this.greeting?.(m);
      this.greeting = undefined;
      return;
    }
    if (m.event !== undefined) {
      this.events.push(m);
      return;
    }
    if ('return' in m || 'error' in m) {
      const key = JSON.stringify(m.id);
      const w = this.waiters.get(key);
      if (!w) return;
      this.waiters.delete(key);
      if (m.error) w.reject(new QmpError(m.error.class, `qmp ${this.path}: ${m.error.class}: ${m.error.desc}`));
      else w.resolve(m.return);
    }
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    const id = `xsm-${this.nextId++}`;
    return new Promise<T>((resolve, reject) => {
      this.waiters.set(JSON.stringify(id), { resolve: resolve as (v: unknown) => void, reject });
      this.sock.write(JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id }) + '\n');
    });
  }

  close(): void {
    this.sock.end();
    this.sock.destroy();
  }
}

export class QmpPower implements PowerControl {
  readonly describe: string;

  /** `beforeConnect` runs before every connection: the socket's confinement is checked each time. */
  constructor(
    private readonly socketPath: string,
    private readonly beforeConnect?: () => Promise<void>,
  ) {
    this.describe = `qmp ${socketPath}`;
  }

  private async session<T>(fn: (c: QmpClient) => Promise<T>): Promise<T> {
    await this.beforeConnect?.();
    const c = await QmpClient.open(this.socketPath);
    try {
      return await fn(c);
    } finally {
      c.close();
    }
  }

  /** The raw QEMU RunState ("running", "paused", "prelaunch", "shutdown", ...). */
  runState(): Promise<string> {
    return this.session(async (c) => (await c.execute<{ status: string }>('query-status')).status);
  }

  async status(): Promise<PowerState> {
    const s = await this.runState();
    if (s === 'running') return 'on';
    // A stopped machine (started with -S, stopped, or halted with -no-shutdown) is "off" for XSM.
    if (s === 'prelaunch' || s === 'paused' || s === 'shutdown') return 'off';
    return 'unknown';
  }

  async on(): Promise<void> {
    await this.session(async (c) => {
      const { status } = await c.execute<{ status: string }>('query-status');
      if (status === 'running') return;
      // From "shutdown" a reset is needed before cont; from prelaunch/paused it starts a fresh boot too.
      if (status !== 'prelaunch') await c.execute('system_reset');
      await c.execute('cont');
    });
  }

  async off(): Promise<void> {
    await this.session(async (c) => {
      const { status } = await c.execute<{ status: string }>('query-status');
      if (status === 'running') await c.execute('stop');
      const after = await c.execute<{ status: string }>('query-status');
      if (after.status === 'running') throw new Error(`${this.describe}: still running after stop`);
    });
  }

  async bootFromNetwork(): Promise<void> {
    // QMP has no boot-order command; the HMP `boot_set` sets the order used at the next reset.
    await this.session(async (c) => {
      const out = await c.execute<string>('human-monitor-command', { 'command-line': 'boot_set n' });
      if (typeof out !== 'string' || !/boot device list now set to n/.test(out))
        throw new Error(`${this.describe}: boot_set n answered: ${String(out).trim()}`);
    });
  }
}
