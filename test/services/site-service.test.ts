// The submit path's rules, run on twins (no Redis): plan once and store with the version, identical content
// stores nothing, a stale base or an unconsented stop stores nothing, the apply is enqueued once per version.
// test/integration/ runs the same service on Redis and BullMQ.

import test from 'ava';
import { memoryRuntime, type MemoryRuntime } from '../../src/runtime/service-runtime.ts';
import { ConsentRequiredError, enqueueApply, submitSite, type SubmitRequest } from '../../src/services/site-service.ts';
import type { DomainInfo } from '../../src/site/domain.ts';
import { serializeSite } from '../../src/site/serialize.ts';
import type { VmSpec } from '../../src/site/model.ts';
import { StaleVersionError } from '../../src/state/site-store.ts';
import { host, template, vm } from '../site/helpers.ts';

const siteXml = (vms: VmSpec[]) =>
  serializeSite({
    sets: [{ name: 's', vms: vms.map((v) => v.name) }],
    hosts: [host('h1', 4096), host('h2', 4096)],
    templates: [template],
    vms,
  });

const request = (xml: string, base: number, more: Partial<SubmitRequest> = {}): SubmitRequest => ({
  xml,
  file: 'site.xml',
  base,
  author: 'ann',
  reason: 'test',
  consent: 'none',
  apply: true,
  ...more,
});

const running = (name: string, memMiB: number): DomainInfo => ({
  name,
  domid: 5,
  state: 'running',
  memMiB,
  maxMemMiB: memMiB,
  vcpus: 1,
  maxVcpus: 1,
  cpuTimeSec: 1,
});

async function reportRunning(rt: MemoryRuntime, hostName: string, domains: DomainInfo[]): Promise<void> {
  await rt.observed.report({
    name: hostName,
    heartbeatAt: Date.now(),
    totalMemMiB: 4096,
    freeMemMiB: 4096 - domains.reduce((s, d) => s + d.memMiB, 0),
    nrCpus: 8,
    domains,
  });
}

test('a first submit is planned once, stored with its plan, and its apply enqueued once', async (t) => {
  const rt = memoryRuntime();
  const r = await submitSite(rt, request(siteXml([vm('a', 'h1', 256), vm('b', 'h2', 256)]), 0));
  if (r.unchanged) return t.fail('stored nothing');
  t.is(r.version, 1);
  t.deepEqual(r.plan.actions.map((a) => a.id).sort(), ['create:a', 'create:b']);
  t.deepEqual(await rt.sites.plan(1), r.plan, 'what was shown is what is stored');
  t.is(r.applyJob, 'apply-v1');
  t.deepEqual([...rt.controlQueue.jobs.keys()], ['apply-v1']);
  t.like(await enqueueApply(rt, 1, 'ann'), { jobId: 'apply-v1', duplicate: true });
  t.is(rt.controlQueue.jobs.size, 1, 'a second apply of one version enqueues nothing');
});

test('identical content stores nothing and enqueues nothing', async (t) => {
  const rt = memoryRuntime();
  const xml = siteXml([vm('a', 'h1', 256)]);
  await submitSite(rt, request(xml, 0));
  await reportRunning(rt, 'h1', [running('a', 256)]);
  const again = await submitSite(rt, request(xml, 1));
  t.true(again.unchanged);
  t.is(await rt.sites.currentVersion(), 1);
  t.is(rt.controlQueue.jobs.size, 1);
});

test('a change based on an old version is refused and stores nothing', async (t) => {
  const rt = memoryRuntime();
  await submitSite(rt, request(siteXml([vm('a', 'h1', 256)]), 0));
  await submitSite(rt, request(siteXml([vm('a', 'h1', 256), vm('b', 'h1', 256)]), 1));
  await t.throwsAsync(submitSite(rt, request(siteXml([vm('c', 'h2', 256)]), 1)), { instanceOf: StaleVersionError });
  t.is(await rt.sites.currentVersion(), 2);
});

test('removing a running VM without consent is refused, naming it; with consent it is stored', async (t) => {
  const rt = memoryRuntime();
  await submitSite(rt, request(siteXml([vm('a', 'h1', 256), vm('b', 'h1', 256)]), 0));
  await reportRunning(rt, 'h1', [running('a', 256), running('b', 256)]);
  const without = siteXml([vm('a', 'h1', 256)]);
  const e = await t.throwsAsync(submitSite(rt, request(without, 1)), { instanceOf: ConsentRequiredError });
  t.regex(e.message, /remove:b \(b is shut down and destroyed on h1\); nothing was stored/);
  t.is(await rt.sites.currentVersion(), 1);
  t.is(rt.controlQueue.jobs.size, 1);
  const r = await submitSite(rt, request(without, 1, { consent: 'operator' }));
  t.false(r.unchanged);
  t.is(await rt.sites.currentVersion(), 2);
});
