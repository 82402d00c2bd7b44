// Losing Redis' master (issue 20 goal 5): XSM reaches Redis only through three real sentinels; the master
// is killed (SIGKILL) while an apply creates VMs, the sentinels promote the replica, and the apply must
// converge exactly: every VM of the version running once, on its host, none doubled. The stall (the longest
// pause in VM changes from the kill on, and how long XSM's connection was without Redis) is printed: t.log.
// XSM_SENTINEL_KILLS=5 repeats it (each on a fresh deployment) and prints the median with min–max.

import test from 'ava';
import { MemorySimStore, type SimHostState } from '../../src/drivers/hypervisor/simulated.ts';
import { envWholeNumber } from '../../src/lib/env.ts';
import { siteXml, type VmLine } from './fixtures.ts';
import { startTestSite } from './harness.ts';
import { SentinelRedis } from './sentinel-redis.ts';

const HOSTS = [1, 2, 3].map((i) => ({ name: `h${i}`, memMiB: 8192 }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A simulator store that notes when each host change happened (the apply's progress, outside Redis). */
class TimedStore extends MemorySimStore {
  readonly changes: number[] = [];
  override async update<T>(host: string, fn: (s: SimHostState) => T): Promise<T> {
    const out = await super.update(host, fn);
    this.changes.push(Date.now());
    return out;
  }
}

interface Round {
  /** The longest pause in the hosts' changes from the kill on (the apply's stall). */
  stallMs: number;
  /** How long XSM's own connection was without Redis (RedisHealth's 'back'). */
  downMs: number;
  /** From the kill until the sentinels named the new master. */
  promotedMs: number;
}

async function round(t: import('ava').ExecutionContext, vms: VmLine[]): Promise<Round> {
  const redis = await SentinelRedis.start();
  const store = new TimedStore();
  const s = await startTestSite(HOSTS, { store, redis: { sentinels: redis.sentinels, sentinelName: redis.name } });
  let downMs = -1;
  s.rt.health.once('back', (ms) => (downMs = ms));
  try {
    const v = await s.submitAndApply(siteXml(HOSTS, vms));
    // Kill the master once the apply is well under way: some VMs created, most not.
    const until = Date.now() + 20_000;
    while (store.changes.length < 6) {
      if (Date.now() > until) throw new Error('the apply never started');
      await sleep(5);
    }
    const old = await redis.masterPort();
    const killedAt = Date.now();
    await redis.killMaster();
    const before = store.changes.length;
    await redis.promoted(old);
    const promotedMs = Date.now() - killedAt;
    const st = await s.waitApplyEnded(v, 60_000);
    t.is(st.state, 'converged', `the apply ended ${st.state}`);
    const where = await s.where();
    for (const vm of vms) t.is(where[vm.name], vm.host, `${vm.name} runs once, on ${vm.host}`);
    t.is(Object.keys(where).length, vms.length, 'no VM that the version does not have');
    t.true(store.changes.length > before, 'work went on after the kill');
    // Jobs already running may still finish a step after the kill: the stall is the longest pause in the
    // hosts' changes from the kill on.
    const after = [killedAt, ...store.changes.filter((c) => c >= killedAt)];
    const stallMs = Math.max(...after.slice(1).map((c, i) => c - after[i]!));
    return { stallMs, downMs, promotedMs };
  } finally {
    await s.close().catch(() => {});
    await redis.stop();
  }
}

test('the Redis master killed mid-apply: Sentinel promotes the replica and the apply converges exactly', async (t) => {
  t.timeout(600_000);
  const kills = envWholeNumber(process.env, 'XSM_SENTINEL_KILLS', 1, 1, 20);
  const vms: VmLine[] = Array.from({ length: 30 }, (_, i) => ({ name: `vm${i}`, host: HOSTS[i % 3]!.name, mem: 256 }));
  const rounds: Round[] = [];
  for (let i = 0; i < kills; i++) {
    const r = await round(t, vms);
    rounds.push(r);
    t.log(`kill ${i + 1}: stall ${r.stallMs} ms, XSM without Redis ${r.downMs} ms, promoted after ${r.promotedMs} ms`);
  }
  if (rounds.length > 1) {
    const fig = (f: (r: Round) => number) => {
      const xs = rounds.map(f).sort((a, b) => a - b);
      const mid = xs.length % 2 ? xs[(xs.length - 1) / 2]! : (xs[xs.length / 2 - 1]! + xs[xs.length / 2]!) / 2;
      return `${mid} ms (${xs[0]}–${xs.at(-1)})`;
    };
    t.log(
      `${rounds.length} kills, median (min–max): stall ${fig((r) => r.stallMs)}, promotion ${fig((r) => r.promotedMs)}`,
    );
  }
});
