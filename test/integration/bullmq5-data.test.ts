// Redis data an XSM on BullMQ 5 left behind, met by this XSM on BullMQ 6. The data is written by the real
// BullMQ 5 (the `bullmq-v5` alias of bullmq@5.81.5) under a fresh prefix, then checked, brought forward or
// refused by upgradeQueueData, and run by BullMQ 6 workers.

import test from 'ava';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { FlowProducer as FlowProducerV5, Queue as QueueV5 } from 'bullmq-v5';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { LegacyQueueDataError, upgradeQueueData } from '../../src/state/queue-data.ts';
import { actionJobOptions, CONTROL_QUEUE, hostQueueName } from '../../src/runtime/queues.ts';
import { closeWhenReady, redisConfigFromEnv, workerConnectionOptions } from '../../src/lib/redis.ts';
import { deleteKeys, freshPrefix } from './harness.ts';

const config = redisConfigFromEnv();
const connection = workerConnectionOptions(config);

async function withPrefix(t: { teardown(fn: () => Promise<void>): void }): Promise<{ prefix: string; redis: Redis }> {
  const prefix = freshPrefix();
  const redis = new Redis(config.url, { maxRetriesPerRequest: null });
  t.teardown(async () => {
    await redis.quit();
    await deleteKeys(prefix);
  });
  return { prefix, redis };
}

/** A BullMQ 6 worker that records which job ids it ran, in order. */
function recordingWorker(prefix: string, queue: string, ran: string[]): Worker {
  return new Worker(
    queue,
    async (job: Job) => {
      ran.push(job.id!);
      return 'ok';
    },
    { connection, prefix },
  );
}

async function until(check: () => Promise<boolean> | boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('waiting and delayed jobs, a wave waiting for its children and the failover-check scheduler from BullMQ 5 all run under BullMQ 6', async (t) => {
  const { prefix, redis } = await withPrefix(t);
  const control5 = new QueueV5(CONTROL_QUEUE, { connection, prefix });
  const flows5 = new FlowProducerV5({ connection, prefix });
  await control5.add('apply', { version: 1 }, { jobId: 'apply-v1' });
  await control5.add('apply', { version: 2 }, { jobId: 'apply-v2', delay: 300 });
  await flows5.add({
    name: 'wave',
    queueName: CONTROL_QUEUE,
    data: { version: 1, wave: 0, waves: 1 },
    opts: { jobId: 'v1-wave-0' },
    children: ['a', 'b'].map((vm) => ({
      name: 'create',
      queueName: hostQueueName('h1'),
      data: { vm },
      opts: { ...actionJobOptions, jobId: `v1-create-${vm}` },
    })),
  });
  await control5.upsertJobScheduler('failover-check', { every: 400 }, { name: 'failover-check', data: {} });
  await Promise.all([control5.close(), flows5.close()]);

  const report = await upgradeQueueData(redis, prefix);
  t.deepEqual(report, {
    queues: [
      { name: CONTROL_QUEUE, writtenBy: 'bullmq:5.81.5' },
      // Only the flow producer wrote to the host queue, and it records no version.
      { name: hostQueueName('h1'), writtenBy: null },
    ],
    movedFromPausedList: {},
  });

  const ranControl: string[] = [];
  const ranHost: string[] = [];
  const workers = [recordingWorker(prefix, CONTROL_QUEUE, ranControl), recordingWorker(prefix, 'host-h1', ranHost)];
  t.teardown(() => Promise.all(workers.map((w) => closeWhenReady(w))).then(() => {}));
  await until(
    () =>
      ['apply-v1', 'apply-v2', 'v1-wave-0'].every((id) => ranControl.includes(id)) &&
      ranControl.filter((id) => id.startsWith('repeat:failover-check:')).length >= 2,
    'the BullMQ 5 jobs and two scheduler iterations',
  );
  t.deepEqual([...ranHost].sort(), ['v1-create-a', 'v1-create-b']);
  const control6 = new Queue(CONTROL_QUEUE, { connection, prefix });
  t.teardown(() => closeWhenReady(control6));
  const schedulers = await control6.getJobSchedulers();
  t.deepEqual(
    schedulers.map((s) => [s.key, s.every]),
    [['failover-check', 400]],
  );
});

test('a queue paused under BullMQ 5: its jobs move from the old paused list into wait, it stays paused, and they run in order once resumed', async (t) => {
  const { prefix, redis } = await withPrefix(t);
  const host5 = new QueueV5(hostQueueName('h1'), { connection, prefix });
  await host5.add('create', {}, { jobId: 'first' });
  await host5.pause();
  await host5.add('create', {}, { jobId: 'second' });
  await host5.close();
  t.deepEqual(await redis.lrange(`${prefix}:host-h1:paused`, 0, -1), ['second', 'first'], 'BullMQ 5 keeps them apart');

  const host6 = new Queue(hostQueueName('h1'), { connection, prefix });
  t.teardown(() => closeWhenReady(host6));
  t.is((await host6.getJobCounts('waiting')).waiting, 0, 'BullMQ 6 alone does not see them');

  const report = await upgradeQueueData(redis, prefix);
  t.deepEqual(report.movedFromPausedList, { 'host-h1': 2 });
  t.is(await redis.exists(`${prefix}:host-h1:paused`), 0);
  t.true(await host6.isPaused(), 'still paused, as the operator left it');
  t.is((await host6.getJobCounts('waiting')).waiting, 2);
  t.deepEqual((await upgradeQueueData(redis, prefix)).movedFromPausedList, {}, 'a second run has nothing to do');

  const ran: string[] = [];
  const worker = recordingWorker(prefix, 'host-h1', ran);
  t.teardown(() => closeWhenReady(worker));
  await new Promise((r) => setTimeout(r, 500));
  t.deepEqual(ran, [], 'a paused queue runs nothing');
  await host6.resume();
  await until(() => ran.length === 2, 'both jobs');
  t.deepEqual(ran, ['first', 'second']);
});

test('jobs of a paused BullMQ 5 queue join the waiting jobs BullMQ 6 already added, oldest first', async (t) => {
  const { prefix, redis } = await withPrefix(t);
  const host5 = new QueueV5(hostQueueName('h1'), { connection, prefix });
  await host5.pause();
  for (const id of ['p1', 'p2']) await host5.add('create', {}, { jobId: id });
  await host5.close();
  const host6 = new Queue(hostQueueName('h1'), { connection, prefix });
  t.teardown(() => closeWhenReady(host6));
  await host6.add('create', {}, { jobId: 'n1' });

  t.deepEqual((await upgradeQueueData(redis, prefix)).movedFromPausedList, { 'host-h1': 2 });
  const ran: string[] = [];
  const worker = recordingWorker(prefix, 'host-h1', ran);
  t.teardown(() => closeWhenReady(worker));
  await host6.resume();
  await until(() => ran.length === 3, 'three jobs');
  t.deepEqual(ran, ['p1', 'p2', 'n1']);
});

test('BullMQ 5 repeatable jobs are refused with a message naming each and what to do, and nothing is changed', async (t) => {
  const { prefix, redis } = await withPrefix(t);
  const control5 = new QueueV5(CONTROL_QUEUE, { connection, prefix });
  await control5.add('nightly-report', { to: 'ops' }, { repeat: { pattern: '0 3 * * *' } });
  await control5.add('poll', {}, { repeat: { every: 60_000 } });
  await control5.upsertJobScheduler('rebalance', { every: 60_000 }, { name: 'rebalance', data: {} });
  const host5 = new QueueV5(hostQueueName('h1'), { connection, prefix });
  await host5.pause();
  await host5.add('create', {}, { jobId: 'held' });
  await Promise.all([control5.close(), host5.close()]);
  const before = await snapshot(redis, prefix);

  const e = await t.throwsAsync(upgradeQueueData(redis, prefix), { instanceOf: LegacyQueueDataError });
  t.is(e!.legacy.length, 2, 'the job scheduler is not among them');
  t.regex(e!.message, new RegExp(`prefix "${prefix}" holds 2 BullMQ 5 repeatable job`));
  t.regex(e!.message, /queue control: "nightly-report" pattern 0 3 \* \* \* \(repeat key [0-9a-f]{32}\)/);
  t.regex(e!.message, /queue control: "poll" every 60000 ms/);
  t.regex(e!.message, /upsertJobScheduler.*removeRepeatableByKey/);
  t.regex(e!.message, /Nothing in Redis was changed/);
  t.deepEqual(await snapshot(redis, prefix), before, 'not even the paused list was moved');
});

test('the API process refuses to start on BullMQ 5 repeatable jobs, saying what to do', async (t) => {
  const { prefix, redis } = await withPrefix(t);
  const control5 = new QueueV5(CONTROL_QUEUE, { connection, prefix });
  await control5.add('poll', {}, { repeat: { every: 60_000 } });
  await control5.close();
  const child = spawn(process.execPath, ['--import=tsx', 'workers/api.ts'], {
    env: { ...process.env, XSM_PREFIX: prefix, XSM_TOKENS: 'a-long-enough-admin-token:admin', XSM_API_PORT: '0' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  // An API that started anyway would serve forever: stop it after a while so the test fails, not hangs.
  const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(guard);
  t.is(code, 2, stderr);
  t.regex(stderr, /xsm api: Redis under prefix ".*" holds 1 BullMQ 5 repeatable job.*"poll" every 60000 ms/);
  t.is((await redis.keys(`${prefix}:control:repeat:*`)).length, 2, 'its definition and next job are left alone');
});

async function snapshot(redis: Redis, prefix: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const k of (await redis.keys(`${prefix}:*`)).sort()) {
    const type = await redis.type(k);
    if (type === 'hash') out[k] = await redis.hgetall(k);
    else if (type === 'list') out[k] = await redis.lrange(k, 0, -1);
    else if (type === 'zset') out[k] = await redis.zrange(k, '0', '-1', 'WITHSCORES');
    else if (type === 'string') out[k] = await redis.get(k);
    else out[k] = type;
  }
  return out;
}
