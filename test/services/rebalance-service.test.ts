// The rebalancer against the stores, on twins (no Redis): a dry run writes nothing, a run writes one version
// with live migrations and puts the moved VMs in cooldown, and the next run leaves cooling VMs alone.

import test from 'ava';
import { memoryRuntime, type MemoryRuntime } from '../../src/runtime/service-runtime.ts';
import { runRebalance } from '../../src/services/rebalance-service.ts';
import { submitSite } from '../../src/services/site-service.ts';
import type { DomainInfo } from '../../src/site/domain.ts';
import { serializeSite } from '../../src/site/serialize.ts';
import { host, template, vm } from '../site/helpers.ts';

const running = (name: string): DomainInfo => ({
  name,
  domid: 7,
  state: 'running',
  memMiB: 512,
  maxMemMiB: 512,
  vcpus: 2,
  maxVcpus: 2,
  cpuTimeSec: 1,
});

/** Four busy VMs on h1, an empty h2, all running as the site says. */
async function skewed(): Promise<MemoryRuntime> {
  const rt = memoryRuntime();
  const vms = ['a', 'b', 'c', 'd'].map((n) => vm(n, 'h1', 512, 2));
  const xml = serializeSite({
    sets: [{ name: 's', vms: vms.map((v) => v.name) }],
    hosts: [host('h1', 4096, 8), host('h2', 4096, 8)],
    templates: [template],
    vms,
  });
  await submitSite(rt, { xml, file: 'site.xml', base: 0, author: 'ann', reason: 't', consent: 'none', apply: false });
  const report = (name: string, domains: DomainInfo[]) =>
    rt.observed.report({ name, heartbeatAt: Date.now(), totalMemMiB: 4096, freeMemMiB: 2048, nrCpus: 8, domains });
  await report(
    'h1',
    vms.map((v) => running(v.name)),
  );
  await report('h2', []);
  return rt;
}

test('a dry run proposes moves and writes nothing', async (t) => {
  const rt = await skewed();
  const r = await runRebalance(rt, { dryRun: true });
  t.true(r.moves.length > 0);
  t.true(r.moves.every((m) => m.from === 'h1' && m.to === 'h2'));
  t.true(r.imbalanceAfter < r.imbalanceBefore);
  t.is(r.version, undefined);
  t.is(await rt.sites.currentVersion(), 1);
  t.is(rt.controlQueue.jobs.size, 0);
  t.is((await rt.audit.query()).length, 0);
});

test('a run writes one version of live migrations, audits it, and cools the moved VMs down', async (t) => {
  const rt = await skewed();
  const r = await runRebalance(rt, {});
  t.is(r.version, 2);
  const plan = await rt.sites.plan(2);
  t.true(
    plan!.actions.every((a) => a.kind === 'migrate' && a.mode !== 'cold'),
    'the rebalancer never stops a VM',
  );
  t.deepEqual([...rt.controlQueue.jobs.keys()], ['apply-v2']);
  t.is((await rt.audit.query())[0]?.kind, 'rebalance');
  // Each move's predicted score before and after is stored with the version.
  const reason = (await rt.sites.get(2))!.reason;
  for (const m of r.moves)
    t.true(
      reason.includes(`${m.vm} ${m.from}->${m.to} ${m.scoreBefore.toFixed(4)}->${m.scoreAfter.toFixed(4)}`),
      reason,
    );
  const moved = r.moves.map((m) => m.vm);
  t.deepEqual([...(await rt.cooldowns.cooling(['a', 'b', 'c', 'd']))].sort(), [...moved].sort());
  // Until the next run, nothing ran the migrations: VMs still on h1 by observation, but the cooling ones
  // are held where version 2 puts them.
  const again = await runRebalance(rt, { dryRun: true });
  t.false(
    again.moves.some((m) => moved.includes(m.vm)),
    'a VM in cooldown is not moved again',
  );
});

test('a VM whose disk is in a pool only its host sees is never proposed for a live move', async (t) => {
  const rt = memoryRuntime();
  const vms = ['a', 'b', 'c', 'd'].map((n) => ({ ...vm(n, 'h1', 512, 2), config: n === 'd' ? 'shared' : 'local' }));
  const pooled = (name: string, pool: string) => ({
    ...template,
    name,
    disks: [
      {
        target: `/p/${pool}/{vm}-xvda.img`,
        vdev: 'xvda',
        format: 'raw' as const,
        access: 'rw' as const,
        pool,
        image: 'i.img',
        clone: 'copy' as const,
      },
    ],
  });
  const xml = serializeSite({
    sets: [{ name: 's', vms: vms.map((v) => v.name) }],
    hosts: [host('h1', 4096, 8), host('h2', 4096, 8)],
    pools: [
      { name: 'local', type: 'file', path: '/p/local' },
      { name: 'shared', type: 'nfs', server: '10.0.0.1', export: '/e', path: '/p/shared' },
    ],
    templates: [pooled('local', 'local'), pooled('shared', 'shared')],
    vms,
  });
  await submitSite(rt, { xml, file: 'site.xml', base: 0, author: 'ann', reason: 't', consent: 'none', apply: false });
  const report = (name: string, domains: DomainInfo[]) =>
    rt.observed.report({ name, heartbeatAt: Date.now(), totalMemMiB: 4096, freeMemMiB: 2048, nrCpus: 8, domains });
  await report(
    'h1',
    vms.map((v) => running(v.name)),
  );
  await report('h2', []);
  const r = await runRebalance(rt, { dryRun: true });
  t.deepEqual(
    r.moves.map((m) => m.vm),
    ['d'],
  );
});
