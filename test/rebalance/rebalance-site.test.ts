import { AuditStore } from '../../src/state/audit-store.ts';
import test from 'ava';
import { startTestSite } from '../integration/harness.ts';
import { siteXml } from '../integration/fixtures.ts';
import { runRebalance, scheduleRebalance } from '../../src/services/rebalance-service.ts';
import { MetricsStore } from '../../src/state/metrics-store.ts';

const HOSTS = [
  { name: 'h1', memMiB: 4096, cpus: 4 },
  { name: 'h2', memMiB: 4096, cpus: 4 },
  { name: 'h3', memMiB: 4096, cpus: 4 },
];

test('an imbalanced simulated site is rebalanced by a new version with reason rebalance, live', async (t) => {
  const s = await startTestSite(HOSTS);
  t.teardown(() => s.close());
  const vms = ['a', 'b', 'c', 'd', 'e', 'f'].map((name) => ({ name, host: 'h1', mem: 512, vcpus: 1 }));
  const v1 = await s.submitAndApply(siteXml(HOSTS, vms));
  await s.waitConverged(v1);
  // Ganglia says every VM is busy: h1 carries all the load.
  const metrics = new MetricsStore(s.rt.redis, s.rt.config.prefix);
  await metrics.store(
    vms.map((v) => ({
      name: v.name,
      ip: v.name,
      reported: 0,
      tn: 0,
      tmax: 60,
      up: true,
      metrics: { vm_cpu_pct: { name: 'vm_cpu_pct', value: 90, type: 'float', units: '%', tn: 0, tmax: 60 } },
    })),
  );

  const dry = await runRebalance(s.rt, { dryRun: true });
  t.true(dry.moves.length >= 2);
  t.is(dry.version, undefined);
  t.is(await s.rt.sites.currentVersion(), v1, 'a dry run writes nothing');

  const r = await runRebalance(s.rt);
  t.is(r.version, v1 + 1);
  const meta = await s.rt.sites.get(r.version!);
  t.is(meta!.author, 'system:rebalance');
  const [entry] = await new AuditStore(s.rt.redis, s.rt.config.prefix).query({ user: 'system:rebalance' });
  t.like(entry, { kind: 'rebalance', outcome: 'ok', version: r.version, from: 'internal' });
  t.regex(meta!.reason, /^rebalance \(performance\): \d+ live migrations?, score [\d.]+ -> [\d.]+ \(predicted: /);
  await s.waitConverged(r.version!);
  const where = await s.where();
  const count = (h: string) => Object.values(where).filter((x) => x === h).length;
  t.deepEqual([count('h1'), count('h2'), count('h3')], [2, 2, 2]);
  t.true(r.moves.every((m) => m.from === 'h1'));
  // The plan was migrations, nothing destroyed and recreated.
  const plan = (await s.rt.hostQueue('h1').getJobs(['completed'])).filter((j) => j.data.version === r.version);
  t.true(plan.length > 0 && plan.every((j) => j.name === 'migrate'));
  // Cooldown: the moved VMs are left alone by the next run.
  const again = await runRebalance(s.rt, { dryRun: true });
  t.false(again.moves.some((m) => r.moves.some((x) => x.vm === m.vm)));
});

test('the schedule runs the rebalancer from the control queue', async (t) => {
  const s = await startTestSite(HOSTS);
  t.teardown(() => s.close());
  const v1 = await s.submitAndApply(
    siteXml(
      HOSTS,
      ['a', 'b', 'c', 'd'].map((name) => ({ name, host: 'h2', mem: 512, vcpus: 2 })),
    ),
  );
  await s.waitConverged(v1);
  await scheduleRebalance(s.rt, 300);
  const until = Date.now() + 15000;
  while ((await s.rt.sites.currentVersion()) === v1 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  await s.rt.control().removeJobScheduler('rebalance');
  const v = await s.rt.sites.currentVersion();
  t.true(v > v1);
  t.is((await s.rt.sites.get(v))!.author, 'system:rebalance');
  await s.waitConverged(v);
});
