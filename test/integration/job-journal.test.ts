// The step journal of a real BullMQ job (src/lib/steps.ts jobJournal): each write lands in the job's
// progress field, where a worker that picks the job up after a crash reads it back; it costs 3 Redis
// commands, not BullMQ updateProgress's 5; and a job removed under it is refused, not recreated.

import test, { type ExecutionContext } from 'ava';
import { Job, Queue } from 'bullmq';
import { Redis } from 'ioredis';
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
    const job = await queue.add('create', { vm: 'a' }, { jobId: 'j1' });
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
    t.deepEqual(await commandStats(redis), { eval: 1, exists: 1, hset: 1 });

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
  const job = await queue.add('create', { vm: 'a' }, { jobId: 'j2' });
  await job.remove();
  const e = await t.throwsAsync(
    jobJournal(job).record(
      { done: [], current: 'check-plan' },
      { workflow: 'create', step: 'check-plan', index: 1, total: 1 },
    ),
  );
  t.regex(e!.message, /job j2 is gone from queue journal/);
  t.is(await redis.exists(`${prefix}:journal:j2`), 0);
});
