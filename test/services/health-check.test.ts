// Failure detection on twins (no Redis), with time passed by hand: a silent host is suspected, fenced after
// the confirmation window with one failover job, cleared when it reports again; when most hosts go silent at
// once nobody is fenced. test/failover/ runs the whole failover on Redis with agents.

import test from 'ava';
import { memoryRuntime, type MemoryRuntime } from '../../src/runtime/service-runtime.ts';
import { checkHosts, failoverJobId, type FailoverPolicy } from '../../src/services/health-check.ts';
import { submitSite } from '../../src/services/site-service.ts';
import { serializeSite } from '../../src/site/serialize.ts';
import { host, template } from '../site/helpers.ts';

const POLICY: FailoverPolicy = { suspectAfterMs: 30_000, fenceAfterMs: 30_000, maxDeadFraction: 0.5 };
const HOSTS = ['h1', 'h2', 'h3', 'h4'];

async function site(): Promise<MemoryRuntime> {
  const rt = memoryRuntime();
  const xml = serializeSite({ sets: [], hosts: HOSTS.map((h) => host(h, 4096)), templates: [template], vms: [] });
  await submitSite(rt, { xml, file: 'site.xml', base: 0, author: 'ann', reason: 't', consent: 'none', apply: false });
  return rt;
}

async function beat(rt: MemoryRuntime, hosts: string[], at: number): Promise<void> {
  for (const name of hosts)
    await rt.observed.report({ name, heartbeatAt: at, totalMemMiB: 4096, freeMemMiB: 4096, nrCpus: 8, domains: [] });
}

test('a silent host is suspected, then fenced once after the confirmation window', async (t) => {
  const rt = await site();
  await beat(rt, HOSTS, 0);
  t.deepEqual(await checkHosts(rt, POLICY, undefined, 10_000), []);
  await beat(rt, ['h1', 'h2', 'h3'], 40_000);
  const suspected = await checkHosts(rt, POLICY, undefined, 45_000);
  t.deepEqual(
    suspected.map((c) => [c.host, c.to]),
    [['h4', 'suspect']],
  );
  t.is(rt.controlQueue.jobs.size, 0, 'suspicion alone fences nothing');
  await beat(rt, ['h1', 'h2', 'h3'], 70_000);
  const fenced = await checkHosts(rt, POLICY, undefined, 76_000);
  t.deepEqual(
    fenced.map((c) => [c.host, c.from, c.to]),
    [['h4', 'suspect', 'fencing']],
  );
  t.deepEqual([...rt.controlQueue.jobs.keys()], [failoverJobId('h4', 0)]);
  t.like(rt.controlQueue.jobs.get(failoverJobId('h4', 0)), { name: 'failover', data: { host: 'h4', incident: 0 } });
  await beat(rt, ['h1', 'h2', 'h3'], 80_000);
  t.deepEqual(await checkHosts(rt, POLICY, undefined, 81_000), [], 'a host being fenced belongs to its failover job');
  t.is(rt.controlQueue.jobs.size, 1);
});

test('a suspected host that reports again is healthy and nothing is fenced', async (t) => {
  const rt = await site();
  await beat(rt, HOSTS, 0);
  await beat(rt, ['h1', 'h2', 'h3'], 40_000);
  await checkHosts(rt, POLICY, undefined, 45_000);
  await beat(rt, HOSTS, 50_000);
  const back = await checkHosts(rt, POLICY, undefined, 60_000);
  t.deepEqual(
    back.map((c) => [c.host, c.from, c.to]),
    [['h4', 'suspect', 'healthy']],
  );
  t.is(await rt.failover.health('h4'), undefined);
  t.is(rt.controlQueue.jobs.size, 0);
});

test('when most hosts go silent at once, the checker suspects itself and fences nobody', async (t) => {
  const rt = await site();
  await beat(rt, HOSTS, 0);
  await beat(rt, ['h1'], 40_000);
  await checkHosts(rt, POLICY, undefined, 45_000);
  const later = await checkHosts(rt, POLICY, undefined, 200_000);
  t.true(later.every((c) => c.to !== 'fencing'));
  t.is(rt.controlQueue.jobs.size, 0);
  t.regex((await rt.failover.health('h2'))?.detail ?? '', /[34] of 4 hosts look dead at once; .* fencing nobody/);
});

test('an empty host in maintenance that goes silent (a rolling upgrade rebooting it) is neither suspected nor fenced', async (t) => {
  const rt = memoryRuntime();
  const hosts = HOSTS.map((h) => ({ ...host(h, 4096), maintenance: h === 'h4' }));
  const xml = serializeSite({ sets: [], hosts, templates: [template], vms: [] });
  await submitSite(rt, { xml, file: 'site.xml', base: 0, author: 'ann', reason: 't', consent: 'none', apply: false });
  await beat(rt, HOSTS, 0);
  for (const now of [40_000, 80_000, 120_000]) {
    await beat(rt, ['h1', 'h2', 'h3'], now);
    t.deepEqual(await checkHosts(rt, POLICY, undefined, now + 5_000), []);
  }
  t.is(rt.controlQueue.jobs.size, 0, 'nothing fenced');
  t.deepEqual(await rt.failover.allHealth(), {});
});
