// The placement rules and their one precedence (pin > maintenance > anti-affinity > affinity > balance), on
// the rules alone and through the rebalancer that calls them.
import test from 'ava';
import { balance, type BalanceHost, type BalanceVm } from '../../src/rebalance/balance.ts';
import { PlacementRules, whyNoSpare, type RuleVm } from '../../src/rebalance/rules.ts';
import { evacuate } from '../../src/failover/placement.ts';
import { loadSite } from '../../src/site/parse.ts';
import { serializeSite } from '../../src/site/serialize.ts';

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

test('each rule refuses with its name, in the documented order', (t) => {
  const vms: RuleVm[] = [
    { name: 'p', host: 'h0', pinned: true, antiAffinity: 'g' },
    { name: 'x', host: 'h0', excludeHosts: ['h2'] },
    { name: 'a1', host: 'h0', antiAffinity: 'db' },
    { name: 'a2', host: 'h1', antiAffinity: 'db' },
    { name: 'f1', host: 'h0', affinity: 'web' },
    { name: 'f2', host: 'h0', affinity: 'web' },
    { name: 'lone', host: 'h1', affinity: 'app' },
    { name: 'mate', host: 'h2', affinity: 'app' },
  ];
  const r = new PlacementRules(
    [{ name: 'h0' }, { name: 'h1' }, { name: 'h2' }, { name: 'h3', maintenance: true }],
    vms,
  );
  // Pin outranks everything, maintenance outranks the groups.
  t.regex(r.whyNot('p', 'h3', 'evacuate')!, /^pin:/);
  t.regex(r.whyNot('a1', 'h3', 'evacuate')!, /^maintenance: h3 is in maintenance/);
  t.regex(r.whyNot('x', 'h2', 'evacuate')!, /^maintenance: x excludes h2/);
  t.is(r.whyNot('x', 'h1', 'balance'), undefined);
  t.regex(r.whyNot('a1', 'h1', 'evacuate')!, /^anti-affinity:/);
  // Affinity binds balancing (never split a group) but only guides an evacuation.
  t.regex(r.whyNot('f1', 'h1', 'balance')!, /^affinity: moving f1 alone would split group web/);
  t.is(r.whyNot('f1', 'h1', 'evacuate'), undefined);
  t.regex(r.whyNot('lone', 'h0', 'balance')!, /^affinity: group app runs on h2, not h0/);
  t.is(r.whyNot('lone', 'h2', 'balance'), undefined, 'joining its group is allowed');
  t.is(r.matesOn('lone', 'h2'), 1);
  // Moves keep the counts: once a2 leaves h1, a1 may go there.
  r.moved('a2', 'h2');
  t.is(r.whyNot('a1', 'h1', 'balance'), undefined);
  t.regex(r.whyNot('a1', 'h2', 'balance')!, /^anti-affinity:/);
});

test('packing moves an affinity group as one; planned moves count where they go', (t) => {
  const r = new PlacementRules(
    [{ name: 'h0' }, { name: 'h1' }, { name: 'h2' }],
    [
      { name: 'f1', host: 'h0', affinity: 'web' },
      { name: 'f2', host: 'h0', affinity: 'web' },
      { name: 'a1', host: 'h0', antiAffinity: 'db' },
      { name: 'a2', host: 'h2', antiAffinity: 'db' },
    ],
  );
  t.is(r.whyNot('f1', 'h1', 'pack'), undefined, 'the first of the group goes anywhere');
  const planned = new Map([['f1', 'h1']]);
  t.regex(r.whyNot('f2', 'h2', 'pack', planned)!, /^affinity: group web runs on h1, not h2/);
  t.is(r.whyNot('f2', 'h1', 'pack', planned), undefined);
  t.regex(r.whyNot('a1', 'h1', 'pack', new Map([['a2', 'h1']]))!, /^anti-affinity:/);
});

test('host cooldown holds balancing off a host but not a drain', (t) => {
  const r = new PlacementRules([{ name: 'h0' }, { name: 'h1' }], [{ name: 'v', host: 'h0' }], {
    coolingHosts: new Set(['h1']),
  });
  t.regex(r.whyNot('v', 'h1', 'balance')!, /^balance: h1 is cooling down/);
  t.is(r.whyNot('v', 'h1', 'evacuate'), undefined);
});

test('the spare reserve: any one running host could fail and its VMs still fit', (t) => {
  t.is(whyNoSpare([]), undefined);
  t.is(
    whyNoSpare([
      { name: 'h0', memMiB: 16, usedMiB: 8 },
      { name: 'h1', memMiB: 16, usedMiB: 8 },
    ]),
    undefined,
  );
  t.regex(
    whyNoSpare([
      { name: 'h0', memMiB: 16, usedMiB: 9 },
      { name: 'h1', memMiB: 16, usedMiB: 8 },
    ])!,
    /could not take h0's 9 MiB/,
  );
  // Enough memory free in all, but in pieces: h0's 6 MiB VM fits in neither h1's nor h2's 4 MiB free.
  const pieces = [
    { name: 'h0', memMiB: 16, usedMiB: 8, largestVmMiB: 6 },
    { name: 'h1', memMiB: 16, usedMiB: 12, largestVmMiB: 4 },
    { name: 'h2', memMiB: 16, usedMiB: 12, largestVmMiB: 4 },
  ];
  t.regex(whyNoSpare(pieces)!, /no other host has room for h0's biggest VM \(6 MiB\)/);
  t.is(whyNoSpare(pieces.map((h) => (h.name === 'h0' ? { ...h, largestVmMiB: 4 } : h))), undefined);
});

test('the rebalancer: a pinned VM stays on a host in maintenance, reported stuck', (t) => {
  const r = balance(hosts(2, [{ maintenance: true }]), [vm('pin', 'h0', 1024, 1, { pinned: true }), vm('free', 'h0')]);
  t.deepEqual(
    r.moves.map((m) => m.vm),
    ['free'],
  );
  t.deepEqual(r.stuck, ['pin']);
});

test('the rebalancer never splits an affinity group, never uses an excluded host, and drains groups together', (t) => {
  const vms = [
    vm('f1', 'h0', 2048, 3, { affinity: 'web' }),
    vm('f2', 'h0', 2048, 3, { affinity: 'web' }),
    vm('x1', 'h0', 2048, 2, { excludeHosts: ['h1'] }),
    vm('x2', 'h0', 2048, 2, { excludeHosts: ['h1'] }),
  ];
  const r = balance(hosts(2), vms);
  t.deepEqual(r.moves, [], 'f1/f2 stay together and x1/x2 may not go to h1: nothing may move');
  const drained = balance(hosts(3, [{ maintenance: true }]), vms);
  const to = new Map(drained.moves.map((m) => [m.vm, m.to]));
  t.is(to.get('f1'), to.get('f2'), 'the drained group lands together');
  t.not(to.get('x1'), 'h1');
  t.not(to.get('x2'), 'h1');
  t.deepEqual(drained.stuck, []);
});

test('the rebalancer leaves hosts that are cooling down alone', (t) => {
  const vms = Array.from({ length: 6 }, (_, i) => vm(`v${i}`, 'h0'));
  const r = balance(hosts(3), vms, { hostCooldown: new Set(['h1']) });
  t.true(r.moves.length > 0);
  t.true(r.moves.every((m) => m.to === 'h2' && m.from === 'h0'));
  t.deepEqual(balance(hosts(3), vms, { hostCooldown: new Set(['h0']) }).moves, []);
});

const siteWith = (placements: Record<string, string>, hostsXml?: string) => `<XSMConfig>
  <Hosts>
${
  hostsXml ??
  [1, 2, 3, 4].map((i) => `    <Host name="h${i}" address="10.9.0.${i}" cpus="8" memory="4096"/>`).join('\n')
}
  </Hosts>
  <Set name="s">
${Object.entries(placements)
  .map(
    ([name, p], i) =>
      `    <VM name="${name.split('@')[0]}" config="t"><DOM0>${name.split('@')[1]}</DOM0><VCPUS>1</VCPUS>` +
      `<HWADDR>00:16:3e:00:01:${(i + 16).toString(16)}</HWADDR><IP>DHCP</IP><MEM>512</MEM>${p}</VM>`,
  )
  .join('\n')}
  </Set>
</XSMConfig>`;

test('the site file: affinity and excludeHosts load, serialise back, and bad ones get located errors', (t) => {
  const ok = loadSite(
    siteWith({
      'a@h1': '<Placement affinity="web" excludeHosts="h2, 10.9.0.3"/>',
      'b@h1': '<Placement affinity="web"/>',
    }),
    's.xml',
  );
  if (!ok.ok) return t.fail(ok.errors.map((e) => e.message).join('; '));
  const a = ok.site.vms.find((v) => v.name === 'a')!;
  t.deepEqual(a.placement.affinity, 'web');
  t.deepEqual(a.placement.excludeHosts, ['h2', 'h3'], 'an address is stored as the host it names');
  const again = loadSite(serializeSite(ok.site), 's2.xml');
  t.true(again.ok);
  if (again.ok) t.deepEqual(again.site.vms.find((v) => v.name === 'a')!.placement, a.placement);

  const bad = loadSite(
    siteWith({
      'a@h1': '<Placement excludeHosts="h9"/>',
      'b@h1': '<Placement excludeHosts="h1"/>',
      'c@h1': '<Placement excludeHosts="h2,,h3"/>',
      'd@h1': '<Placement affinity="../x"/>',
      'e@h1': '<Placement excludeHosts="h2,h2"/>',
    }),
    'bad.xml',
  );
  t.false(bad.ok);
  if (bad.ok) return;
  const msgs = bad.errors.map((e) => `${e.line}:${e.message}`);
  t.true(
    msgs.some((m) => /excludeHosts names h9, which is not a host of this site/.test(m)),
    msgs.join('\n'),
  );
  t.true(
    msgs.some((m) => /the VM's DOM0 h1 is among its excludeHosts/.test(m)),
    msgs.join('\n'),
  );
  t.true(
    msgs.some((m) => /has an empty entry/.test(m)),
    msgs.join('\n'),
  );
  t.true(
    msgs.some((m) => /affinity group/.test(m)),
    msgs.join('\n'),
  );
  t.true(
    msgs.some((m) => /names h2 twice/.test(m)),
    msgs.join('\n'),
  );
  t.true(bad.errors.every((e) => e.line > 1 && e.file === 'bad.xml'));
});

test('failover placement honours the same rules: exclusion and anti-affinity strand, affinity regroups', (t) => {
  const r = loadSite(
    siteWith({
      'f1@h1': '<Placement affinity="web"/>',
      'f2@h3': '<Placement affinity="web"/>',
      'x@h1': '<Placement excludeHosts="h2,h3,h4"/>',
      'a1@h1': '<Placement antiAffinity="db"/>',
      'a2@h2': '<Placement antiAffinity="db"/>',
      'a3@h3': '<Placement antiAffinity="db"/>',
      'a4@h4': '<Placement antiAffinity="db"/>',
    }),
    'f.xml',
  );
  if (!r.ok) return t.fail(r.errors.map((e) => e.message).join('; '));
  const ev = evacuate(r.site, 'h1');
  t.deepEqual(
    ev.restarted.map((x) => `${x.vm}@${x.to}`),
    ['f1@h3'],
    'f1 rejoins f2 although h2 and h4 have more room',
  );
  const why = new Map(ev.stranded.map((s) => [s.vm, s.why]));
  t.regex(why.get('x')!, /h2: maintenance: x excludes h2/);
  t.regex(why.get('a1')!, /anti-affinity: a VM of group db runs on h2/);
});
