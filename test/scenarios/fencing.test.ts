// Fencing scenarios on the simulator: a host goes silent with its VMs still running and a job still queued
// for it (planned while it was reachable), failover fences it, and the host comes back at every step of that
// failover. The simulator's store records every host's domains after every change, and no VM may run on two
// hosts in any recorded state (noVmRunsTwice); the job queued before the fence must be refused for good.

import test from 'ava';
import { startHostAgent } from '../../workers/host-agent-lib.ts';
import { SimulatedPower } from '../../src/drivers/power/simulated.ts';
import { silentLogger } from '../../src/lib/log.ts';
import { lastSignOfLife } from '../../src/services/health-check.ts';
import { failoverSteps, type FailoverContext } from '../../workflows/failover-host.ts';
import { siteXml } from '../integration/fixtures.ts';
import { startTestSite, type TestSite } from '../integration/harness.ts';
import { noVmRunsTwice, type WorldState } from './invariants.ts';
import { RecordingStore } from './runner.ts';

type ReturnAt = (typeof failoverSteps)[number]['name'] | 'applying' | 'applied';
const RETURNS: ReturnAt[] = ['fence', 'mark-fenced', 'restart-elsewhere', 'apply', 'applying', 'applied'];

const hosts = [
  { name: 'h1', memMiB: 2048 },
  { name: 'h2', memMiB: 2048 },
  { name: 'h3', memMiB: 2048 },
];
const v1Vms = [
  { name: 'a', host: 'h1', mem: 512 },
  { name: 'b', host: 'h1', mem: 512 },
  { name: 'c', host: 'h2', mem: 512 },
];

async function until(ok: () => Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** h1's agent comes back as it left: holding epoch 0 (as its local cache says), its host powered on. */
async function comeBack(s: TestSite): Promise<void> {
  const hv = s.hv.get('h1')!;
  if (!(await hv.isPowered())) await new SimulatedPower(hv).on();
  s.agents.set(
    'h1',
    startHostAgent({ rt: s.rt, hv, log: silentLogger, heartbeatMs: 200, lockDurationMs: 4000, epoch: 0 }),
  );
}

async function runFencing(returnAt: ReturnAt): Promise<{ states: WorldState[]; s: TestSite; stale: string[] }> {
  const states: WorldState[] = [];
  const s = await startTestSite(hosts, { store: new RecordingStore(states) });
  try {
    const v1 = await s.submitAndApply(siteXml(hosts, v1Vms));
    await s.waitConverged(v1);
    // h1 goes silent (its agent hangs) with a and b still running; a version adds d on h1: its job waits.
    await s.agents.get('h1')!.close();
    s.agents.delete('h1');
    const v2 = await s.submitAndApply(siteXml(hosts, [...v1Vms, { name: 'd', host: 'h1', mem: 256 }]));
    const h1 = (await s.rt.sites.load(v2)).site.hosts.find((h) => h.name === 'h1')!;
    const incident = await lastSignOfLife(s.rt, h1, (await s.rt.observed.host('h1'))!.heartbeatAt);
    await s.rt.failover.setHealth('h1', { state: 'fencing', incident, since: Date.now() });
    const ctx: FailoverContext = {
      rt: s.rt,
      data: { host: 'h1', incident },
      power: (h) => Promise.resolve(new SimulatedPower(s.hv.get(h.name)!)),
      lastAttempt: true,
    };
    const srt = { log: silentLogger, report: () => Promise.resolve(), resumed: false };
    for (const step of failoverSteps) {
      if (step.name === returnAt) await comeBack(s);
      await step.run(ctx, srt);
    }
    const v3 = await s.rt.sites.currentVersion();
    if (returnAt === 'applying') {
      await until(async () => Object.keys(await s.where()).filter((vm) => vm !== 'c').length > 0, 'a restart');
      await comeBack(s);
    }
    await s.waitApplyEnded(v3, 30_000);
    if (returnAt === 'applied') await comeBack(s);
    // h1 rejoined: its agent reports again, at the new epoch (back before the fence, it was powered off).
    if (returnAt !== 'fence') await until(async () => !(await s.rt.observed.host('h1'))?.fencedAt, 'h1 to rejoin');
    // The job queued for h1 before the fence ends (after the rejoin, a returning agent takes it at once).
    const staleJobs = async () =>
      (await s.rt.hostQueue('h1').getJobs(['completed', 'failed', 'active', 'waiting', 'delayed'])).filter(
        (j) => j && (j.data as { version: number }).version === v2,
      );
    await until(
      async () =>
        (await Promise.all((await staleJobs()).map((j) => j.getState()))).every(
          (st) => st === 'completed' || st === 'failed',
        ),
      'the job queued for h1 to end',
    );
    const stale: string[] = [];
    for (const j of await staleJobs()) stale.push(`${await j.getState()}: ${j.failedReason}`);
    return { states, s, stale };
  } catch (e) {
    await s.close();
    throw e;
  }
}

for (const returnAt of RETURNS) {
  test.serial(`a fenced host that returns before failover's ${returnAt} step never runs a VM twice`, async (t) => {
    const { states, s, stale } = await runFencing(returnAt);
    t.teardown(() => s.close());
    t.deepEqual(noVmRunsTwice({ states } as never), []);
    const at = (vm: string) =>
      states.map((st) => Object.keys(st.hosts).filter((h) => st.hosts[h]!.some((d) => d.name === vm)));
    t.true(
      at('a').some((hs) => hs.includes('h1')) && at('a').some((hs) => hs.some((h) => h !== 'h1')),
      'a was seen moving',
    );
    t.is(await s.rt.fence.epoch('h1'), 1, 'fencing raised the epoch once');
    const where = await s.where();
    t.deepEqual(Object.keys(where).sort(), ['a', 'b', 'c', 'd'], 'every VM runs');
    for (const [vm, at] of Object.entries(where)) t.true(at === 'h2' || at === 'h3', `${vm} runs once, on ${at}`);
    if (returnAt === 'fence') {
      t.false(await s.hv.get('h1')!.isPowered(), 'back before the power-off, h1 was powered off all the same');
      // Back before the fence, it still held the current epoch: d's job ran, then the power-off took it down.
      // d's job ran before the fence, or the fence came first and it was refused: either way d runs once.
      t.is(stale.length, 1);
      t.regex(stale[0]!, /^completed|^failed: issued at h1's epoch 0, but h1 was fenced since \(epoch 1\)/);
    } else {
      t.is(stale.length, 1);
      t.regex(stale[0]!, /^failed: issued at h1's epoch 0, but h1 was fenced since \(epoch 1\): refused/);
    }
  });
}
