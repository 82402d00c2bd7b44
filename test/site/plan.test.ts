import test from 'ava';
import { planChanges, PlanError } from '../../src/site/plan.ts';
import { formatPlan, planJson } from '../../src/site/plan-format.ts';
import type { Action, Plan } from '../../src/site/actions.ts';
import type { Site } from '../../src/site/model.ts';
import { host, site, template, vm } from './helpers.ts';
import { planHash, sameContent } from '../../src/site/plan-hash.ts';
import { loadSite } from '../../src/site/parse.ts';
import type { ObservedState } from '../../src/site/observed.ts';
import type { DomainInfo } from '../../src/drivers/hypervisor/hypervisor.ts';

/** Every action that depends on `id`, directly or through others. */
function dependents(plan: Plan, id: string): Set<string> {
  const out = new Set<string>([id]);
  for (const a of plan.actions) if (a.dependsOn.some((d) => out.has(d))) out.add(a.id);
  return out;
}

function domain(name: string, memMiB: number, vcpus = 1): DomainInfo {
  return { name, domid: 1, state: 'running', memMiB, maxMemMiB: memMiB, vcpus, maxVcpus: vcpus, cpuTimeSec: 0 };
}

/** Replays a plan wave by wave; fails if any host's memory would exceed capacity at any moment. */
function replay(
  current: Site,
  desired: Site,
  plan: Plan,
  skip: ReadonlySet<string> = new Set(),
): Map<string, { host: string; mem: number; vcpus: number }> {
  const cap = new Map([...current.hosts, ...desired.hosts].map((h) => [h.name, h.memoryMiB]));
  const at = new Map(current.vms.map((v) => [v.name, { host: v.host, mem: v.memMiB, vcpus: v.vcpus }]));
  const used = () => {
    const u = new Map<string, number>();
    for (const v of at.values()) u.set(v.host, (u.get(v.host) ?? 0) + v.mem);
    return u;
  };
  const check = (extra: Map<string, number>, when: string) => {
    const u = used();
    for (const [h, m] of extra) u.set(h, (u.get(h) ?? 0) + m);
    for (const [h, m] of u)
      if (m > (cap.get(h) ?? Infinity)) throw new Error(`${when}: host ${h} uses ${m} MiB > ${cap.get(h)}`);
  };
  for (let w = 0; w < plan.waves; w++) {
    const wave = plan.actions.filter((a) => a.wave === w && !skip.has(a.id));
    const cold = wave.find((a) => a.kind === 'migrate' && a.mode === 'cold');
    if (cold) {
      // A cold move has its wave to itself and runs its parts one after the other: check after each.
      if (wave.length !== 1) throw new Error(`wave ${w}: a cold move shares its wave`);
      for (const [i, a] of coldParts(cold).entries()) {
        apply(at, a);
        check(new Map(), `wave ${w}, part ${i} of ${cold.id}`);
      }
      continue;
    }
    // During a wave, every migration holds memory on its target while the source still holds it too,
    // and every growth/creation has taken its memory; shrinks/removes may not have freed yet.
    const inflight = new Map<string, number>();
    const add = (h: string, m: number) => inflight.set(h, (inflight.get(h) ?? 0) + m);
    for (const a of wave) {
      if (a.kind === 'migrate') add(a.to, at.get(a.vm)!.mem);
      if (a.kind === 'create') add(a.host, a.spec.memMiB);
      if (a.kind === 'reconfigure' && a.memMiB && a.memMiB.to > a.memMiB.from) add(a.host, a.memMiB.to - a.memMiB.from);
    }
    check(inflight, `wave ${w}`);
    for (const a of wave) apply(at, a);
    check(new Map(), `after wave ${w}`);
  }
  return at;
}
/** A cold move's parts, as the state changes they make: stop, each live move, start on the target. */
function coldParts(a: Action): Action[] {
  if (a.kind !== 'migrate') return [a];
  const stub = { wave: a.wave, dependsOn: [], preconditions: [], reason: '' };
  return [
    { ...stub, kind: 'remove', id: 'stop', vm: a.vm, host: a.from },
    ...(a.via ?? []).map((v): Action => ({
      ...stub,
      kind: 'migrate',
      id: 'via',
      vm: v.vm,
      from: v.from,
      to: v.to,
      spec: v.spec,
      mode: 'live',
    })),
    { ...stub, kind: 'create', id: 'start', vm: a.vm, host: a.to, spec: a.spec },
  ];
}
function apply(at: Map<string, { host: string; mem: number; vcpus: number }>, a: Action): void {
  if (a.kind === 'remove') at.delete(a.vm);
  else if (a.kind === 'create') at.set(a.vm, { host: a.host, mem: a.spec.memMiB, vcpus: a.spec.vcpus });
  else if (a.kind === 'migrate') at.get(a.vm)!.host = a.to;
  else {
    const v = at.get(a.vm)!;
    if (v.host !== a.host) throw new Error(`reconfigure of ${a.vm} on ${a.host} but it is on ${v.host}`);
    v.mem = a.spec.memMiB;
    v.vcpus = a.spec.vcpus;
  }
}
function assertReaches(t: import('ava').ExecutionContext, current: Site, desired: Site, plan: Plan): void {
  const end = replay(current, desired, plan);
  t.deepEqual(
    [...end].map(([n, v]) => [n, v.host, v.mem, v.vcpus]).sort(),
    desired.vms.map((v) => [v.name, v.host, v.memMiB, v.vcpus]).sort(),
  );
}

const H = [host('h1', 1024), host('h2', 1024), host('h3', 1024)];

test('creates every VM of a first version, with a reason', (t) => {
  const desired = site(H, [vm('a', 'h1', 512), vm('b', 'h2', 256)]);
  const plan = planChanges(undefined, desired);
  t.deepEqual(
    plan.actions.map((a) => [a.kind, a.vm, a.wave]),
    [
      ['create', 'a', 0],
      ['create', 'b', 0],
    ],
  );
  t.regex(plan.actions[0]!.reason, /new in the site file/);
});

test('removes, reconfigures live or by restart, and migrates', (t) => {
  const tpl = { ...template, maxVcpus: 4 };
  const current = site(H, [vm('a', 'h1', 256), vm('b', 'h1', 256, 2), vm('c', 'h2', 256), vm('d', 'h2', 256)], [tpl]);
  const desired = site(
    H,
    [
      { ...current.vms[1]!, memMiB: 512 },
      { ...current.vms[2]!, host: 'h3' },
      { ...current.vms[3]!, memMiB: 768, vcpus: 8 },
    ],
    [tpl],
  );
  const plan = planChanges(current, desired);
  const byVm = new Map(plan.actions.map((a) => [a.vm, a]));
  t.is(byVm.get('a')?.kind, 'remove');
  const b = byVm.get('b');
  t.true(b?.kind === 'reconfigure' && b.mode === 'live' && b.memMiB?.to === 512);
  t.true(byVm.get('c')?.kind === 'migrate');
  const d = byVm.get('d');
  t.true(d?.kind === 'reconfigure' && d.mode === 'restart', 'vCPUs beyond maxvcpus need a restart');
  t.regex(d!.reason, /restart \(exceeds the running domain's maxmem/);
  assertReaches(t, current, desired, plan);
});

test('a migration that needs room waits for the removal that frees it', (t) => {
  const current = site(H, [vm('old', 'h2', 768), vm('mover', 'h1', 512)]);
  const desired = site(H, [{ ...current.vms[1]!, host: 'h2' }]);
  const plan = planChanges(current, desired);
  const remove = plan.actions.find((a) => a.kind === 'remove')!;
  const move = plan.actions.find((a) => a.kind === 'migrate')!;
  t.true(move.wave > remove.wave);
  assertReaches(t, current, desired, plan);
});

test('a swap of two VMs between two full hosts parks one on a third host', (t) => {
  const current = site(H, [vm('x', 'h1', 1024), vm('y', 'h2', 1024)]);
  const desired = site(H, [
    { ...current.vms[0]!, host: 'h2' },
    { ...current.vms[1]!, host: 'h1' },
  ]);
  const plan = planChanges(current, desired);
  t.is(plan.actions.length, 3);
  t.true(plan.actions.some((a) => a.kind === 'migrate' && a.to === 'h3' && /park/.test(a.reason)));
  t.false(
    plan.actions.some((a) => a.kind === 'remove'),
    'no downtime when a parking host exists',
  );
  assertReaches(t, current, desired, plan);
});

test('a swap of two VMs between the only two full hosts is one cold move, flagged as downtime, that can be undone', (t) => {
  const two = [host('h1', 1024), host('h2', 1024)];
  const current = site(two, [vm('x', 'h1', 1024), vm('y', 'h2', 1024)]);
  const desired = site(two, [
    { ...current.vms[0]!, host: 'h2' },
    { ...current.vms[1]!, host: 'h1' },
  ]);
  const plan = planChanges(current, desired);
  // One action: stop x, move y live into the room x left, start x on h2 (and the reverse if that fails).
  t.is(plan.actions.length, 1);
  const cold = plan.actions[0]!;
  t.true(cold.kind === 'migrate' && cold.mode === 'cold');
  t.regex(
    cold.reason,
    /cold move \(DOWNTIME\).*stop x on h1, move y h2 -> h1 live, then start x on h2 \(back on h1 if that fails\)/,
  );
  t.true(cold.disruptive);
  t.is(cold.disruption, 'x is stopped on h1 and started on h2 once y moved');
  if (cold.kind !== 'migrate') return;
  t.like(cold.previous?.spec, { name: 'x', host: 'h1', memMiB: 1024, vcpus: 1 });
  t.is(cold.previous?.template.name, 'web');
  t.deepEqual(
    cold.via?.map((v) => `${v.vm} ${v.from}->${v.to}`),
    ['y h2->h1'],
  );
  assertReaches(t, current, desired, plan);
});

test('plans are deterministic and printable', (t) => {
  const current = site(H, [vm('a', 'h1', 256), vm('b', 'h2', 256)]);
  const desired = site(H, [{ ...current.vms[0]!, host: 'h3' }, vm('c', 'h1', 128)]);
  const p1 = planChanges(current, desired);
  const p2 = planChanges(structuredClone(current), structuredClone(desired));
  t.is(planJson(p1), planJson(p2));
  const text = formatPlan(p1);
  t.regex(text, /WAVE\s+ACTION\s+VM/);
  t.regex(text, /3 actions in \d+ waves?: /);
});

test('observed state: a VM already running where it belongs is not created again; a stranger is only noted', (t) => {
  const desired = site(H, [vm('a', 'h1', 256)]);
  const dom = (name: string) => ({
    name,
    domid: 3,
    state: 'running' as const,
    memMiB: 256,
    maxMemMiB: 256,
    vcpus: 1,
    maxVcpus: 1,
    cpuTimeSec: 0,
  });
  const observed = {
    hosts: {
      h1: {
        name: 'h1',
        heartbeatAt: 0,
        totalMemMiB: 2048,
        freeMemMiB: 1024,
        nrCpus: 8,
        domains: [dom('a'), dom('stranger')],
      },
    },
  };
  const plan = planChanges(undefined, desired, observed);
  t.is(plan.actions.length, 0);
  t.true(plan.notes.some((n) => /stranger runs on h1 but no site version knows it/.test(n)));
});

test('observed state: ceilings the toolstack did not report are taken from the version that created the VM', (t) => {
  // A domain `xl list` showed but `xl list -l` did not (seen on real Xen while it was being built): the
  // driver falls back to its current size for maxmem/maxvcpus and says so.
  const tpl = { ...template, maxMemMiB: 96, maxVcpus: 2 };
  const current = site(H, [vm('a', 'h1', 96, 1)], [tpl]);
  const desired = site(H, [{ ...current.vms[0]!, memMiB: 80, vcpus: 2 }], [tpl]);
  const dom = (extra: object) => ({
    name: 'a',
    domid: 3,
    state: 'running' as const,
    memMiB: 96,
    maxMemMiB: 96,
    vcpus: 1,
    maxVcpus: 1,
    cpuTimeSec: 0,
    ...extra,
  });
  const observedWith = (d: ReturnType<typeof dom>) => ({
    hosts: { h1: { name: 'h1', heartbeatAt: 0, totalMemMiB: 2048, freeMemMiB: 1024, nrCpus: 8, domains: [d] } },
  });
  const unknown = planChanges(current, desired, observedWith(dom({ limitsUnknown: true })));
  const a = unknown.actions[0];
  t.true(a?.kind === 'reconfigure' && a.mode === 'live', `planned ${JSON.stringify(a)}`);
  // Ceilings Xen did report are believed, even below the file's: that domain cannot grow live.
  const reported = planChanges(current, desired, observedWith(dom({})));
  const b = reported.actions[0];
  t.true(b?.kind === 'reconfigure' && b.mode === 'restart');
  t.regex(b!.reason, /maxvcpus 1/);
});

test('observed state: a VM is planned from the size Xen holds for it, not what the guest shows yet', (t) => {
  // Seen in the qemu lab: after a live 1 -> 2 vCPU change the guest had not onlined the second vCPU,
  // and the next version (a migration) also planned the vCPU change again.
  const tpl = { ...template, maxMemMiB: 96, maxVcpus: 2 };
  const current = site(H, [vm('a', 'h1', 80, 2)], [tpl]);
  const desired = site(H, [{ ...current.vms[0]!, host: 'h2' }], [tpl]);
  const d = {
    name: 'a',
    domid: 3,
    state: 'blocked' as const,
    memMiB: 82,
    targetMemMiB: 80,
    maxMemMiB: 96,
    vcpus: 1,
    targetVcpus: 2,
    maxVcpus: 2,
    cpuTimeSec: 1,
  };
  const observed = {
    hosts: { h1: { name: 'h1', heartbeatAt: 0, totalMemMiB: 2048, freeMemMiB: 1024, nrCpus: 8, domains: [d] } },
  };
  const plan = planChanges(current, desired, observed);
  t.deepEqual(
    plan.actions.map((a) => a.kind),
    ['migrate'],
  );
});

test('random site pairs: every plan keeps every host within capacity and reaches the desired state', (t) => {
  let seed = 42;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  for (let round = 0; round < 200; round++) {
    const hosts = Array.from({ length: 2 + rnd(4) }, (_, i) => host(`h${i}`, 1024));
    const place = (vms: ReturnType<typeof vm>[], name: string, mem: number) => {
      const load = new Map<string, number>();
      for (const v of vms) load.set(v.host, (load.get(v.host) ?? 0) + v.memMiB);
      const free = hosts.filter((h) => (load.get(h.name) ?? 0) + mem <= h.memoryMiB);
      return free.length ? free[rnd(free.length)]!.name : undefined;
    };
    const cur: ReturnType<typeof vm>[] = [];
    for (let i = 0; i < 3 + rnd(8); i++) {
      const mem = 128 * (1 + rnd(4));
      const h = place(cur, `v${i}`, mem);
      if (h) cur.push(vm(`v${i}`, h, mem));
    }
    const next: ReturnType<typeof vm>[] = [];
    for (const v of cur) {
      const r = rnd(10);
      if (r === 0) continue;
      const mem = r === 1 ? 128 * (1 + rnd(4)) : v.memMiB;
      const h =
        r >= 2 && r <= 4
          ? place(next, v.name, mem)
          : next.reduce((s, x) => s + (x.host === v.host ? x.memMiB : 0), 0) + mem <= 1024
            ? v.host
            : place(next, v.name, mem);
      if (h) next.push({ ...v, host: h, memMiB: mem });
    }
    for (let i = 0; i < rnd(3); i++) {
      const mem = 128 * (1 + rnd(4));
      const h = place(next, `n${round}-${i}`, mem);
      if (h) next.push(vm(`n${round}-${i}`, h, mem));
    }
    const current = site(hosts, cur);
    const desired = site(hosts, next);
    const plan = planChanges(current, desired);
    try {
      assertReaches(t, current, desired, plan);
      // Any one action failing stops only what depends on it; everything else still fits at every moment.
      if (plan.actions.length)
        replay(current, desired, plan, dependents(plan, plan.actions[rnd(plan.actions.length)]!.id));
    } catch (e) {
      t.fail(`round ${round}: ${(e as Error).message}\n${formatPlan(plan)}`);
      return;
    }
  }
});

test('a desired state that can never fit is refused naming the host', (t) => {
  const one = [host('h1', 512)];
  const current = site(one, []);
  const desired = site(one, [vm('big', 'h1', 1024)]);
  const err = t.throws(() => planChanges(current, desired), { instanceOf: PlanError });
  t.regex(err!.message, /big needs 1024 MiB but host h1 has 512 MiB free/);
});

test('an action depends on the previous action on its VM and on the frees it cannot fit without, no others', (t) => {
  // h2 is full (big 768 + small 256); mover (512) needs big's room, not small's; c grows live on h3.
  const current = site(H, [vm('big', 'h2', 768), vm('small', 'h2', 256), vm('mover', 'h1', 512), vm('c', 'h3', 256)]);
  const desired = site(H, [
    { ...current.vms[2]!, host: 'h2', memMiB: 600 },
    { ...current.vms[3]!, memMiB: 512 },
  ]);
  const plan = planChanges(current, desired);
  const byId = new Map(plan.actions.map((a) => [a.id, a]));
  t.deepEqual(byId.get('remove:big')?.dependsOn, []);
  t.deepEqual(byId.get('migrate:mover')?.dependsOn, ['remove:big'], 'small frees 256 MiB mover can do without');
  t.deepEqual(byId.get('reconfigure:mover')?.dependsOn, ['migrate:mover']);
  t.deepEqual(byId.get('reconfigure:c')?.dependsOn, [], 'nothing on h3 depends on h2');
  assertReaches(t, current, desired, plan);
});

test('each action records what it assumes: where its VM runs at what size, and the room it needs', (t) => {
  const current = site(H, [vm('a', 'h1', 256), vm('b', 'h2', 512, 2)]);
  const desired = site(H, [
    { ...current.vms[0]!, host: 'h3' },
    { ...current.vms[1]!, memMiB: 768 },
    vm('n', 'h1', 128),
  ]);
  const plan = planChanges(current, desired);
  const pre = (id: string) => plan.actions.find((a) => a.id === id)?.preconditions;
  t.deepEqual(pre('migrate:a'), [
    { kind: 'vm-runs', vm: 'a', host: 'h1', memMiB: 256, vcpus: 1 },
    { kind: 'vm-absent', vm: 'a', host: 'h3' },
    { kind: 'room', host: 'h3', memMiB: 256, vcpus: 1 },
  ]);
  t.deepEqual(pre('reconfigure:b'), [
    { kind: 'vm-runs', vm: 'b', host: 'h2', memMiB: 512, vcpus: 2 },
    { kind: 'room', host: 'h2', memMiB: 256, vcpus: 2 },
  ]);
  t.deepEqual(pre('create:n'), [
    { kind: 'vm-nowhere', vm: 'n' },
    { kind: 'room', host: 'h1', memMiB: 128, vcpus: 1 },
  ]);
});

test('actions that stop a running VM are marked disruptive and say how; live changes are not', (t) => {
  const tpl = { ...template, maxMemMiB: 512, maxVcpus: 2 };
  const current = site(H, [vm('live', 'h1', 256), vm('big', 'h3', 256), vm('gone', 'h2', 256)], [tpl]);
  const desired = site(
    H,
    [
      { ...current.vms[0]!, memMiB: 512 },
      { ...current.vms[1]!, memMiB: 768 },
    ],
    [tpl],
  );
  const plan = planChanges(current, desired);
  const marks = plan.actions.map((a) => [a.id, a.disruptive ?? false, a.disruption ?? '']);
  t.deepEqual(marks, [
    ['remove:gone', true, 'gone is shut down and destroyed on h2'],
    ['reconfigure:big', true, 'big is shut down on h3 and started again with 768 MiB, 1 vCPUs'],
    ['reconfigure:live', false, ''],
  ]);
  const restart = plan.actions.find((a) => a.id === 'reconfigure:big');
  t.true(
    restart?.kind === 'reconfigure' && restart.previous?.spec.memMiB === 256,
    'the restart records the VM as it ran',
  );
  t.regex(formatPlan(plan), /2 actions stop running VMs:\n  remove:gone: gone is shut down and destroyed on h2/);
});

test('an undeclared host is checked against what its agent observes: a resize beyond it is refused naming the host and what is missing', (t) => {
  // The paper's format declares no hosts: DOM0 addresses imply them, with unknown capacity.
  const xml = (mem: number) =>
    `<XSMConfig><Set name="s"><VM name="vm3" config="apache_svr"><DOM0>192.168.5.103</DOM0><VCPUS>4</VCPUS><HWADDR>AA:00:00:00:00:03</HWADDR><IP>DHCP</IP><MEM>${mem}</MEM></VM></Set></XSMConfig>`;
  const load = (mem: number) => {
    const r = loadSite(xml(mem), 'paper.xml');
    if (!r.ok) throw new Error(r.errors[0]!.message);
    return r.site;
  };
  const observed: ObservedState = {
    hosts: {
      '192.168.5.103': {
        name: '192.168.5.103',
        heartbeatAt: 0,
        totalMemMiB: 2048,
        freeMemMiB: 1440,
        nrCpus: 4,
        domains: [domain('vm3', 96, 4)],
      },
    },
  };
  const err = t.throws(() => planChanges(load(96), load(9999), observed), { instanceOf: PlanError });
  t.is(
    err!.message,
    'cannot order the plan: vm3 to grow from 96 to 9999 MiB needs 9903 MiB but host 192.168.5.103 has 1440 MiB free of 1536 (as its agent reports) (8463 MiB missing); free memory on 192.168.5.103 or change less at once',
  );
  // Within what it observes (free memory plus vm3's own), the resize is planned.
  t.is(planChanges(load(96), load(1536), observed).actions.length, 1);
  // With no agent report, the room is unknown: planned, and the plan says it did not check.
  const blind = planChanges(load(96), load(9999));
  t.true(blind.notes.some((n) => /capacity of 192\.168\.5\.103 is unknown/.test(n)));
});

test('a ring of moves between three full hosts with no room anywhere is one cold move carrying the others', (t) => {
  const three = [host('h1', 1024), host('h2', 1024), host('h3', 1024)];
  const current = site(three, [vm('x', 'h1', 1024), vm('y', 'h2', 1024), vm('z', 'h3', 1024)]);
  const desired = site(three, [
    { ...current.vms[0]!, host: 'h2' },
    { ...current.vms[1]!, host: 'h3' },
    { ...current.vms[2]!, host: 'h1' },
  ]);
  const plan = planChanges(current, desired);
  t.is(plan.actions.length, 1);
  const a = plan.actions[0]!;
  t.true(a.kind === 'migrate' && a.mode === 'cold');
  if (a.kind === 'migrate')
    t.deepEqual(
      a.via?.map((v) => `${v.vm} ${v.from}->${v.to}`),
      ['z h3->h1', 'y h2->h3'],
    );
  assertReaches(t, current, desired, plan);
});

test('a plan hash names the actions: same plan, same hash; another plan, another hash', (t) => {
  const current = site(H, [vm('a', 'h1', 256)]);
  const p1 = planChanges(current, site(H, [{ ...current.vms[0]!, host: 'h2' }]));
  const p2 = planChanges(structuredClone(current), site(H, [{ ...current.vms[0]!, host: 'h2' }]));
  const p3 = planChanges(current, site(H, [{ ...current.vms[0]!, host: 'h3' }]));
  t.is(planHash(p1.actions), planHash(p2.actions));
  t.not(planHash(p1.actions), planHash(p3.actions));
  t.regex(planHash(p1.actions), /^[0-9a-f]{64}$/);
});

test('the same content laid out differently is the same content; a changed value is not', (t) => {
  const a = loadSite(
    '<XSMConfig><Set name="s"><VM name="v" config="c"><DOM0>h</DOM0><VCPUS>1</VCPUS><HWADDR>00:16:3e:00:00:01</HWADDR><IP>DHCP</IP><MEM>64</MEM></VM></Set></XSMConfig>',
    'a.xml',
  );
  const b = loadSite(
    '<?xml version="1.0"?>\n<!-- xsm:base-version 3 -->\n<XSMConfig>\n  <Set name="s">\n    <VM name="v" config="c">\n      <DOM0>h</DOM0>  <VCPUS>1</VCPUS>\n      <HWADDR>00:16:3E:00:00:01</HWADDR><IP>DHCP</IP><MEM>64</MEM>\n    </VM>\n  </Set>\n</XSMConfig>\n',
    'b.xml',
  );
  const c = loadSite(
    '<XSMConfig><Set name="s"><VM name="v" config="c"><DOM0>h</DOM0><VCPUS>2</VCPUS><HWADDR>00:16:3e:00:00:01</HWADDR><IP>DHCP</IP><MEM>64</MEM></VM></Set></XSMConfig>',
    'c.xml',
  );
  if (!a.ok || !b.ok || !c.ok) return t.fail('the fixtures must load');
  t.true(sameContent(a.site, b.site));
  t.false(sameContent(a.site, c.site));
});
