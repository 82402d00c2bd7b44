// The second fencing method: a host whose power driver does not answer is fenced by its self-fence lease.
// Its agent, cut from Redis, stops its own domains before the lease expires; failover restarts them elsewhere
// only after the lease expired. Every change the simulated hosts make is recorded: no VM runs twice.

import test from 'ava';
import { MemorySimStore, SimulatedXenHost, provisionSimHost } from '../../src/drivers/hypervisor/simulated.ts';
import { renderDomainConfig } from '../../src/drivers/hypervisor/domain-config.ts';
import { serializeSite } from '../../src/site/serialize.ts';
import { host, template, vm } from '../site/helpers.ts';
import { AgentFence } from '../../src/jobs/agent-fence.ts';
import { silentLogger } from '../../src/lib/log.ts';
import type { XsmRuntime } from '../../src/runtime/runtime.ts';
import { memoryRuntime } from '../../src/runtime/service-runtime.ts';
import { checkHosts, failoverJobId, type FailoverPolicy } from '../../src/services/health-check.ts';
import { startHostAgent } from '../../workers/host-agent-lib.ts';
import { siteXml, type HostLine } from '../integration/fixtures.ts';
import { startTestSite } from '../integration/harness.ts';
import { noVmRunsTwice, type WorldState } from '../scenarios/invariants.ts';
import { RecordingStore } from '../scenarios/runner.ts';

process.env.XSM_QMP_DIR = '/nonexistent/xsm-test';
const POLICY: FailoverPolicy = { suspectAfterMs: 400, fenceAfterMs: 300, maxDeadFraction: 0.5 };

test('a host cut from Redis stops its domains itself; failover restarts them only after its lease expired', async (t) => {
  const hosts: HostLine[] = [
    { name: 'h1', memMiB: 2048, power: { driver: 'qmp', address: '/nonexistent/xsm-test/h1.qmp' } },
    { name: 'h2', memMiB: 2048 },
    { name: 'h3', memMiB: 2048 },
  ];
  const states: WorldState[] = [];
  const s = await startTestSite(hosts, { store: new RecordingStore(states) });
  t.teardown(() => s.close());
  // h1's agent keeps a 1.5 s lease, through a runtime the test can cut from Redis (a network partition).
  let cut = false;
  const refuse = () => Promise.reject(new Error('connect ETIMEDOUT'));
  const partitioned = new Proxy(s.rt, {
    get(target, prop, recv) {
      const v: unknown = Reflect.get(target, prop, recv);
      if (prop !== 'fence' && prop !== 'observed') return v;
      return new Proxy(v as object, {
        get: (st, m) => (cut ? refuse : (Reflect.get(st, m) as (...a: unknown[]) => unknown).bind(st)),
      });
    },
  }) as XsmRuntime;
  await s.agents.get('h1')!.close();
  s.agents.set(
    'h1',
    startHostAgent({
      rt: partitioned,
      hv: s.hv.get('h1')!,
      log: silentLogger,
      heartbeatMs: 200,
      lease: { ttlMs: 1500 },
    }),
  );
  const v1 = await s.submitAndApply(
    siteXml(hosts, [
      { name: 'a', host: 'h1', mem: 512 },
      { name: 'b', host: 'h2', mem: 512 },
    ]),
  );
  await s.waitConverged(v1);
  t.is((await s.rt.fence.lease('h1'))?.ttlMs, 1500);

  cut = true;
  const cutAt = Date.now();
  let jobId = '';
  for (const end = Date.now() + 20_000; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) {
    await checkHosts(s.rt, POLICY);
    const h = await s.rt.failover.health('h1');
    if (h && h.state !== 'suspect') jobId = failoverJobId('h1', h.incident);
    const job = jobId ? await s.rt.control().getJob(jobId) : undefined;
    if (job && ['completed', 'failed'].includes(await job.getState())) break;
  }
  const job = (await s.rt.control().getJob(jobId))!;
  t.is(await job.getState(), 'completed', job.failedReason);
  t.true(await s.hv.get('h1')!.isPowered(), 'the power driver never answered: h1 was not powered off');
  const v2 = await s.rt.sites.currentVersion();
  await s.waitConverged(v2);
  const where = await s.where();
  t.true(where.a === 'h2' || where.a === 'h3', `a restarted once, on a survivor (${where.a})`);
  // a was stopped on h1 by the watchdog (h1 itself), before anything started it elsewhere.
  const stoppedOnH1 = states.findIndex((st, i) => i > 0 && !st.hosts.h1?.some((d) => d.name === 'a'));
  const startedElsewhere = states.findIndex((st) => ['h2', 'h3'].some((h) => st.hosts[h]?.some((d) => d.name === 'a')));
  t.true(
    stoppedOnH1 >= 0 && stoppedOnH1 < startedElsewhere,
    `stopped at state ${stoppedOnH1}, started at ${startedElsewhere}`,
  );
  t.true(Date.now() - cutAt >= 1500, 'failover waited out the lease');
  t.deepEqual(noVmRunsTwice({ states } as never), []);
  t.is((await s.rt.failover.health('h1'))!.state, 'fenced');
});

test('a fenced agent back after its VMs were restarted elsewhere destroys those, keeps the rest, then rejoins', async (t) => {
  const rt = memoryRuntime();
  const store = new MemorySimStore();
  await provisionSimHost(store, { name: 'h1', totalMemMiB: 4096, dom0MemMiB: 512, nrCpus: 4 });
  const hv = new SimulatedXenHost(store, 'h1', { createMs: 0 });
  for (const name of ['moved', 'stays']) await hv.create(renderDomainConfig(vm(name, 'h1', 256), template));
  const xml = serializeSite({
    sets: [{ name: 's', vms: ['moved', 'stays'] }],
    hosts: [host('h1', 4096), host('h2', 4096)],
    templates: [template],
    vms: [vm('moved', 'h2', 256), vm('stays', 'h1', 256)],
  });
  await rt.sites.submit(xml, { base: 0, author: 't', reason: 'failover placed moved on h2' });
  await rt.fence.fence('h1', 1);
  const fence = new AgentFence(rt as unknown as XsmRuntime, hv, silentLogger, 0);
  await t.throwsAsync(fence.admit(1), { message: /joined at epoch 0 but h1 was fenced since \(epoch 1\)/ });
  await t.throwsAsync(fence.admit(0), { message: /issued at h1's epoch 0, but h1 was fenced since/ });
  await rt.failover.setHealth('h1', { state: 'fencing', incident: 1, since: 0 });
  t.false(await fence.beat(), 'no rejoin while failover is still fencing the host');
  t.deepEqual(
    (await hv.list()).filter((d) => d.domid !== 0),
    [],
    'and its domains are stopped meanwhile',
  );
  for (const name of ['moved', 'stays']) await hv.create(renderDomainConfig(vm(name, 'h1', 256), template));
  await rt.failover.setHealth('h1', { state: 'fenced', incident: 1, since: 0 });
  t.true(await fence.beat(), 'rejoined');
  t.deepEqual(
    (await hv.list()).filter((d) => d.domid !== 0).map((d) => d.name),
    ['stays'],
  );
  t.is(fence.joinedEpoch, 1);
  await t.notThrowsAsync(fence.admit(1));
});
