import test from 'ava';
import { startTestSite, type TestSite } from '../integration/harness.ts';
import { siteXml, type HostLine, type VmLine } from '../integration/fixtures.ts';
import { checkHosts, failoverJobId, type FailoverPolicy } from '../../src/services/health-check.ts';
import { evacuate } from '../../src/failover/placement.ts';
import { loadSite } from '../../src/site/parse.ts';
import { planChanges } from '../../src/site/plan.ts';

// The fencing-failure test's QMP socket path: XSM confines QMP sockets to XSM_QMP_DIR.
process.env.XSM_QMP_DIR = '/nonexistent/xsm-test';

// Fast windows for tests: suspect after 400 ms of silence, fence after 300 ms more.
const POLICY: FailoverPolicy = { suspectAfterMs: 400, fenceAfterMs: 300, maxDeadFraction: 0.5 };

function load(hosts: HostLine[], vms: VmLine[]) {
  const r = loadSite(siteXml(hosts, vms), 't.xml');
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('; '));
  return r.site;
}

/** Runs the health check until the host's failover job exists, then waits for that job to finish. */
async function failHost(s: TestSite, host: string): Promise<{ state: string; jobId: string }> {
  await s.agents.get(host)!.close(); // the host hangs: its agent stops beating
  s.agents.delete(host);
  const until = Date.now() + 20000;
  for (;;) {
    await checkHosts(s.rt, POLICY);
    const h = await s.rt.failover.health(host);
    if (h && h.state !== 'suspect') {
      const jobId = failoverJobId(host, h.incident);
      const job = await s.rt.control().getJob(jobId);
      const state = job ? await job.getState() : 'missing';
      if (state === 'completed' || state === 'failed') return { state, jobId };
    }
    if (Date.now() > until) throw new Error(`failover of ${host} did not finish`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('evacuate places VMs by priority on hosts with room, keeps pinned ones, strands what does not fit', (t) => {
  const site = load(
    [
      { name: 'h1', memMiB: 4096 },
      { name: 'h2', memMiB: 2048 },
      { name: 'h3', memMiB: 1024 },
    ],
    [
      { name: 'low', host: 'h1', mem: 1024, priority: 0 },
      { name: 'high', host: 'h1', mem: 1024, priority: 100 },
      { name: 'mid', host: 'h1', mem: 1024, priority: 50 },
      { name: 'stuck', host: 'h1', mem: 512, pinned: true },
      { name: 'other', host: 'h2', mem: 512 },
    ],
  );
  const ev = evacuate(site, 'h1');
  t.deepEqual(
    ev.restarted.map((r) => r.vm),
    ['high', 'mid'],
  );
  // high goes to h2 (1536 free, the most), mid to h3 (1024 free; h2 now has 512).
  t.deepEqual(
    ev.restarted.map((r) => r.to),
    ['h2', 'h3'],
  );
  t.deepEqual(
    ev.stranded.map((s) => s.vm),
    ['low', 'stuck'],
  );
  t.regex(ev.stranded[0]!.why, /no surviving host has 1024 MiB/);
  t.regex(ev.stranded[1]!.why, /pinned to h1/);
  t.true(ev.site.hosts.find((h) => h.name === 'h1')!.maintenance, 'the failed host is put in maintenance');
  t.is(ev.site.vms.find((v) => v.name === 'low')!.host, 'h1');
  // Hosts marked unavailable (another suspect) take nothing.
  t.deepEqual(
    evacuate(site, 'h1', { unavailable: new Set(['h2']) }).restarted.map((r) => `${r.vm}@${r.to}`),
    ['high@h3'],
  );
});

test('evacuate restarts a VM run from a config file only on a host that holds the file, and says so', (t) => {
  const hosts = [
    { name: 'h1', memMiB: 2048 },
    { name: 'h2', memMiB: 2048 },
    { name: 'h3', memMiB: 1024 },
  ];
  const site = load(hosts, [
    { name: 'web', host: 'h1', mem: 256, config: 'apache_svr' },
    { name: 'db', host: 'h1', mem: 256, config: 'mysql_svr' },
  ]);
  const seen = (name: string, files: string[]) => ({
    name,
    heartbeatAt: Date.now(),
    totalMemMiB: 4096,
    freeMemMiB: 2048,
    nrCpus: 8,
    domains: [],
    configDir: '/etc/xen',
    configFiles: files.map((f) => ({ name: f, sha256: '0'.repeat(64) })),
  });
  // h2 has more room but only h3 holds apache_svr.cfg; nobody holds mysql_svr.cfg.
  const observed = { hosts: { h2: seen('h2', []), h3: seen('h3', ['apache_svr.cfg']) } };
  const ev = evacuate(site, 'h1', { observed });
  t.deepEqual(
    ev.restarted.map((r) => `${r.vm}@${r.to}`),
    ['web@h3'],
  );
  t.deepEqual(ev.stranded, [{ vm: 'db', why: 'no surviving host holds its config file mysql_svr.cfg' }]);
});

test('the plan recreates a fenced host VMs elsewhere and starts nothing on the fenced host', (t) => {
  const hosts = [
    { name: 'h1', memMiB: 2048 },
    { name: 'h2', memMiB: 2048 },
  ];
  const before = load(hosts, [
    { name: 'a', host: 'h1', mem: 512 },
    { name: 'b', host: 'h1', mem: 512 },
  ]);
  const after = load(hosts, [
    { name: 'a', host: 'h2', mem: 512 },
    { name: 'b', host: 'h1', mem: 512 },
  ]);
  const observed = {
    hosts: {
      h1: { name: 'h1', heartbeatAt: 1, totalMemMiB: 2560, freeMemMiB: 0, nrCpus: 8, domains: [], fencedAt: 2 },
      h2: { name: 'h2', heartbeatAt: 1, totalMemMiB: 2560, freeMemMiB: 2048, nrCpus: 8, domains: [] },
    },
  };
  const plan = planChanges(before, after, observed);
  t.deepEqual(
    plan.actions.map((a) => `${a.kind} ${a.vm} ${'host' in a ? a.host : ''}`),
    ['create a h2'],
  );
  t.true(plan.notes.some((n) => /b stays down: its host h1 was fenced/.test(n)));
});

test('a failed host is fenced and every one of its VMs runs once, on the survivors', async (t) => {
  const hosts = [
    { name: 'h1', memMiB: 2048 },
    { name: 'h2', memMiB: 2048 },
    { name: 'h3', memMiB: 2048 },
  ];
  const s = await startTestSite(hosts);
  t.teardown(() => s.close());
  const vms = [
    { name: 'a', host: 'h1', mem: 512, priority: 10 },
    { name: 'b', host: 'h1', mem: 512 },
    { name: 'c', host: 'h1', mem: 512 },
    { name: 'd', host: 'h2', mem: 1024 },
    { name: 'e', host: 'h3', mem: 512 },
  ];
  const v1 = await s.submitAndApply(siteXml(hosts, vms));
  await s.waitConverged(v1);

  const { state } = await failHost(s, 'h1');
  t.is(state, 'completed');
  t.false(await s.hv.get('h1')!.isPowered(), 'h1 was powered off before anything was restarted');
  const v2 = await s.rt.sites.currentVersion();
  t.is(v2, v1 + 1);
  const meta = (await s.rt.sites.get(v2))!;
  t.is(meta.author, 'system:failover');
  // Restarting them stops nothing that runs, but they lost their state: the version says who agreed.
  t.regex(
    meta.reason,
    /^failover of h1 \(incident \d+\): fenced; 3 VMs restarted elsewhere; 3 restarts consented by the failover policy$/,
  );
  await s.waitConverged(v2);
  const where = await s.where();
  t.deepEqual(Object.keys(where).sort(), ['a', 'b', 'c', 'd', 'e']);
  for (const [vm, at] of Object.entries(where))
    t.true(at === 'h2' || at === 'h3', `${vm} runs once, on a survivor (${at})`);
  t.is((await s.rt.failover.health('h1'))!.state, 'fenced');
  const { site } = await s.rt.sites.load(v2);
  t.true(site.hosts.find((h) => h.name === 'h1')!.maintenance);
  // Each restart is in the migration history: failover placed it, the agent that started it ended it.
  const restarts = (await s.rt.migrations.list()).filter((m) => m.version === v2);
  t.deepEqual(restarts.map((m) => m.vm).sort(), ['a', 'b', 'c']);
  for (const m of restarts) {
    // The control worker found it a restart when it enqueued the create; the agent did not have to ask.
    t.true((await s.rt.hostQueue(where[m.vm]!).getJob(`v${v2}-create-${m.vm}`))?.data.restart);
    t.like(m, { from: 'h1', mode: 'restart', source: 'failover', outcome: 'ok', to: where[m.vm] });
    t.regex(m.reason!, /h1 failed and was fenced/);
    t.is(typeof m.durationMs, 'number');
  }

  // Another check pass does nothing more: the fenced host stays fenced, no second version.
  await checkHosts(s.rt, POLICY);
  t.is(await s.rt.sites.currentVersion(), v2);
});

test('when the host does not fit all its VMs elsewhere, higher priority ones are restarted first', async (t) => {
  const hosts = [
    { name: 'h1', memMiB: 3072 },
    { name: 'h2', memMiB: 2048 },
    { name: 'h3', memMiB: 2048 },
  ];
  const s = await startTestSite(hosts);
  t.teardown(() => s.close());
  const vms = [
    { name: 'lo', host: 'h1', mem: 1024, priority: 1 },
    { name: 'hi', host: 'h1', mem: 1024, priority: 9 },
    { name: 'mid', host: 'h1', mem: 1024, priority: 5 },
    { name: 'x', host: 'h2', mem: 1024 },
    { name: 'y', host: 'h3', mem: 1024 },
  ];
  const v1 = await s.submitAndApply(siteXml(hosts, vms));
  await s.waitConverged(v1);
  t.is((await failHost(s, 'h1')).state, 'completed');
  const v2 = await s.rt.sites.currentVersion();
  t.regex(
    (await s.rt.sites.get(v2))!.reason,
    /2 VMs restarted elsewhere, 1 left down \(lo: no surviving host has 1024 MiB/,
  );
  await s.waitConverged(v2);
  const where = await s.where();
  t.deepEqual(where, { hi: where.hi!, mid: where.mid!, x: 'h2', y: 'h3' });
  t.not(where.hi, where.mid, 'spread over the two survivors');
});

test('when fencing fails, no VM is restarted anywhere and the operator is told what to do', async (t) => {
  // h1's power driver is QMP on a socket that does not exist: the BMC is unreachable.
  const hosts: HostLine[] = [
    { name: 'h1', memMiB: 2048, power: { driver: 'qmp', address: '/nonexistent/xsm-test/h1.qmp' } },
    { name: 'h2', memMiB: 2048 },
    { name: 'h3', memMiB: 2048 },
  ];
  const s = await startTestSite(hosts);
  t.teardown(() => s.close());
  const vms = [
    { name: 'a', host: 'h1', mem: 512 },
    { name: 'b', host: 'h1', mem: 512 },
    { name: 'c', host: 'h2', mem: 512 },
  ];
  const v1 = await s.submitAndApply(siteXml(hosts, vms));
  await s.waitConverged(v1);

  const { state, jobId } = await failHost(s, 'h1');
  t.is(state, 'failed');
  const job = (await s.rt.control().getJob(jobId))!;
  t.is(job.attemptsMade, 3, 'fencing was retried before giving up');
  t.regex(
    job.failedReason,
    /fencing h1 failed \(qmp \/nonexistent\/xsm-test\/h1\.qmp: .*\); none of its VMs was restarted elsewhere/,
  );
  t.regex(job.failedReason, /power h1 off by other means/);
  // Nothing written, nothing started: h1 (still powered, maybe still running them) keeps its VMs.
  t.is(await s.rt.sites.currentVersion(), v1);
  t.true(await s.hv.get('h1')!.isPowered());
  t.deepEqual(await s.where(), { a: 'h1', b: 'h1', c: 'h2' });
  const health = (await s.rt.failover.health('h1'))!;
  t.is(health.state, 'fence-failed');
  t.regex(health.detail!, /fencing h1 failed/);
  t.falsy((await s.rt.observed.host('h1'))!.fencedAt);
});

test('a host that reports again while suspected is not fenced', async (t) => {
  const hosts = [
    { name: 'h1', memMiB: 2048 },
    { name: 'h2', memMiB: 2048 },
    { name: 'h3', memMiB: 2048 },
  ];
  const s = await startTestSite(hosts);
  t.teardown(() => s.close());
  const v1 = await s.submitAndApply(siteXml(hosts, [{ name: 'a', host: 'h1', mem: 512 }]));
  await s.waitConverged(v1);
  await s.agents.get('h1')!.close();
  s.agents.delete('h1');
  const h1 = (await s.rt.observed.host('h1'))!;
  await new Promise((r) => setTimeout(r, POLICY.suspectAfterMs + 100));
  const changes = await checkHosts(s.rt, POLICY);
  t.deepEqual(
    changes.map((c) => `${c.host} ${c.to}`),
    ['h1 suspect'],
  );
  s.startAgent('h1'); // the agent comes back within the confirmation window
  const until = Date.now() + 5000;
  while ((await s.rt.observed.host('h1'))!.heartbeatAt === h1.heartbeatAt && Date.now() < until)
    await new Promise((r) => setTimeout(r, 50));
  const back = await checkHosts(s.rt, POLICY);
  t.deepEqual(
    back.map((c) => `${c.host} ${c.from} -> ${c.to}`),
    ['h1 suspect -> healthy'],
  );
  t.is(await s.rt.failover.health('h1'), undefined);
  t.true(await s.hv.get('h1')!.isPowered());
  t.is(await s.rt.sites.currentVersion(), v1);
});

test('when most hosts look dead at once, nobody is fenced (the checker more likely lost its view)', async (t) => {
  const hosts = [
    { name: 'h1', memMiB: 2048 },
    { name: 'h2', memMiB: 2048 },
    { name: 'h3', memMiB: 2048 },
  ];
  const s = await startTestSite(hosts);
  t.teardown(() => s.close());
  const v1 = await s.submitAndApply(siteXml(hosts, [{ name: 'a', host: 'h1', mem: 512 }]));
  await s.waitConverged(v1);
  for (const h of ['h1', 'h2']) {
    await s.agents.get(h)!.close();
    s.agents.delete(h);
  }
  const now = Date.now() + 5000;
  await checkHosts(s.rt, POLICY, undefined, now);
  await checkHosts(s.rt, POLICY, undefined, now + 1000);
  const health = await s.rt.failover.allHealth();
  t.is(health.h1?.state, 'suspect');
  t.is(health.h2?.state, 'suspect');
  t.true(
    Object.values(health).every((h) => h.state === 'suspect'),
    'nobody got past suspect',
  );
  t.regex(health.h1!.detail!, /look dead at once/);
  t.is(await s.rt.fence.epoch('h1'), 0, 'nobody fenced: no epoch raised');
  t.is(
    (await s.rt.control().getJobs(['waiting', 'active', 'delayed', 'completed', 'failed'])).filter(
      (j) => j.name === 'failover',
    ).length,
    0,
  );
  t.true(await s.hv.get('h1')!.isPowered());
});
