// The worker supervisor: a fresh BullMQ worker once Redis is back after an outage, the old one retired
// without abandoning its jobs, and a retired worker that hangs in close() never holding anything up.
// Real Redis: a private redis-server (restarted by the test) for the outage, the shared one otherwise.

import test from 'ava';
import { EventEmitter } from 'node:events';
import { Queue, Worker, type Job, type WorkerOptions } from 'bullmq';
import { Redis } from 'ioredis';
import { createLogger, silentLogger } from '../../src/lib/log.ts';
import { redisConfigFromEnv, workerConnectionOptions, type RedisConfig } from '../../src/lib/redis.ts';
import { RedisHealth } from '../../src/runtime/redis-health.ts';
import { XsmRuntime } from '../../src/runtime/runtime.ts';
import { WorkerSupervisor } from '../../src/runtime/worker-supervisor.ts';
import { deleteKeys, freshPrefix } from '../integration/harness.ts';
import { PrivateRedis } from '../scenarios/private-redis.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(ok: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`${what} not within ${ms} ms`);
    await sleep(50);
  }
}

/** Follows a worker's 'closed' event (its `closed` flag is BullMQ's own). */
function closing(w: Worker): { closed: boolean } {
  const state = { closed: false };
  w.once('closed', () => (state.closed = true));
  return state;
}

/** A supervisor of real BullMQ workers on queue `work` (Redis never down), with the workers it made and its log. */
function realWorkers(options: WorkerOptions, processor: (job: Job) => Promise<unknown>) {
  const health = Object.assign(new EventEmitter(), { down: false }) as unknown as RedisHealth;
  const made: Worker[] = [];
  const lines: string[] = [];
  const sup = new WorkerSupervisor({
    queue: 'work',
    processor,
    options,
    health,
    log: createLogger({}, 'debug', (l) => lines.push(l)),
    closeTimeoutMs: 300,
    settleMs: 0,
    make: (q, p, o) => {
      const w = new Worker(q, p, o);
      w.on('error', () => {});
      made.push(w);
      return w;
    },
  });
  return { sup, made, lines };
}

function supervised(rt: XsmRuntime, processor: (job: Job) => Promise<unknown>, logLines: string[] = []) {
  return new WorkerSupervisor({
    queue: 'work',
    processor,
    options: { connection: workerConnectionOptions(rt.config), prefix: rt.config.prefix, concurrency: 2 },
    health: rt.health,
    log: createLogger({}, 'debug', (l) => logLines.push(l)),
    closeTimeoutMs: 1000,
    settleMs: 1000,
  });
}

test('Redis down 7 s: the outage is logged once, the worker is replaced when it is back, and the new one takes jobs', async (t) => {
  const redis = await PrivateRedis.start();
  const lines: string[] = [];
  const config: RedisConfig = { ...redisConfigFromEnv(), url: redis.url, prefix: freshPrefix() };
  const rt = new XsmRuntime(
    config,
    createLogger({}, 'debug', (l) => lines.push(l)),
  );
  const done: string[] = [];
  const supLines: string[] = [];
  const sup = supervised(rt, async (job) => void done.push(job.id!), supLines);
  const queue = rt.queue('work');
  try {
    await sup.waitUntilReady();
    const first = sup.worker;
    const firstState = closing(first);
    await queue.add('x', {}, { jobId: 'before' });
    await until(() => done.includes('before'), 5000, 'the job before the outage');
    await redis.down();
    await sleep(7000);
    await redis.up();
    await until(() => sup.replacements === 1, 5000, 'the replacement');
    t.not(sup.worker, first);
    const t0 = Date.now();
    await queue.add('x', {}, { jobId: 'after' });
    await until(() => done.includes('after'), 5000, 'the job after the outage');
    t.log(`taken ${Date.now() - t0} ms after it was added`);
    // Closed, or (BullMQ 6.7 can hang closing a worker right after Redis returns) forced within 2 s.
    await until(() => sup.retiringCount === 0, 6000, 'the old worker retired');
    t.log(`old worker closed by itself: ${firstState.closed}`);
    const said = lines.map((l) => JSON.parse(l) as { msg: string; downMs?: number });
    t.is(
      said.filter((l) => /Redis unreachable/.test(l.msg)).length,
      1,
      'one line for the outage, however many retries',
    );
    const back = said.filter((l) => l.msg === 'Redis is back');
    t.is(back.length, 1);
    t.true(back[0]!.downMs! >= 7000 && back[0]!.downMs! < 10_000, `downMs ${back[0]!.downMs}`);
    t.deepEqual(done, ['before', 'after']);
    t.log(supLines.join('\n'));
  } finally {
    await sup.close();
    await rt.close();
    await redis.stop();
  }
});

test('a job running when the worker is replaced finishes under the old worker, which closes only then', async (t) => {
  const config: RedisConfig = { ...redisConfigFromEnv(), prefix: freshPrefix() };
  const rt = new XsmRuntime(config, silentLogger);
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const ran: { id: string; worker: Worker }[] = [];
  const sup = supervised(rt, async (job) => {
    ran.push({ id: job.id!, worker: sup.worker });
    if (job.id === 'long') await held;
  });
  const queue = rt.queue('work');
  try {
    await sup.waitUntilReady();
    const first = sup.worker;
    const firstState = closing(first);
    await queue.add('x', {}, { jobId: 'long' });
    await until(() => ran.length === 1, 5000, 'the long job started');
    const replaced = sup.replace('test');
    await sleep(2500); // longer than settleMs + closeTimeoutMs: a running job is never a reason to force
    t.false(firstState.closed, 'the old worker waits for its job');
    await queue.add('x', {}, { jobId: 'next' });
    await until(() => ran.some((r) => r.id === 'next'), 5000, 'the next job');
    t.is(ran.find((r) => r.id === 'next')!.worker, sup.worker, 'taken by the new worker');
    release();
    await replaced;
    t.true(firstState.closed);
    t.is(await queue.getJobState('long'), 'completed');
  } finally {
    release();
    await sup.close();
    await rt.close();
    await deleteKeys(config.prefix);
  }
});

test('a retired worker whose close hangs is forced, then abandoned (its clients ended): replace and close still end', async (t) => {
  const lines: string[] = [];
  const health = Object.assign(new EventEmitter(), { down: false }) as unknown as RedisHealth;
  const made: { closeCalls: number; disconnects: number; clients: { manuallyClosing: boolean }[] }[] = [];
  const rawClient = () => ({
    manuallyClosing: false,
    disconnect(this: { manuallyClosing: boolean }) {
      this.manuallyClosing = true;
    },
  });
  const hanging = () => {
    const clients = [rawClient(), rawClient()];
    const w = Object.assign(new EventEmitter(), {
      closeCalls: 0,
      disconnects: 0,
      clients,
      getBackend: () => ({ connection: { _client: clients[0] }, blockingConnection: { _client: clients[1] } }),
      close() {
        w.closeCalls++;
        return new Promise<void>(() => {});
      },
      disconnect() {
        w.disconnects++;
        return new Promise<void>(() => {});
      },
      waitUntilReady: () => Promise.resolve(),
    });
    made.push(w);
    return w as unknown as Worker;
  };
  const sup = new WorkerSupervisor({
    queue: 'work',
    processor: async () => undefined,
    options: { connection: {} },
    health,
    log: createLogger({}, 'debug', (l) => lines.push(l)),
    closeTimeoutMs: 200,
    settleMs: 0,
    make: hanging,
  });
  health.emit('back', 9000);
  await until(() => made.length === 2, 1000, 'a new worker');
  const t0 = Date.now();
  await sup.replace('again');
  t.true(Date.now() - t0 < 1500, 'replace ended');
  await sup.close(true);
  t.deepEqual(
    made.map((w) => [w.closeCalls, w.disconnects]),
    [
      [1, 1],
      [1, 1],
      [1, 0],
    ],
  );
  const msgs = lines.map((l) => (JSON.parse(l) as { msg: string }).msg);
  t.true(msgs.includes('a retired worker did not close; forcing it'));
  t.true(msgs.includes('a retired worker could not be closed; abandoned it (Redis clients ended, timers stopped)'));
  t.true(msgs.includes('the worker could not be closed; abandoned it (Redis clients ended, timers stopped)'));
  t.deepEqual(
    made.map((w) => w.clients.map((c) => c.manuallyClosing)),
    [
      [true, true],
      [true, true],
      [true, true],
    ],
    "every hung worker's command and blocking clients are ended (no reconnect timer left)",
  );
  t.is(sup.replacements, 2);
});

test('a real BullMQ worker stuck reconnecting to a Redis that is gone: its hung close ends with the worker abandoned and the process free to exit', async (t) => {
  const redis = await PrivateRedis.start();
  const config: RedisConfig = { ...redisConfigFromEnv(), url: redis.url, prefix: freshPrefix() };
  const { sup, made, lines } = realWorkers(
    { connection: workerConnectionOptions(config), prefix: config.prefix },
    async () => undefined,
  );
  // ioredis' own fields: a client dropped while it waits to reconnect keeps status 'reconnecting', but it is
  // closed by hand and has no reconnect timer left (nothing keeps the process alive).
  type RawIoredis = { status: string; manuallyClosing: boolean; reconnectTimeout: NodeJS.Timeout | null };
  const raw = (w: Worker) => {
    const b = w.getBackend() as unknown as Record<'connection' | 'blockingConnection', { _client: RawIoredis }>;
    return [b.connection._client, b.blockingConnection._client];
  };
  const clients = (w: Worker) => raw(w).map((c) => c.status);
  try {
    await sup.waitUntilReady();
    await redis.stop(); // gone for good: the worker's clients reconnect forever, with a timer each
    await until(() => clients(made[0]!).every((s) => s === 'reconnecting'), 5000, 'the clients reconnecting');
    // What BullMQ 6.7 does after an outage: close() and disconnect() start but never settle.
    for (const w of made) {
      const [close, disconnect] = [w.close.bind(w), w.disconnect.bind(w)];
      w.close = (force?: boolean) => (void close(force).catch(() => {}), new Promise<void>(() => {}));
      w.disconnect = () => (void disconnect().catch(() => {}), new Promise<void>(() => {}));
    }
    await sup.close();
    t.deepEqual(
      raw(made[0]!).map((c) => [c.manuallyClosing, c.reconnectTimeout]),
      [
        [true, null],
        [true, null],
      ],
      'both clients closed by hand, no reconnect timer left',
    );
    t.true(lines.some((l) => /abandoned it/.test(l)));
  } finally {
    await sup.close(true);
  }
});

test('forcing a retired worker that shares its connection ends only its blocking connection: the shared one stays up and the new worker takes jobs', async (t) => {
  const config: RedisConfig = { ...redisConfigFromEnv(), prefix: freshPrefix() };
  // One connection for every worker's commands, as a process hosting thousands of simulated agents has.
  const shared = new Redis(config.url, { maxRetriesPerRequest: null });
  const done: string[] = [];
  const { sup, made, lines } = realWorkers(
    { connection: shared, prefix: config.prefix },
    async (job) => void done.push(job.id!),
  );
  const queue = new Queue('work', { connection: shared, prefix: config.prefix });
  try {
    await sup.waitUntilReady();
    const old = made[0]!;
    // As BullMQ 6.7 can after an outage: close() and disconnect() start but never settle.
    const [close, disconnect] = [old.close.bind(old), old.disconnect.bind(old)];
    old.close = (force?: boolean) => (void close(force).catch(() => {}), new Promise<void>(() => {}));
    old.disconnect = () => (void disconnect().catch(() => {}), new Promise<void>(() => {}));
    await sup.replace('test');
    t.true(
      lines.some((l) => /did not close; forcing it/.test(l)),
      'the retired worker was forced',
    );
    t.is(shared.status, 'ready', 'the shared connection was left open');
    t.is(await shared.ping(), 'PONG');
    await sup.worker.waitUntilReady();
    await queue.add('x', {}, { jobId: 'after' });
    await until(() => done.includes('after'), 5000, 'the job after the replacement');
    t.pass();
  } finally {
    await sup.close(true);
    await queue.close();
    await deleteKeys(config.prefix);
    shared.disconnect();
  }
});

test("a supervised worker's own command connection sends one turn's commands in one write; a shared one is left alone", async (t) => {
  const config = { ...redisConfigFromEnv(), prefix: freshPrefix() };
  t.teardown(() => deleteKeys(config.prefix));
  /** Socket writes of two commands issued in one turn on the worker's command connection. */
  const writesOfTwo = async (w: Worker) => {
    const client = (await (w.getBackend() as unknown as { client: Promise<Redis> }).client) as Redis;
    await client.ping();
    const socket = client.stream as unknown as Record<'_write' | '_writev', (...a: unknown[]) => unknown>;
    let writes = 0;
    for (const m of ['_write', '_writev'] as const) {
      const orig = socket[m].bind(socket);
      socket[m] = (...a: unknown[]) => {
        writes++;
        return orig(...a);
      };
    }
    await Promise.all([client.ping(), client.ping()]);
    return writes;
  };
  const own = realWorkers({ connection: workerConnectionOptions(config), prefix: config.prefix }, async () => 'ok');
  t.teardown(() => own.sup.close());
  t.is(await writesOfTwo(own.made[0]!), 1);
  const shared = new Redis(config.url, { maxRetriesPerRequest: null });
  t.teardown(() => shared.disconnect());
  const sharing = realWorkers({ connection: shared, prefix: config.prefix }, async () => 'ok');
  t.teardown(() => sharing.sup.close());
  t.is(await writesOfTwo(sharing.made[0]!), 2);
});
