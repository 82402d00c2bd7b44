// Issue 12 part 3: XSM's queue layout (FlowProducer wave parents, per-host queues, XSM's job options; see
// bench/queue-layout.ts) on BullMQ 6 over Redis and over BullMQ 6's PostgreSQL backend, in the same run,
// each on a server this benchmark starts on loopback and stops:
//   1. throughput: a burst of flows; jobs/s, job latency p50/p99, CPU of the database processes per job,
//      and whether every job ran exactly once. Redis with AOF everysec (how a site should run it);
//      PostgreSQL with synchronous_commit on (its default).
//   2. losing the primary mid-run: a steady stream of flows (11 jobs/s) while the primary is killed (SIGKILL). Redis:
//      a replica and three Sentinels (down-after 1 s) promote, clients follow through Sentinel. PostgreSQL:
//      a streaming replica, promoted by a watchdog after the primary fails health checks for 1 s (as
//      Sentinel's down-after), behind a TCP proxy the watchdog repoints (a site's VIP or HAProxy); node-postgres
//      has no multi-host failover of its own. Measured: the longest gap in job completions, and exactness.
// Needs root (PostgreSQL runs as the postgres user). Run: npx tsx bench/queue-engines.ts [--rounds 3]

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, readdir, rm, chmod, chown } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { freePort } from './private-redis.ts';
import { FlowProducer, Worker, createPostgresBackend } from 'bullmq';
import { median, spread, table } from './figures.ts';
import { LayoutRun, type LayoutShape, type QueueKit } from './queue-layout.ts';

const run = promisify(execFile);
const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' } }, strict: true });
const rounds = Number(values.rounds);
const PG_BIN = '/usr/lib/postgresql/15/bin';
const SHAPE: LayoutShape = { hosts: 20, children: 10, concurrency: 4 };
const BURST_FLOWS = 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** user+system CPU seconds of a process and its direct children (PostgreSQL's backends), from /proc. */
async function cpuSeconds(pid: number): Promise<number> {
  const tick = 100;
  let total = 0;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(fields[1]);
    if (Number(entry) !== pid && ppid !== pid) continue;
    total += (Number(fields[11]) + Number(fields[12])) / tick;
  }
  return total;
}

// --- Redis --------------------------------------------------------------------------------------------

interface RedisSite {
  ports: number[];
  primary: ChildProcess;
  replica: ChildProcess;
  sentinels: ChildProcess[];
  sentinelPorts: number[];
  dir: string;
}

function redisServer(port: number, dir: string, extra: string[] = []): ChildProcess {
  return spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--appendonly',
      'yes',
      '--appendfsync',
      'everysec',
      '--save',
      '',
      '--dbfilename',
      `dump-${port}.rdb`,
      '--appendfilename',
      `aof-${port}.aof`,
      '--appenddirname',
      `aof-${port}`,
      ...extra,
    ],
    { stdio: 'ignore' },
  );
}

async function waitRedis(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (
      await run('redis-cli', ['-p', String(port), 'ping'])
        .then((r) => r.stdout.includes('PONG'))
        .catch(() => false)
    )
      return;
    await sleep(50);
  }
  throw new Error(`redis on ${port} did not start`);
}

async function startRedis(withFailover: boolean): Promise<RedisSite> {
  const dir = await mkdtemp(join(tmpdir(), 'xsm-engines-redis-'));
  const [p1, p2] = [await freePort(), await freePort()];
  const primary = redisServer(p1, dir);
  await waitRedis(p1);
  const site: RedisSite = { ports: [p1, p2], primary, replica: primary, sentinels: [], sentinelPorts: [], dir };
  if (!withFailover) return site;
  site.replica = redisServer(p2, dir, ['--replicaof', '127.0.0.1', String(p1)]);
  await waitRedis(p2);
  for (let i = 0; i < 3; i++) {
    const port = await freePort();
    const conf = join(dir, `sentinel-${port}.conf`);
    await import('node:fs/promises').then((fs) =>
      fs.writeFile(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `sentinel monitor xsm 127.0.0.1 ${p1} 2`,
          'sentinel down-after-milliseconds xsm 1000',
          'sentinel failover-timeout xsm 5000',
          'sentinel parallel-syncs xsm 1',
        ].join('\n') + '\n',
      ),
    );
    site.sentinels.push(spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' }));
    site.sentinelPorts.push(port);
  }
  for (const port of site.sentinelPorts) await waitRedis(port);
  await sleep(1500); // sentinels discover the replica and each other
  return site;
}

async function stopRedis(site: RedisSite): Promise<void> {
  for (const c of [site.primary, site.replica, ...site.sentinels]) if (c.exitCode === null) c.kill('SIGKILL');
  await sleep(200);
  await rm(site.dir, { recursive: true, force: true });
}

function redisKit(site: RedisSite, viaSentinel: boolean): QueueKit {
  const connection = viaSentinel
    ? {
        sentinels: site.sentinelPorts.map((port) => ({ host: '127.0.0.1', port })),
        name: 'xsm',
        maxRetriesPerRequest: null,
      }
    : { host: '127.0.0.1', port: site.ports[0]!, maxRetriesPerRequest: null };
  return {
    label: 'Redis',
    Worker: Worker as unknown as QueueKit['Worker'],
    FlowProducer: FlowProducer as unknown as QueueKit['FlowProducer'],
    options: { connection, prefix: `eng${Date.now()}` },
  };
}

// --- PostgreSQL ---------------------------------------------------------------------------------------

interface PgSite {
  dir: string;
  primaryPort: number;
  replicaPort: number;
  primaryPid: number;
  replicaPid?: number;
  proxy: Proxy;
}

const asPostgres = (args: string[]) => run('runuser', ['-u', 'postgres', '--', ...args], { maxBuffer: 16 << 20 });

async function pgPid(dataDir: string): Promise<number> {
  return Number((await readFile(join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
}

async function startPg(withReplica: boolean): Promise<PgSite> {
  const dir = await mkdtemp(join(tmpdir(), 'xsm-engines-pg-'));
  await chmod(dir, 0o755);
  await chown(dir, 101, 104);
  const primary = join(dir, 'primary');
  const replica = join(dir, 'replica');
  await asPostgres([`${PG_BIN}/initdb`, '-D', primary, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  const primaryPort = await freePort();
  const replicaPort = await freePort();
  const opts = (port: number) =>
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c wal_level=replica -c max_wal_senders=4 -c hot_standby=on -c synchronous_commit=on -c fsync=on`;
  await asPostgres([
    `${PG_BIN}/pg_ctl`,
    '-D',
    primary,
    '-o',
    opts(primaryPort),
    '-l',
    join(dir, 'primary.log'),
    '-w',
    'start',
  ]);
  await asPostgres([`${PG_BIN}/psql`, '-h', dir, '-p', String(primaryPort), '-c', 'CREATE DATABASE xsm']);
  const site: PgSite = {
    dir,
    primaryPort,
    replicaPort,
    primaryPid: await pgPid(primary),
    proxy: await startProxy(primaryPort),
  };
  if (withReplica) {
    await asPostgres([
      `${PG_BIN}/pg_basebackup`,
      '-h',
      dir,
      '-p',
      String(primaryPort),
      '-D',
      replica,
      '-R',
      '-X',
      'stream',
    ]);
    await asPostgres([
      `${PG_BIN}/pg_ctl`,
      '-D',
      replica,
      '-o',
      opts(replicaPort),
      '-l',
      join(dir, 'replica.log'),
      '-w',
      'start',
    ]);
    site.replicaPid = await pgPid(replica);
  }
  return site;
}

async function stopPg(site: PgSite): Promise<void> {
  site.proxy.close();
  for (const pid of [site.primaryPid, site.replicaPid]) if (pid) process.kill(pid, 'SIGKILL');
  await sleep(300);
  await rm(site.dir, { recursive: true, force: true });
}

function pgKit(site: PgSite, schema: string): QueueKit {
  const connection = {
    connectionString: `postgres://postgres@127.0.0.1:${site.proxy.port}/xsm`,
    schema,
    migrate: true,
    max: 20,
  };
  class PgWorker extends Worker {
    constructor(name: string, processor: never, opts: object) {
      super(name, processor, opts as never, createPostgresBackend as never);
    }
  }
  class PgFlowProducer extends FlowProducer {
    constructor(opts: object) {
      super(opts as never, createPostgresBackend as never);
    }
  }
  return {
    label: 'PostgreSQL',
    Worker: PgWorker as unknown as QueueKit['Worker'],
    FlowProducer: PgFlowProducer as unknown as QueueKit['FlowProducer'],
    options: { connection },
  };
}

/** A TCP proxy with a target that can be switched, dropping every open connection (a VIP moving). */
interface Proxy {
  port: number;
  switchTo(port: number): void;
  close(): void;
}
async function startProxy(target: number): Promise<Proxy> {
  let to = target;
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(to, '127.0.0.1');
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('close', () => open.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    switchTo(port) {
      to = port;
      for (const s of open) s.destroy();
    },
    close() {
      for (const s of open) s.destroy();
      server.close();
    },
  };
}

// --- runs ---------------------------------------------------------------------------------------------

interface Throughput {
  jobsPerSec: number;
  p50: number;
  p99: number;
  dbCpuMsPerJob: number;
  clientCpuMsPerJob: number;
  missing: number;
  duplicated: number;
}

async function burst(kit: QueueKit, dbPid: number): Promise<Throughput> {
  const layout = new LayoutRun(kit, SHAPE);
  try {
    await layout.ready();
    const cpu0 = await cpuSeconds(dbPid);
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < BURST_FLOWS) await layout.addFlow(next++);
      }),
    );
    if (!(await layout.waitDone(300_000))) throw new Error(`${kit.label}: not every job ran within 300 s`);
    const db = (await cpuSeconds(dbPid)) - cpu0;
    await sleep(200);
    const r = layout.result();
    return { ...r, dbCpuMsPerJob: (db * 1000) / r.jobs };
  } finally {
    await layout.close();
  }
}

interface Failover {
  stallMs: number;
  missing: number;
  duplicated: number;
  jobs: number;
}

/** A steady flow a second (11 jobs/s, within both engines' reach); the primary is killed 3 s in; 15 s in all. */
async function failover(kit: QueueKit, kill: () => Promise<void>): Promise<Failover> {
  const layout = new LayoutRun(kit, SHAPE);
  try {
    await layout.ready();
    const start = Date.now();
    let f = 0;
    let killedAt = 0;
    const adding = (async () => {
      while (Date.now() - start < 15_000) {
        void layout.addFlow(f++);
        await sleep(1000);
      }
    })();
    await sleep(3000);
    killedAt = Date.now() - start;
    await kill();
    await adding;
    const done = await layout.waitDone(120_000);
    await sleep(1000); // late duplicates
    const r = layout.result();
    // The longest gap between completions from the kill on: how long work stopped.
    const after = r.completions.filter((t) => t >= killedAt - 200);
    let stall = 0;
    let prev = killedAt;
    for (const t of after) {
      stall = Math.max(stall, t - prev);
      prev = t;
    }
    return { stallMs: stall, missing: done ? r.missing : r.missing, duplicated: r.duplicated, jobs: r.jobs };
  } finally {
    await layout.close();
  }
}

const thr: Record<string, Throughput[]> = { Redis: [], PostgreSQL: [] };
const fo: Record<string, Failover[]> = { Redis: [], PostgreSQL: [] };
console.log(
  `queue engines: XSM's layout (${SHAPE.hosts} host queues, ${SHAPE.children} jobs a flow), ${rounds} rounds each`,
);
for (let r = 0; r < rounds; r++) {
  {
    const site = await startRedis(false);
    try {
      thr.Redis!.push(await burst(redisKit(site, false), site.primary.pid!));
    } finally {
      await stopRedis(site);
    }
  }
  {
    const site = await startPg(false);
    try {
      thr.PostgreSQL!.push(await burst(pgKit(site, `b${r}`), site.primaryPid));
    } finally {
      await stopPg(site);
    }
  }
  console.log(
    `round ${r + 1} burst: Redis ${thr.Redis!.at(-1)!.jobsPerSec.toFixed(0)} jobs/s, PostgreSQL ${thr.PostgreSQL!.at(-1)!.jobsPerSec.toFixed(0)} jobs/s`,
  );
  {
    const site = await startRedis(true);
    try {
      fo.Redis!.push(await failover(redisKit(site, true), async () => void site.primary.kill('SIGKILL')));
    } finally {
      await stopRedis(site);
    }
  }
  {
    const site = await startPg(true);
    try {
      const kit = pgKit(site, `f${r}`);
      fo.PostgreSQL!.push(
        await failover(kit, async () => {
          process.kill(site.primaryPid, 'SIGKILL');
          // The watchdog: the primary fails its health check for 1 s (as Sentinel's down-after), then the
          // replica is promoted and the proxy (the VIP) moves to it.
          const deadSince = Date.now();
          void (async () => {
            while (Date.now() - deadSince < 1000) await sleep(100);
            await asPostgres([`${PG_BIN}/pg_ctl`, '-D', join(site.dir, 'replica'), '-w', 'promote']);
            site.proxy.switchTo(site.replicaPort);
          })();
        }),
      );
      site.primaryPid = 0;
    } finally {
      await stopPg(site);
    }
  }
  console.log(
    `round ${r + 1} failover: Redis stall ${fo.Redis!.at(-1)!.stallMs} ms, PostgreSQL stall ${fo.PostgreSQL!.at(-1)!.stallMs} ms`,
  );
}

const row = (engine: string) => {
  const t = thr[engine]!;
  const f = fo[engine]!;
  return [
    engine,
    spread(t.map((x) => x.jobsPerSec)),
    spread(t.map((x) => x.p50)),
    spread(t.map((x) => x.p99)),
    spread(
      t.map((x) => x.dbCpuMsPerJob),
      3,
    ),
    spread(
      t.map((x) => x.clientCpuMsPerJob),
      2,
    ),
    `${t.reduce((a, x) => a + x.missing, 0)} / ${t.reduce((a, x) => a + x.duplicated, 0)}`,
    spread(
      f.map((x) => x.stallMs / 1000),
      2,
    ),
    `${f.reduce((a, x) => a + x.missing, 0)} / ${f.reduce((a, x) => a + x.duplicated, 0)} of ${f.reduce((a, x) => a + x.jobs, 0)}`,
  ];
};
console.log(
  '\n' +
    table(
      [
        'engine',
        'jobs/s',
        'p50 ms',
        'p99 ms',
        'DB CPU ms/job',
        'client CPU ms/job',
        'missing / twice (burst)',
        'stall s (primary lost)',
        'missing / twice (failover)',
      ],
      [row('Redis'), row('PostgreSQL')],
    ),
);
console.log(
  `\nPostgreSQL / Redis: jobs/s ${(median(thr.PostgreSQL!.map((x) => x.jobsPerSec)) / median(thr.Redis!.map((x) => x.jobsPerSec))).toFixed(4)}, stall ${(median(fo.PostgreSQL!.map((x) => x.stallMs)) / median(fo.Redis!.map((x) => x.stallMs))).toFixed(2)}`,
);
