// The plan contract on the simulator, with faults: the stored plan runs as stored; a stale action stops
// with what changed and only its dependents stop with it; a failed action on one host does not stop other
// hosts' later waves; a resize or cold move that fails after stopping the VM puts it back as it was.
import test from 'ava';
import { startTestSite, type TestSite } from './harness.ts';
import { siteXml, type HostLine, type VmLine } from './fixtures.ts';
import { enqueueApply } from '../../src/services/site-service.ts';
import { versionOutcome } from '../../src/services/inspect.ts';
import { hostQueueName } from '../../src/runtime/queues.ts';
import type { SimulatedXenHost } from '../../src/drivers/hypervisor/simulated.ts';

const THREE: HostLine[] = [
  { name: 'h1', memMiB: 1024 },
  { name: 'h2', memMiB: 1024 },
  { name: 'h3', memMiB: 1024 },
];

/** A domain XSM does not know, started by hand (or by anything else on the host). */
async function intruder(hv: SimulatedXenHost, memMiB: number, name = 'intruder'): Promise<void> {
  await hv.create({ name, text: `name = "${name}"\nmemory = ${memMiB}\nvcpus = 1\n` });
}

async function start(hosts: HostLine[], vms: VmLine[]): Promise<{ s: TestSite; v1: number }> {
  const s = await startTestSite(hosts);
  const v1 = await s.submitAndApply(siteXml(hosts, vms));
  await s.waitConverged(v1);
  return { s, v1 };
}

async function outcomes(s: TestSite, version: number) {
  const o = await versionOutcome(s.rt, version);
  return Object.fromEntries(
    (o?.actions ?? []).map((a) => [a.id, a.blockedBy ? `${a.outcome} by ${a.blockedBy}` : a.outcome]),
  );
}

test('a failed action on one host does not stop other hosts actions in later waves; the apply ends partially failed naming it', async (t) => {
  const { s } = await start(THREE, [
    { name: 'c', host: 'h1', mem: 256 },
    { name: 'big', host: 'h2', mem: 768 },
    { name: 'mover', host: 'h3', mem: 512 },
  ]);
  t.teardown(() => s.close());
  // Something outside XSM takes most of h1's memory: the new VM d cannot start there.
  await intruder(s.hv.get('h1')!, 600);
  const v2 = await s.submitAndApply(
    siteXml(THREE, [
      { name: 'c', host: 'h1', mem: 256 },
      { name: 'd', host: 'h1', mem: 512 },
      { name: 'mover', host: 'h2', mem: 512 },
    ]),
  );
  const plan = (await s.rt.sites.plan(v2))!;
  t.deepEqual(
    plan.actions.map((a) => `${a.wave} ${a.id} <- ${a.dependsOn.join(',')}`),
    ['0 remove:big <- ', '0 create:d <- ', '1 migrate:mover <- remove:big'],
  );
  const end = await s.waitApplyEnded(v2);
  t.is(end.state, 'partially-failed');
  t.regex(end.summary!, /2 of 3 actions done, 1 failed \(create:d\)/);
  t.is((await s.where()).mover, 'h2', 'the wave after the failure ran on the other hosts');
  t.deepEqual(await outcomes(s, v2), { 'remove:big': 'done', 'create:d': 'failed', 'migrate:mover': 'done' });
  const d = (await versionOutcome(s.rt, v2))!.actions.find((a) => a.id === 'create:d')!;
  t.regex(d.reason!, /^plan is stale: h1 has 168 MiB free but d needs 512 MiB; re-plan with `xsm site plan FILE`/);
});

test('observed state drifting between plan and run stops the stale action and its dependents, and nothing else', async (t) => {
  const { s } = await start(THREE, [
    { name: 'a', host: 'h1', mem: 512 },
    { name: 'b', host: 'h2', mem: 768 },
    { name: 'c', host: 'h3', mem: 256 },
  ]);
  t.teardown(() => s.close());
  // Planned and stored, not applied yet: remove b, move a into b's room, grow c.
  const v2 = await s.submitAndApply(
    siteXml(THREE, [
      { name: 'a', host: 'h2', mem: 512 },
      { name: 'c', host: 'h3', mem: 512 },
    ]),
    undefined,
    'test',
    { apply: false },
  );
  // Meanwhile someone balloons b down by hand: the removal the move counts on no longer frees 768 MiB.
  await s.hv.get('h2')!.setMemory('b', 700);
  await enqueueApply(s.rt, v2, 'test');
  const end = await s.waitApplyEnded(v2);
  t.is(end.state, 'partially-failed');
  t.deepEqual(await outcomes(s, v2), {
    'remove:b': 'failed',
    'reconfigure:c': 'done',
    'migrate:a': 'blocked by remove:b',
  });
  const o = (await versionOutcome(s.rt, v2))!.actions;
  t.is(
    o.find((a) => a.id === 'remove:b')!.reason,
    'plan is stale: b on h2 has 700 MiB, 1 vCPUs; the plan assumed 768 MiB, 1 vCPUs; re-plan with `xsm site plan FILE` and apply again',
  );
  t.regex(o.find((a) => a.id === 'migrate:a')!.reason!, /^remove:b failed: plan is stale/);
  // Nothing acted on the stale picture: b still runs (as it was left), a did not move, c grew.
  t.deepEqual(await s.where(), { a: 'h1', b: 'h2', c: 'h3' });
  t.like(await s.hv.get('h3')!.find('c'), { memMiB: 512 });
  t.is(await s.rt.hostQueue('h1').getJob(`v${v2}-migrate-a`), undefined, 'the blocked move was never enqueued');
});

test('the stored plan runs as stored: an apply does not plan again, even when the world changed', async (t) => {
  const { s } = await start(THREE, [
    { name: 'a', host: 'h1', mem: 256 },
    { name: 'b', host: 'h2', mem: 256 },
  ]);
  t.teardown(() => s.close());
  const v2 = await s.submitAndApply(
    siteXml(THREE, [
      { name: 'a', host: 'h1', mem: 512 },
      { name: 'b', host: 'h2', mem: 256 },
    ]),
    undefined,
    'test',
    { apply: false },
  );
  const stored = (await s.rt.sites.plan(v2))!;
  t.deepEqual(
    stored.actions.map((a) => a.id),
    ['reconfigure:a'],
  );
  // b dies by hand before the apply starts: planning again would add "create b"; the stored plan does not.
  await s.hv.get('h2')!.destroy('b');
  await enqueueApply(s.rt, v2, 'test');
  t.is((await s.waitApplyEnded(v2)).state, 'converged');
  const ran = [
    ...(await s.rt.hostQueue('h1').getJobs(['completed'])),
    ...(await s.rt.hostQueue('h2').getJobs(['completed'])),
  ].filter((j) => j.data.version === v2);
  t.deepEqual(
    ran.map((j) => j.data.action.id),
    ['reconfigure:a'],
    'exactly the stored plan ran',
  );
  t.deepEqual(await s.where(), { a: 'h1' });
  t.is((await s.rt.sites.plan(v2))!.planHash, stored.planHash);
});

test('a version without a stored plan is not run: its apply fails for good and says what to do', async (t) => {
  const s = await startTestSite(THREE);
  t.teardown(() => s.close());
  const { version } = await s.rt.sites.submit(siteXml(THREE, [{ name: 'a', host: 'h1', mem: 256 }]), {
    base: 0,
    author: 'test',
    reason: 'stored without a plan',
  });
  const { jobId } = await enqueueApply(s.rt, version, 'test');
  const until = Date.now() + 15000;
  while ((await s.rt.control().getJobState(jobId)) !== 'failed' && Date.now() < until)
    await new Promise((r) => setTimeout(r, 50));
  const job = (await s.rt.control().getJob(jobId))!;
  t.is(job.attemptsMade, 1, 'permanent: not retried');
  t.regex(job.failedReason, /version 1 has no stored plan.*submit the site file again/);
  t.deepEqual(await s.where(), {});
});

test('a resize whose new domain Xen refuses starts the VM again as it was, and the job says so', async (t) => {
  const one: HostLine[] = [{ name: 'h1', memMiB: 1024 }];
  const { s } = await start(one, [{ name: 'vm3', host: 'h1', mem: 512, vcpus: 2, config: 'fixed' }]);
  t.teardown(() => s.close());
  // Fault: while vm3 is stopped for its restart, a guest XSM does not know takes 400 MiB of h1.
  const h1 = s.hv.get('h1')!;
  const shutdown = h1.shutdown.bind(h1);
  h1.shutdown = async (name, timeoutMs) => {
    await shutdown(name, timeoutMs);
    if (name === 'vm3') await intruder(h1, 400);
  };
  // The template gives no room to grow live (no maxmem): a restart.
  const v2 = await s.submitAndApply(siteXml(one, [{ name: 'vm3', host: 'h1', mem: 900, vcpus: 2, config: 'fixed' }]));
  const plan = (await s.rt.sites.plan(v2))!;
  t.like(plan.actions[0], { id: 'reconfigure:vm3', mode: 'restart', disruptive: true });
  const end = await s.waitApplyEnded(v2);
  t.is(end.state, 'partially-failed');
  const job = (await s.rt.hostQueue('h1').getJob(`v${v2}-reconfigure-vm3`))!;
  t.regex(
    job.failedReason,
    /^rolled back: vm3 runs again as before \(512 MiB, 2 vCPUs\); the new size failed: h1: libxl: error: failed to free memory for the domain: need 900 MiB, 624 MiB free/,
  );
  t.like(await h1.find('vm3'), { state: 'running', memMiB: 512, vcpus: 2 });
  t.deepEqual((job.progress as { journal: { done: string[] } }).journal.done, [
    'check-plan',
    'stop-old',
    'rollback:recreate-old',
    'rollback:wait-running',
  ]);
});

test('a swap between two full hosts runs as one cold move: stop, the other VM moves live, start', async (t) => {
  const two: HostLine[] = [
    { name: 'h1', memMiB: 1024 },
    { name: 'h2', memMiB: 1024 },
  ];
  const { s } = await start(two, [
    { name: 'x', host: 'h1', mem: 768 },
    { name: 'y', host: 'h2', mem: 512 },
  ]);
  t.teardown(() => s.close());
  const v2 = await s.submitAndApply(
    siteXml(two, [
      { name: 'x', host: 'h2', mem: 768 },
      { name: 'y', host: 'h1', mem: 512 },
    ]),
  );
  t.deepEqual(
    (await s.rt.sites.plan(v2))!.actions.map((a) => `${a.id} ${'mode' in a ? a.mode : ''}`),
    ['migrate:x cold'],
  );
  t.is((await s.waitApplyEnded(v2)).state, 'converged');
  t.deepEqual(await s.where(), { x: 'h2', y: 'h1' });
  t.like(await s.hv.get('h2')!.find('x'), { memMiB: 768 });
});

test('a cold move whose start fails moves the other VM back and starts its VM where it was', async (t) => {
  const two: HostLine[] = [
    { name: 'h1', memMiB: 1024 },
    { name: 'h2', memMiB: 1024 },
  ];
  const { s } = await start(two, [
    { name: 'x', host: 'h1', mem: 768 },
    { name: 'y', host: 'h2', mem: 512 },
  ]);
  t.teardown(() => s.close());
  // Fault: as soon as y has left h2, a guest XSM does not know takes 300 MiB there: x no longer fits.
  const h2 = s.hv.get('h2')!;
  const migrate = h2.migrate.bind(h2);
  h2.migrate = async (name, target) => {
    await migrate(name, target);
    await intruder(h2, 300);
  };
  const v2 = await s.submitAndApply(
    siteXml(two, [
      { name: 'x', host: 'h2', mem: 768 },
      { name: 'y', host: 'h1', mem: 512 },
    ]),
  );
  t.is((await s.waitApplyEnded(v2, 40000)).state, 'partially-failed');
  const job = (await s.rt.queue(hostQueueName('h1')).getJob(`v${v2}-migrate-x`))!;
  t.regex(
    job.failedReason,
    /^rolled back: x runs again on h1 as before \(768 MiB, 1 vCPUs\) and y moved back; the move to h2 failed: starting x on h2 failed: plan is stale: h2 has 724 MiB free but x needs 768 MiB/,
  );
  t.deepEqual(await s.where(), { x: 'h1', y: 'h2', intruder: 'h2' });
  t.like(await s.hv.get('h1')!.find('x'), { state: 'running', memMiB: 768 });
});
