import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { Job } from 'bullmq';
import { startTestSite } from './harness.ts';
import { siteXml } from './fixtures.ts';
import { StaleVersionError, InvalidSiteError } from '../../src/state/site-store.ts';
import { enqueueApply } from '../../src/services/site-service.ts';
import { hostQueueName, waveEnqueueJobId, waveJobId } from '../../src/runtime/queues.ts';
import { processWaveEnqueue, someOf, waveFlow } from '../../src/jobs/apply.ts';

const HOSTS = [
  { name: 'h1', memMiB: 1024 },
  { name: 'h2', memMiB: 1024 },
  { name: 'h3', memMiB: 1024 },
];

test('applies a site, then a change with a migration and a live reconfigure', async (t) => {
  const s = await startTestSite(HOSTS);
  t.teardown(() => s.close());
  const v1 = await s.submitAndApply(
    siteXml(HOSTS, [
      { name: 'a', host: 'h1', mem: 256 },
      { name: 'b', host: 'h2', mem: 256 },
      { name: 'c', host: 'h3', mem: 512 },
    ]),
  );
  await s.waitConverged(v1);
  t.deepEqual(await s.where(), { a: 'h1', b: 'h2', c: 'h3' });
  const v2 = await s.submitAndApply(
    siteXml(HOSTS, [
      { name: 'a', host: 'h2', mem: 256 },
      { name: 'b', host: 'h2', mem: 512, vcpus: 2 },
    ]),
  );
  await s.waitConverged(v2);
  t.deepEqual(await s.where(), { a: 'h2', b: 'h2' });
  const b = await s.hv.get('h2')!.find('b');
  t.is(b?.memMiB, 512);
  t.is(b?.vcpus, 2);
  const hist = await s.rt.sites.history();
  t.deepEqual(
    hist.map((h) => [h.version, h.base, h.author]),
    [
      [2, 1, 'test'],
      [1, 0, 'test'],
    ],
  );
});

test('re-applying a version enqueues nothing twice', async (t) => {
  const s = await startTestSite(HOSTS);
  t.teardown(() => s.close());
  const v = await s.submitAndApply(siteXml(HOSTS, [{ name: 'a', host: 'h1', mem: 256 }]));
  await s.waitConverged(v);
  const again = await enqueueApply(s.rt, v, 'test');
  t.true(again.duplicate);
  const counts = await s.rt.hostQueue('h1').getJobCounts('completed', 'waiting', 'active', 'failed');
  t.like(counts, { completed: 1, waiting: 0, active: 0, failed: 0 });
  t.deepEqual(await s.where(), { a: 'h1' });
});

test('a change based on a stale version is refused and nothing is overwritten', async (t) => {
  const s = await startTestSite(HOSTS, { agents: false });
  t.teardown(() => s.close());
  const xml1 = siteXml(HOSTS, [{ name: 'a', host: 'h1', mem: 256 }]);
  await s.rt.sites.submit(xml1, { base: 0, author: 'alice', reason: 'first' });
  await s.rt.sites.submit(siteXml(HOSTS, [{ name: 'b', host: 'h1', mem: 256 }]), {
    base: 1,
    author: 'alice',
    reason: 'second',
  });
  const err = await t.throwsAsync(
    s.rt.sites.submit(siteXml(HOSTS, [{ name: 'c', host: 'h1', mem: 256 }]), {
      base: 1,
      author: 'bob',
      reason: 'late',
    }),
    { instanceOf: StaleVersionError },
  );
  t.regex(err!.message, /based on version 1 but the current version is 2/);
  t.is(await s.rt.sites.currentVersion(), 2);
  t.is((await s.rt.sites.get(2))?.author, 'alice');
});

test('an invalid site file is refused with its errors and nothing is stored', async (t) => {
  const s = await startTestSite(HOSTS, { agents: false });
  t.teardown(() => s.close());
  const bad = siteXml(HOSTS, [{ name: 'a', host: 'h9', mem: 256 }]);
  const err = await t.throwsAsync(s.rt.sites.submit(bad, { base: 0, author: 'x', reason: 'y', file: 'up.xml' }), {
    instanceOf: InvalidSiteError,
  });
  t.regex((err as InvalidSiteError).issues[0]!.message, /DOM0 "h9" is no known host/);
  t.is((err as InvalidSiteError).issues[0]!.line, 11);
  t.is(await s.rt.sites.currentVersion(), 0);
});

test('one host failing does not stop the others', async (t) => {
  const s = await startTestSite(HOSTS);
  t.teardown(() => s.close());
  await s.hv.get('h2')!.setFailing('xl: cannot connect to xenstored');
  const v = await s.submitAndApply(
    siteXml(HOSTS, [
      { name: 'a', host: 'h1', mem: 256 },
      { name: 'b', host: 'h2', mem: 256 },
      { name: 'c', host: 'h3', mem: 256 },
    ]),
  );
  // h1 and h3 finish while h2's job keeps retrying with backoff.
  const until = Date.now() + 15000;
  while (Object.keys(await s.where()).length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  const where = await s.where();
  t.is(where.a, 'h1');
  t.is(where.c, 'h3');
  const job = await s.rt.queue(hostQueueName('h2')).getJob(`v${v}-create-b`);
  t.truthy(job);
  t.is(job!.data.restart, false, 'the control worker found no failover restart: the agent need not look it up');
  await new Promise((r) => setTimeout(r, 300));
  t.true((await job!.getState()) !== 'completed');
  // The host recovers: the retry (with backoff) completes the job, exactly one VM b.
  await s.hv.get('h2')!.setFailing(undefined);
  await s.waitConverged(v, 30000);
  t.deepEqual(await s.where(), { a: 'h1', b: 'h2', c: 'h3' });
});

test('a VM that does not fit fails at once with a clear reason (no retries)', async (t) => {
  const s = await startTestSite([{ name: 'h1', memMiB: 1024 }]);
  t.teardown(() => s.close());
  // Something outside XSM's knowledge eats the host's memory.
  await s.hv.get('h1')!.create({ name: 'intruder', text: 'name = "intruder"\nmemory = 900\nvcpus = 1\n' });
  const v = await s.submitAndApply(siteXml([{ name: 'h1', memMiB: 1024 }], [{ name: 'a', host: 'h1', mem: 512 }]));
  const q = s.rt.hostQueue('h1');
  const until = Date.now() + 10000;
  const id = `v${v}-create-a`;
  while ((await q.getJobState(id)) !== 'failed' && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  // Read the job once it has failed: a copy read before the move can still show 0 attempts.
  const job = await q.getJob(id);
  t.is(await job!.getState(), 'failed');
  t.is(job!.attemptsMade, 1);
  t.regex(job!.failedReason, /h1 has \d+ MiB free but a needs 512 MiB/);
});

test('a migration that needs capacity freed first waits for the removal', async (t) => {
  const hosts = [
    { name: 'h1', memMiB: 1024 },
    { name: 'h2', memMiB: 1024 },
  ];
  const s = await startTestSite(hosts);
  t.teardown(() => s.close());
  const v1 = await s.submitAndApply(
    siteXml(hosts, [
      { name: 'big', host: 'h2', mem: 768 },
      { name: 'mover', host: 'h1', mem: 512 },
    ]),
  );
  await s.waitConverged(v1);
  const v2 = await s.submitAndApply(siteXml(hosts, [{ name: 'mover', host: 'h2', mem: 512 }]));
  await s.waitConverged(v2);
  t.deepEqual(await s.where(), { mover: 'h2' });
  const remove = await s.rt.hostQueue('h2').getJob(`v${v2}-remove-big`);
  const move = await s.rt.hostQueue('h1').getJob(`v${v2}-migrate-mover`);
  t.truthy(remove?.finishedOn && move?.processedOn);
  t.true(move!.processedOn! >= remove!.finishedOn!, 'the migration started only after the removal finished');
});

test('a wave bigger than one flow gets its actions in chunks; its adder rerun after a crash adds none twice', async (t) => {
  const hosts = [
    { name: 'h1', memMiB: 65536 },
    { name: 'h2', memMiB: 65536 },
  ];
  // Three flows and a bit: the same path as a 100,000-action wave's, at a size the suite runs quickly.
  waveFlow.chunk = 40;
  t.teardown(() => (waveFlow.chunk = 1000));
  const n = 3 * waveFlow.chunk + 7;
  const s = await startTestSite(hosts, { agents: false });
  t.teardown(() => s.close());
  const vms = Array.from({ length: n }, (_, i) => ({ name: `vm${i}`, host: i % 2 ? 'h2' : 'h1', mem: 32 }));
  const v = await s.submitAndApply(siteXml(hosts, vms));
  const wave = await waitFor(() => Job.fromId(s.rt.control(), waveJobId(v, 0)));
  // Read again once completed: a copy read while it ran has no return value.
  const adderId = waveEnqueueJobId(v, 0);
  const adder = await waitFor(async () =>
    (await s.rt.control().getJobState(adderId)) === 'completed' ? Job.fromId(s.rt.control(), adderId) : undefined,
  );
  t.is(adder.returnvalue, n);
  t.is(await wave.getState(), 'waiting-children', 'no action ran yet: the wave waits');
  // The adder's retry after a control worker died mid-way: the same jobIds, nothing added twice.
  t.is(await processWaveEnqueue(s.rt, adder), n);
  const waiting = async () => {
    const counts = await Promise.all(hosts.map((h) => s.rt.hostQueue(h.name).getJobCountByTypes('waiting')));
    return counts.reduce((a, b) => a + b, 0);
  };
  t.is(await waiting(), n);
  t.is((await wave.getDependenciesCount()).unprocessed, n);
  for (const h of hosts) s.startAgent(h.name);
  await s.waitConverged(v, 120_000);
  t.is(Object.keys(await s.where()).length, n);
  t.is(await waiting(), 0);
});

async function waitFor<T>(get: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  for (const until = Date.now() + timeoutMs; Date.now() < until; await sleep(100)) {
    const v = await get();
    if (v) return v;
  }
  throw new Error(`nothing after ${timeoutMs} ms`);
}

test("a partial apply's summary names 20 actions and counts the rest", (t) => {
  const ids = Array.from({ length: 4003 }, (_, i) => `create:vm${i}`);
  t.is(someOf(ids.slice(0, 2)), 'create:vm0, create:vm1');
  const said = someOf(ids);
  t.true(said.startsWith('create:vm0, create:vm1, '));
  t.true(said.endsWith('create:vm19 and 3983 more'));
});
