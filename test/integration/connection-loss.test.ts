// Agents that lose their Redis connections mid-apply (issue 20 goal 4: at 10,000 simulated hosts the agents'
// connections dropped and reconnected under load). The agents share one command connection, as a scale run's
// simulated agents do (bench/scale-run.ts), on a Redis of the test's own, so killing every client disturbs no
// other test. Each apply must converge exactly: every VM created once, on its host, none missing or doubled.

import test from 'ava';
import { Redis } from 'ioredis';
import { CountingSimStore } from '../../bench/agent-outages.ts';
import { silentLogger } from '../../src/lib/log.ts';
import { startHostAgent } from '../../workers/host-agent-lib.ts';
import { PrivateRedis } from '../scenarios/private-redis.ts';
import { siteXml, type VmLine } from './fixtures.ts';
import { startTestSite, type TestSite } from './harness.ts';

const HOSTS = [1, 2, 3, 4].map((i) => ({ name: `h${i}`, memMiB: 65536 }));
const VMS: VmLine[] = Array.from({ length: 400 }, (_, i) => ({ name: `vm${i}`, host: `h${(i % 4) + 1}`, mem: 64 }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A site on a private Redis whose agents share one command connection; `fault` runs once the apply has
 * changed some hosts, then the apply must converge exactly.
 */
async function applyThrough(
  t: import('ava').ExecutionContext,
  fault: (admin: Redis, s: TestSite) => Promise<void>,
): Promise<void> {
  const redis = await PrivateRedis.start();
  const admin = new Redis(redis.url);
  const shared = new Redis(redis.url, { maxRetriesPerRequest: null });
  const store = new CountingSimStore();
  const s = await startTestSite(HOSTS, { store, redisUrl: redis.url, agents: false });
  try {
    for (const h of HOSTS)
      s.agents.set(
        h.name,
        startHostAgent({
          rt: s.rt,
          hv: s.hv.get(h.name)!,
          log: silentLogger,
          heartbeatMs: 200,
          lockDurationMs: 4000,
          concurrency: 8,
          workerConnection: shared,
        }),
      );
    await Promise.all([...s.agents.values()].map((a) => a.worker.waitUntilReady()));
    const v = await s.submitAndApply(siteXml(HOSTS, VMS));
    const until = Date.now() + 20_000;
    while (store.changes < 20) {
      if (Date.now() > until) throw new Error('the apply never started');
      await sleep(5);
    }
    const before = store.changes;
    await fault(admin, s);
    t.true(store.changes < 2 * VMS.length, `the fault came mid-apply (${before} host changes before it)`);
    const st = await s.waitApplyEnded(v, 60_000);
    if (st.state !== 'converged')
      // Each failed action's reason, so a failure says what went wrong, not only which actions.
      for (const [id, o] of await s.rt.applies.outcomes(v))
        if (o.state !== 'done') t.log(`${id}: ${JSON.stringify(o)}`);
    t.is(st.state, 'converged', `the apply ended ${st.state}: ${st.summary ?? ''}`);
    const where = await s.where();
    for (const vm of VMS) t.is(where[vm.name], vm.host, `${vm.name} runs once, on ${vm.host}`);
    t.is(Object.keys(where).length, VMS.length, 'no VM that the version does not have');
    t.is(shared.status, 'ready', "the agents' shared connection is up");
  } finally {
    await s.close().catch(() => {});
    shared.disconnect();
    admin.disconnect();
    await redis.stop();
  }
}

/** Kills the clients CLIENT LIST shows whose line matches `which` (never the admin connection itself). */
async function kill(admin: Redis, which: RegExp): Promise<number> {
  const me = String(await admin.client('ID'));
  let n = 0;
  for (const line of String(await admin.client('LIST')).split('\n')) {
    const id = /^id=(\d+) /.exec(line)?.[1];
    if (!id || id === me || !which.test(line)) continue;
    await admin.client('KILL', 'ID', id);
    n++;
  }
  return n;
}

test("the agents' blocking connections killed, then their shared one, twice mid-apply: the apply converges exactly", async (t) => {
  await applyThrough(t, async (admin) => {
    for (let round = 0; round < 2; round++) {
      // BullMQ names a worker's blocking connection after its queue: prefix:base64("host-h1").
      const blocking = await kill(admin, / name=\S+:aG9zdC1o\S* /);
      t.true(blocking >= HOSTS.length, `${blocking} blocking connections killed`);
      await sleep(300);
      // The shared command connection is the one without a name that runs the workers' scripts.
      const shared = await kill(admin, / name= .* cmd=(evalsha|eval) /);
      t.log(`round ${round + 1}: ${blocking} blocking connections, then ${shared} unnamed script connections killed`);
      await sleep(1000);
    }
  });
});

test('the event loop stalled longer than the blocking timeout and the job locks mid-apply: the apply converges exactly', async (t) => {
  await applyThrough(t, async () => {
    // 7 s: past BullMQ's blocking-read watchdog (5 s + 1 s) and the agents' 4 s job locks.
    const end = Date.now() + 7000;
    while (Date.now() < end);
  });
});
