// The step journal of a real BullMQ job (src/lib/steps.ts jobJournal): each write lands in the job's
// progress field, where a worker that picks the job up after a crash reads it back; it costs 3 Redis
// commands, not BullMQ updateProgress's 5; a job removed under it is refused, not recreated; and only the
// run holding the job's lock may write it (a run whose job was handed over after its lock lapsed is refused).

import test, { type ExecutionContext } from 'ava';
import { Job, Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { JobLostError } from '../../src/lib/errors.ts';
import { jobJournal, type JobProgress } from '../../src/lib/steps.ts';
import { redisConfigFromEnv, workerConnectionOptions } from '../../src/lib/redis.ts';
import { deleteKeys, freshPrefix } from './harness.ts';
import { privateRedis } from '../../bench/private-redis.ts';

// A redis-server of this file's own, so that only this test's commands are counted (INFO commandstats, which
// counts the commands scripts run too).
let stopRedis: () => void = () => {};
test.before(async () => {
  stopRedis = await privateRedis();
});
test.after.always(() => stopRedis());

/** A queue on a fresh prefix of this file's Redis and a plain client beside it, removed when the test ends. */
function journalQueue(t: ExecutionContext): { queue: Queue; redis: Redis; prefix: string } {
  const config = redisConfigFromEnv();
  const prefix = freshPrefix();
  const queue = new Queue('journal', { connection: workerConnectionOptions(config), prefix });
  const redis = new Redis(config.url, { maxRetriesPerRequest: null });
  t.teardown(async () => {
    await queue.close();
    await redis.quit();
    await deleteKeys(prefix, config.url);
  });
  return { queue, redis, prefix };
}

/**
 * A worker that fetches jobs by hand (no processor): it never renews a lock, as a run whose process is frozen
 * would not, and its stalled-job check hands a lapsed job over as a running agent's does.
 */
function manualWorker(t: ExecutionContext, prefix: string, lockDuration = 30_000): Worker {
  const worker = new Worker('journal', null, {
    connection: workerConnectionOptions(redisConfigFromEnv()),
    prefix,
    lockDuration,
    stalledInterval: 100,
  });
  t.teardown(() => worker.close(true));
  return worker;
}

/**
 * The job `id`, taken by a run with lock token `token` as a worker takes it (moved to active, locked), once it
 * is waiting: a job handed over is back in wait only after the stalled-job check found its lock gone.
 */
async function take(worker: Worker, token: string, id: string): Promise<Job> {
  const until = Date.now() + 5000;
  for (;;) {
    const job = await worker.getNextJob(token, { block: false });
    if (job) {
      if (job.id !== id) throw new Error(`expected job ${id}, got ${job.id}`);
      return job;
    }
    if (Date.now() > until) throw new Error(`job ${id} was not handed to ${token} within 5 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const step = (name: string, index: number) => ({ workflow: 'create', step: name, index, total: 4 });

/** Calls per command since the last RESETSTAT, leaving out the test's own CONFIG and INFO. */
async function commandStats(redis: Redis): Promise<Record<string, number>> {
  const info = await redis.info('commandstats');
  const calls: Record<string, number> = {};
  for (const line of info.split('\n')) {
    const hit = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (hit && !hit[1]!.startsWith('config') && hit[1] !== 'info') calls[hit[1]!] = Number(hit[2]);
  }
  return calls;
}

test.serial(
  'a journal write is in the job hash for the next worker, with no event on the stream, in 3 commands',
  async (t) => {
    const { queue, redis, prefix } = journalQueue(t);
    await queue.add('create', { vm: 'a' }, { jobId: 'j1' });
    const job = await take(manualWorker(t, prefix), 'run-a', 'j1');
    const journal = jobJournal(job);
    t.deepEqual(journal.load(), { done: [] });
    await journal.record(
      { done: [], current: 'check-plan' },
      { workflow: 'create', step: 'check-plan', index: 1, total: 2 },
    );
    const state = { done: ['check-plan'], current: 'xl-create', attempts: { 'xl-create': 1 } };
    const progress = { workflow: 'create', step: 'xl-create', index: 2, total: 2 };
    await redis.config('RESETSTAT');
    await journal.record(state, progress);
    // The script is known to Redis since the first write: it is sent by its SHA1.
    t.deepEqual(await commandStats(redis), { evalsha: 1, get: 1, hset: 1 });

    // What a worker that picks the job up after a crash reads: the job as stored in Redis.
    const stored = await Job.fromId(queue, 'j1');
    t.deepEqual(stored!.progress, { ...progress, journal: state } satisfies JobProgress);
    t.deepEqual(jobJournal(stored!).load(), state);
    t.deepEqual(journal.load(), state, 'the job object in hand holds what was written');
    // Nothing reads the queue's event stream for progress; the write leaves none there.
    const events = await redis.xrange(`${prefix}:journal:events`, '-', '+');
    t.false(events.some((e) => e[1].includes('progress')));
  },
);

test.serial('a job removed while its journal is written is refused with its id, and not recreated', async (t) => {
  const { queue, redis, prefix } = journalQueue(t);
  await queue.add('create', { vm: 'a' }, { jobId: 'j2' });
  const job = await take(manualWorker(t, prefix), 'run-a', 'j2');
  // BullMQ removes no locked job; obliterating the queue removes it, lock and all.
  await queue.obliterate({ force: true });
  const e = await t.throwsAsync(jobJournal(job).record({ done: [], current: 'check-plan' }, step('check-plan', 1)));
  t.regex(e!.message, /job j2 is gone from queue journal/);
  t.is(await redis.exists(`${prefix}:journal:j2`), 0);
});

test.serial(
  'a run whose lock lapsed and whose job was handed to another run is refused; the new owner resumes from what the first wrote while it owned the job',
  async (t) => {
    const { queue, redis, prefix } = journalQueue(t);
    await queue.add('create', { vm: 'a' }, { jobId: 'j3' });
    const worker = manualWorker(t, prefix, 300);
    const first = await take(worker, 'run-a', 'j3');
    const owned = { done: ['check-plan', 'render-config'], current: 'provision-disks' };
    await jobJournal(first).record(owned, step('provision-disks', 3));
    // The first run renews nothing: its lock lapses, and the stalled-job check hands the job over.
    await worker.startStalledCheckTimer();
    const second = await take(worker, 'run-b', 'j3');
    t.is(await redis.get(`${prefix}:journal:j3:lock`), 'run-b');
    t.deepEqual(jobJournal(second).load(), owned, 'the takeover reads what the first run wrote while it owned the job');

    const late = { done: ['check-plan', 'render-config', 'provision-disks'], current: 'xl-create' };
    const e = await t.throwsAsync(jobJournal(first).record(late, step('xl-create', 4)), { instanceOf: JobLostError });
    t.regex(e!.message, /job j3 of queue journal is no longer this run's/);
    t.deepEqual((await Job.fromId(queue, 'j3'))!.progress, { ...step('provision-disks', 3), journal: owned });

    await jobJournal(second).record(late, step('xl-create', 4));
    t.deepEqual((await Job.fromId(queue, 'j3'))!.progress, { ...step('xl-create', 4), journal: late });
  },
);

test.serial('a run whose lock lapsed is refused before any run took the job over', async (t) => {
  const { queue, redis, prefix } = journalQueue(t);
  await queue.add('create', { vm: 'a' }, { jobId: 'j4' });
  const job = await take(manualWorker(t, prefix, 200), 'run-a', 'j4');
  await new Promise((r) => setTimeout(r, 400));
  t.is(await redis.exists(`${prefix}:journal:j4:lock`), 0);
  await t.throwsAsync(jobJournal(job).record({ done: [], current: 'xl-create' }, step('xl-create', 4)), {
    instanceOf: JobLostError,
  });
  t.is((await Job.fromId(queue, 'j4'))!.progress, 0, 'nothing was written');
});

test.serial('a job no worker took (no lock token) has its journal written by nobody', async (t) => {
  const { queue } = journalQueue(t);
  const job = await queue.add('create', { vm: 'a' }, { jobId: 'j5' });
  const e = await t.throwsAsync(jobJournal(job).record({ done: [], current: 'check-plan' }, step('check-plan', 1)));
  t.regex(e!.message, /job j5 was not taken by a worker/);
  t.is((await Job.fromId(queue, 'j5'))!.progress, 0);
});
