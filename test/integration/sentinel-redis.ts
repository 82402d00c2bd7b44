// A Redis Sentinel deployment of a test's own on loopback: one master, one replica and three sentinels
// (quorum 2, down-after 1 s), each on a free port, in a temporary directory removed by stop(). The master
// can be killed (SIGKILL, as a machine lost) and the sentinels promote the replica.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { SentinelAddress } from '../../src/lib/redis.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** Asks a server on `port` until `ok` says yes, within `ms`. */
async function ask<T>(port: number, cmd: (r: Redis) => Promise<T>, ok: (v: T) => boolean, ms: number, what: string) {
  const until = Date.now() + ms;
  for (;;) {
    const r = new Redis({
      port,
      host: '127.0.0.1',
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      // A port taken by another test's server after freePort() let it go answers nothing Redis-like: without
      // these, the ask waited on it forever (a CI run hung here).
      connectTimeout: 1000,
      commandTimeout: 1000,
    });
    r.on('error', () => {});
    try {
      await r.connect();
      const v = await cmd(r);
      if (ok(v)) return v;
    } catch {
      // not up yet
    } finally {
      r.disconnect();
    }
    if (Date.now() > until) throw new Error(`${what} not within ${ms} ms`);
    await sleep(100);
  }
}

export class SentinelRedis {
  readonly name = 'xsm-test';
  private readonly children = new Map<number, ChildProcess>();
  private constructor(
    private readonly dir: string,
    /** Data nodes' ports: [master, replica] as started. */
    readonly dataPorts: number[],
    readonly sentinelPorts: number[],
  ) {}

  /**
   * Starts the deployment; a start that fails (a port freePort() gave out was taken by another test's server
   * before the node bound it, so that node died) is stopped and made again on new ports, up to 3 times.
   */
  static async start(): Promise<SentinelRedis> {
    for (let attempt = 1; ; attempt++) {
      const s = await SentinelRedis.startOnce();
      try {
        await s.ready();
        return s;
      } catch (e) {
        await s.stop();
        if (attempt === 3) throw e;
      }
    }
  }

  private static async startOnce(): Promise<SentinelRedis> {
    const dir = await mkdtemp(join(tmpdir(), 'xsm-sentinel-'));
    const s = new SentinelRedis(dir, [await freePort(), await freePort()], []);
    for (let i = 0; i < 3; i++) s.sentinelPorts.push(await freePort());
    const [master, replica] = s.dataPorts as [number, number];
    s.data(master);
    s.data(replica, ['--replicaof', '127.0.0.1', String(master)]);
    for (const port of s.sentinelPorts) {
      const conf = join(dir, `sentinel-${port}.conf`);
      await writeFile(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${s.name} 127.0.0.1 ${master} 2`,
          `sentinel down-after-milliseconds ${s.name} 1000`,
          `sentinel failover-timeout ${s.name} 5000`,
          `sentinel parallel-syncs ${s.name} 1`,
        ].join('\n') + '\n',
      );
      s.children.set(port, spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' }));
    }
    return s;
  }

  /** Waits until the replica follows the master and every sentinel knows the replica and the others. */
  private async ready(): Promise<void> {
    await ask(
      this.dataPorts[1]!,
      (r) => r.info('replication'),
      (v) => /master_link_status:up/.test(v),
      10_000,
      'replication',
    );
    // Every sentinel knows the replica and the other sentinels, so a failover can be agreed on.
    for (const port of this.sentinelPorts)
      await ask(
        port,
        (r) => r.call('SENTINEL', 'MASTER', this.name) as Promise<string[]>,
        (v) => {
          const f = new Map<string, string>();
          for (let i = 0; i + 1 < v.length; i += 2) f.set(v[i]!, v[i + 1]!);
          return f.get('num-slaves') === '1' && f.get('num-other-sentinels') === '2';
        },
        15_000,
        `sentinel ${port} discovering the replica and the others`,
      );
  }

  private data(port: number, extra: string[] = []): void {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', ''];
    const files = ['--appendonly', 'yes', '--appendfilename', `aof-${port}.aof`, '--appenddirname', `aof-${port}`];
    this.children.set(port, spawn('redis-server', [...args, ...files, ...extra], { stdio: 'ignore' }));
  }

  get sentinels(): SentinelAddress[] {
    return this.sentinelPorts.map((port) => ({ host: '127.0.0.1', port }));
  }

  /** The master's port as the sentinels say it now. */
  async masterPort(): Promise<number> {
    const [, port] = (await ask(
      this.sentinelPorts[0]!,
      (r) => r.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.name) as Promise<string[]>,
      (v) => Array.isArray(v) && v.length === 2,
      5000,
      'the master address',
    )) as [string, string];
    return Number(port);
  }

  /** Kills the master with SIGKILL (a lost machine: nothing flushed, no goodbye). Returns its port. */
  async killMaster(): Promise<number> {
    const port = await this.masterPort();
    const child = this.children.get(port)!;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
    return port;
  }

  /** Waits until the sentinels name another master than `old`; returns the new one's port. */
  async promoted(old: number, ms = 20_000): Promise<number> {
    const until = Date.now() + ms;
    for (;;) {
      const port = await this.masterPort();
      if (port !== old) return port;
      if (Date.now() > until) throw new Error(`no failover within ${ms} ms`);
      await sleep(100);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(
      [...this.children.values()].map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once('exit', () => resolve());
            c.kill('SIGKILL');
          }),
      ),
    );
    await rm(this.dir, { recursive: true, force: true });
  }
}
