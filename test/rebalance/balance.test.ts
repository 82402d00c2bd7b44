import test from 'ava';
import { balance, scoreOf, type BalanceHost, type BalanceVm } from '../../src/rebalance/balance.ts';
import { generateCluster } from '../../bench/rebalance-hbal.ts';

const hosts = (n: number, extra: Partial<BalanceHost>[] = []): BalanceHost[] =>
  Array.from({ length: n }, (_, i) => ({ name: `h${i}`, cpus: 8, memMiB: 16384, ...extra[i] }));
const vm = (name: string, host: string, memMiB = 2048, cpuLoad = 1, more: Partial<BalanceVm> = {}): BalanceVm => ({
  name,
  host,
  memMiB,
  vcpus: 2,
  cpuLoad,
  ...more,
});

test('spreads an overloaded host and lowers imbalance, within capacity', (t) => {
  const vms = Array.from({ length: 6 }, (_, i) => vm(`v${i}`, 'h0'));
  const r = balance(hosts(3), vms);
  t.true(r.imbalanceAfter < r.imbalanceBefore / 2);
  t.true(r.moves.length >= 2 && r.moves.length <= 4);
  const per = new Map<string, number>();
  for (const v of vms) per.set(v.host, 0);
  const after = new Map(vms.map((v) => [v.name, v.host]));
  for (const m of r.moves) after.set(m.vm, m.to);
  for (const h of after.values()) per.set(h, (per.get(h) ?? 0) + 2048);
  for (const used of per.values()) t.true(used <= 16384);
  t.deepEqual(
    vms.map((v) => v.host),
    Array(6).fill('h0'),
    'the input snapshot is not modified',
  );
});

test('never moves pinned, no-rebalance or cooling-down VMs, and honours anti-affinity', (t) => {
  const vms = [
    vm('pin', 'h0', 4096, 4, { pinned: true }),
    vm('keep', 'h0', 4096, 4, { noRebalance: true }),
    vm('cool', 'h0', 4096, 4),
    vm('a1', 'h0', 1024, 2, { antiAffinity: 'db' }),
    vm('a2', 'h1', 1024, 0.1, { antiAffinity: 'db' }),
  ];
  const r = balance(hosts(2), vms, { cooldown: new Set(['cool']) });
  t.deepEqual(
    r.moves.map((m) => m.vm),
    [],
    'a1 may not join a2 on h1; the others may not move',
  );
});

test('drains hosts in maintenance even when balance would not, and reports what is stuck', (t) => {
  const hs = hosts(3, [{ maintenance: true }]);
  const r = balance(hs, [vm('x', 'h0', 4096), vm('y', 'h0', 2048), vm('huge', 'h0', 16000)], { mode: 'performance' });
  const drained = r.moves
    .filter((m) => m.from === 'h0')
    .map((m) => m.vm)
    .sort();
  t.deepEqual(drained, ['huge', 'x', 'y']);
  t.true(r.moves.every((m) => m.to !== 'h0'));
  const r2 = balance(hosts(2, [{ maintenance: true }, { memMiB: 4096 }]), [vm('big', 'h0', 8192)]);
  t.deepEqual(r2.stuck, ['big']);
});

test('density mode empties lightly used hosts without overfilling others, keeping a spare host', (t) => {
  const vms = [vm('a', 'h0', 2048, 0.5), vm('b', 'h1', 2048, 0.5), vm('c', 'h2', 2048, 0.5), vm('d', 'h3', 12288, 1)];
  const r = balance(hosts(4), vms, { mode: 'density' });
  // Two hosts could hold all 18 GiB, but then neither could take the other's VMs: one spare host stays.
  t.deepEqual(r.emptyHosts.length, 1, r.emptyHosts.join());
  const load = new Map<string, number>();
  const at = new Map(vms.map((v) => [v.name, v.host]));
  for (const m of r.moves) at.set(m.vm, m.to);
  for (const v of vms) load.set(at.get(v.name)!, (load.get(at.get(v.name)!) ?? 0) + v.memMiB);
  for (const used of load.values()) t.true(used <= 16384);
});

test('generated clusters: every plan lowers imbalance, deterministically, and scores agree', (t) => {
  for (const n of [20, 60]) {
    const { hosts: hs, vms } = generateCluster(n, n);
    // Without time pressure (the budget ends a search by the clock, which a busy machine slows).
    const a = balance(hs, vms, { timeBudgetMs: 60_000 });
    const b = balance(hs, vms, { timeBudgetMs: 60_000 });
    t.deepEqual(a.moves, b.moves);
    t.true(a.imbalanceAfter < a.imbalanceBefore);
    const placed = vms.map((v) => ({ ...v, host: a.moves.filter((m) => m.vm === v.name).at(-1)?.to ?? v.host }));
    t.true(Math.abs(scoreOf(hs, placed).score - a.imbalanceAfter) < 1e-9);
  }
});
