// Every refusal of the site loader, each naming the exact file:line:col an operator must fix.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSite, loadSiteFile, MAX_SITE_BYTES } from '../../src/site/parse.ts';
import { formatIssue, type HostSpec, type LoadResult } from '../../src/site/model.ts';
import { serializeSite } from '../../src/site/serialize.ts';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

const HOSTS = `  <Hosts>
    <Host name="xen01" address="10.0.0.1" mac="52:54:00:00:00:01" cpus="4" memory="1024"/>
    <Host name="xen02" address="10.0.0.2" cpus="4" memory="1024"/>
  </Hosts>`;

interface VmOpts {
  name?: string;
  config?: string;
  dom0?: string;
  vcpus?: string;
  mac?: string;
  ip?: string;
  mem?: string;
  extra?: string;
}
/** A VM block of 7 lines: <VM> at col 5, DOM0 +1, VCPUS +2, HWADDR +3, IP +4, MEM +5 (children at col 7). */
function vm(o: VmOpts = {}): string {
  return `    <VM name="${o.name ?? 'a'}" config="${o.config ?? 'web'}">
      <DOM0>${o.dom0 ?? 'xen01'}</DOM0>
      <VCPUS>${o.vcpus ?? '2'}</VCPUS>
      <HWADDR>${o.mac ?? '00:16:3e:00:00:01'}</HWADDR>
      <IP>${o.ip ?? 'DHCP'}</IP>
      <MEM>${o.mem ?? '256'}</MEM>${o.extra ?? ''}
    </VM>`;
}

/** Line 1 <XSMConfig>, hosts on lines 2-5, <Set> on line 6, first VM on line 7, second VM on line 14. */
function site(...vms: string[]): string {
  return ['<XSMConfig>', HOSTS, '  <Set name="s1">', ...vms, '  </Set>', '</XSMConfig>'].join('\n');
}

function errors(r: LoadResult): string[] {
  if (r.ok) throw new Error('expected the site to be refused, but it loaded');
  return r.errors.map(formatIssue);
}

test('refuses malformed XML and names the line and column', (t) => {
  const e = errors(loadSite('<XSMConfig>\n  <Set name="a">\n  </Sett>\n</XSMConfig>', 'bad.xml'));
  t.is(e.length, 1);
  t.regex(e[0]!, /^bad\.xml:3:3: XML: malformed XML: .*Set.*; fix the file at this place$/);
});

test('refuses a root element other than XSMConfig', (t) => {
  t.deepEqual(errors(loadSite('<?xml version="1.0"?>\n<Config/>', 'root.xml')), [
    'root.xml:2:1: Config: the root element must be <XSMConfig>, not <Config>',
  ]);
});

test('refuses a billion-laughs DOCTYPE before parsing, without expanding anything', (t) => {
  const start = performance.now();
  const r = loadSite(fixture('billion-laughs.xml'), 'lol.xml');
  t.true(performance.now() - start < 500, 'refused at once, not after expanding entities');
  t.deepEqual(errors(r), [
    'lol.xml:2:1: <!DOCTYPE>: DOCTYPE and ENTITY declarations are not allowed in a site file (no entity expansion, no external reads); remove it',
  ]);
  t.false(JSON.stringify(r).includes('lollol'));
});

test('refuses an external entity without reading the file it names', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xsm-xxe-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const secret = join(dir, 'secret');
  writeFileSync(secret, 'TOP-SECRET-4711');
  const xxe = `<?xml version="1.0"?>\n<XSMConfig>\n<!DOCTYPE x [ <!ENTITY e SYSTEM "file://${secret}"> ]>\n<Set name="a"><Owner>&e;</Owner></Set></XSMConfig>`;
  const r = loadSite(xxe, 'xxe.xml');
  t.deepEqual(
    errors(r).map((m) => m.split(': ')[0]),
    ['xxe.xml:3:1'],
  );
  t.false(JSON.stringify(r).includes('TOP-SECRET'));
  // An undeclared entity reference is not resolved either: it stays literal text.
  const lit = loadSite('<XSMConfig><Set name="a"><Owner>&e; &amp; &#65;</Owner></Set></XSMConfig>', 'ent.xml');
  t.true(lit.ok);
  if (lit.ok) t.is(lit.site.sets[0]?.owner, '&e; & A');
});

test('refuses the external-entity fixture file without reading /etc/passwd or the network', async (t) => {
  const file = new URL('./fixtures/external-entity.xml', import.meta.url).pathname;
  const r = await loadSiteFile(file);
  t.deepEqual(errors(r), [
    `${file}:2:1: <!DOCTYPE>: DOCTYPE and ENTITY declarations are not allowed in a site file (no entity expansion, no external reads); remove it`,
  ]);
  t.false(JSON.stringify(r).includes('root:'));
});

test('refuses a duplicate VM name across Sets and names both lines', (t) => {
  const xml = [
    '<XSMConfig>',
    HOSTS,
    '  <Set name="s1">',
    vm({ name: 'a' }),
    '  </Set>',
    '  <Set name="s2">',
    vm({ name: 'a', mac: '00:16:3e:00:00:02' }),
    '  </Set>',
    '</XSMConfig>',
  ].join('\n');
  t.deepEqual(errors(loadSite(xml, 'dup.xml')), [
    'dup.xml:16:5: VM[name=a]: VM name a is already used at dup.xml:7:5; VM names must be unique across all Sets',
  ]);
});

test('refuses a duplicate MAC and names both lines', (t) => {
  const e = errors(loadSite(site(vm({ name: 'a' }), vm({ name: 'b', mac: '00:16:3E:00:00:01' })), 'mac.xml'));
  t.deepEqual(e, [
    'mac.xml:17:7: VM[name=b]/HWADDR: MAC 00:16:3e:00:00:01 is already used at mac.xml:10:7; every VM needs its own MAC',
  ]);
});

test('refuses a VM MAC that is a host boot MAC', (t) => {
  const e = errors(loadSite(site(vm({ mac: '52:54:00:00:00:01' })), 'bm.xml'));
  t.deepEqual(e, ['bm.xml:10:7: VM[name=a]/HWADDR: MAC 52:54:00:00:00:01 is the boot MAC of host xen01']);
});

test('refuses an invalid MAC', (t) => {
  for (const mac of ['zz:16:3e:00:00:01', '00:16:3e:00:00', '00:16:3e:00:00:01:02', '01:16:3e:00:00:01', '']) {
    const e = errors(loadSite(site(vm({ mac })), 'm.xml'));
    t.is(e.length, 1, mac);
    t.regex(e[0]!, /^m\.xml:10:7: VM\[name=a\]\/HWADDR: /, mac);
  }
});

test('refuses an invalid IP but accepts DHCP, IPv4 and IPv6', (t) => {
  for (const ip of ['10.0.0.300', '10.0.0', '010.0.0.1', '2001:db8:::1', 'dhcp', 'example.com']) {
    t.deepEqual(
      errors(loadSite(site(vm({ ip })), 'ip.xml')),
      [`ip.xml:11:7: VM[name=a]/IP: ${JSON.stringify(ip)} is neither DHCP nor an IPv4/IPv6 address`],
      ip,
    );
  }
  for (const ip of ['DHCP', '10.1.2.3', '2001:db8::5', '::ffff:10.0.0.1'])
    t.true(loadSite(site(vm({ ip })), 'ip.xml').ok, ip);
});

test('refuses a duplicate static IP', (t) => {
  const e = errors(
    loadSite(
      site(vm({ name: 'a', ip: '10.1.0.1' }), vm({ name: 'b', mac: '00:16:3e:00:00:02', ip: '10.1.0.1' })),
      'ip.xml',
    ),
  );
  t.deepEqual(e, ['ip.xml:18:7: VM[name=b]/IP: static IP 10.1.0.1 is already given to VM a']);
});

test('refuses a missing MEM and names the VM', (t) => {
  const xml = site(vm().replace('      <MEM>256</MEM>\n', ''));
  t.deepEqual(errors(loadSite(xml, 'm.xml')), [
    'm.xml:7:5: VM[name=a]/MEM: MEM (MiB) is missing; give a whole number 16..16777216',
  ]);
});

test('refuses a non-numeric or absurd MEM, including 1e999 and 0x10', (t) => {
  const cases: [string, string][] = [
    ['lots', 'MEM (MiB) "lots" is not a whole decimal number'],
    ['1e999', 'MEM (MiB) "1e999" is not a whole decimal number'],
    ['0x10', 'MEM (MiB) "0x10" is not a whole decimal number'],
    ['-5', 'MEM (MiB) "-5" is not a whole decimal number'],
    ['12.5', 'MEM (MiB) "12.5" is not a whole decimal number'],
    ['8', 'MEM (MiB) 8 is out of range (16..16777216)'],
    ['16777217', 'MEM (MiB) 16777217 is out of range (16..16777216)'],
    ['99999999999999999999', 'MEM (MiB) "99999999999999999999" is not a whole decimal number'],
  ];
  for (const [mem, msg] of cases)
    t.deepEqual(errors(loadSite(site(vm({ mem })), 'mem.xml')), [`mem.xml:12:7: VM[name=a]/MEM: ${msg}`], mem);
});

test('refuses a missing, non-numeric or absurd VCPUS', (t) => {
  const cases: [string, string][] = [
    ['', 'VCPUS is missing; give a whole number 1..512'],
    ['four', 'VCPUS "four" is not a whole decimal number'],
    ['0', 'VCPUS 0 is out of range (1..512)'],
    ['513', 'VCPUS 513 is out of range (1..512)'],
  ];
  for (const [vcpus, msg] of cases)
    t.deepEqual(errors(loadSite(site(vm({ vcpus })), 'cpu.xml')), [`cpu.xml:9:7: VM[name=a]/VCPUS: ${msg}`], vcpus);
});

test('refuses an element given twice and names both places', (t) => {
  const e = errors(loadSite(site(vm({ extra: '\n      <MEM>512</MEM>' })), 'twice.xml'));
  t.deepEqual(e, [
    'twice.xml:13:7: VM[name=a]/MEM: <MEM> is given more than once (first at twice.xml:12:7); keep exactly one',
  ]);
});

test('refuses a DOM0 that is no host of the file inventory', (t) => {
  t.deepEqual(errors(loadSite(site(vm({ dom0: 'xen09' })), 'h.xml')), [
    'h.xml:8:7: VM[name=a]/DOM0: DOM0 "xen09" is no known host; declare it in <Hosts> or use one of: xen01, xen02',
  ]);
});

test('refuses a DOM0 that is no host of an external inventory, and resolves an address to the host name', (t) => {
  const inventory: HostSpec[] = [
    { name: 'xen07', address: '192.168.5.107', cpus: 8, memoryMiB: 4096, maintenance: false, implied: false },
  ];
  const paper = fixture('paper-site.xml');
  const e = errors(loadSite(paper, 'paper.xml', { inventory }));
  t.deepEqual(
    e.map((m) => m.split(': ').slice(0, 2).join(': ')),
    [
      'paper.xml:9:7: VM[name=vm1]/DOM0',
      'paper.xml:16:7: VM[name=vm2]/DOM0',
      'paper.xml:23:7: VM[name=vm3]/DOM0',
      'paper.xml:30:7: VM[name=vm4]/DOM0',
    ],
  );
  const ok = loadSite(
    paper.replace('192.168.5.101', '192.168.5.107').replace(/192\.168\.5\.10[234]/g, 'xen07'),
    'paper.xml',
    { inventory },
  );
  if (!ok.ok) return t.fail(ok.errors.map(formatIssue).join('\n'));
  t.deepEqual(
    ok.site.vms.map((v) => v.host),
    ['xen07', 'xen07', 'xen07', 'xen07'],
  );
});

test('refuses unsafe names: ../etc, spaces, $(x), __proto__', (t) => {
  for (const bad of ['../etc', 'my vm', '$(x)', '__proto__', 'a;b', '-x', 'a'.repeat(64)]) {
    const e = errors(loadSite(site(vm({ name: bad })), 'n.xml'));
    t.is(e.length, 1, bad);
    t.true(e[0]!.startsWith(`n.xml:7:5: VM[name=${bad}]: VM name ${JSON.stringify(bad)} is not a safe name`), e[0]);
  }
  const set = errors(loadSite(site(vm()).replace('Set name="s1"', 'Set name="../etc"'), 's.xml'));
  t.deepEqual(
    set.map((m) => m.split(': ').slice(0, 2).join(': ')),
    ['s.xml:6:3: Set[name=../etc]'],
  );
  const host = errors(loadSite(site(vm({ dom0: 'xen02' })).replace('name="xen01"', 'name="$(x)"'), 'h.xml'));
  t.deepEqual(
    host.map((m) => m.split(': ').slice(0, 2).join(': ')),
    ['h.xml:3:5: Host[name=$(x)]'],
  );
  const group = errors(loadSite(site(vm({ extra: '\n      <Placement antiAffinity="a b"/>' })), 'g.xml'));
  t.deepEqual(group, [
    "g.xml:13:7: VM[name=a]/Placement@antiAffinity: antiAffinity group \"a b\" is not a safe name: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit",
  ]);
  t.is(({} as Record<string, unknown>).polluted, undefined);
});

test('refuses a VM that does not fit its host and names the host and how much is missing', (t) => {
  const e = errors(
    loadSite(site(vm({ name: 'a', mem: '800' }), vm({ name: 'b', mac: '00:16:3e:00:00:02', mem: '300' })), 'cap.xml'),
  );
  t.deepEqual(e, [
    'cap.xml:14:5: VM[name=b]: does not fit: b needs 300 MiB but host xen01 has 224 MiB free of 1024 (76 MiB missing); move it to another DOM0 or lower its MEM/VCPUS',
  ]);
  const cpu = errors(loadSite(site(vm({ name: 'c', dom0: 'xen02', vcpus: '8' })), 'cpu.xml'));
  t.deepEqual(cpu, [
    'cpu.xml:7:5: VM[name=c]: does not fit: c needs 8 vCPUs but host xen02 has 4 CPUs (4 vCPUs missing); move it to another DOM0 or lower its MEM/VCPUS',
  ]);
});

test('a config naming no declared template names an xl config file, also beside declared templates', (t) => {
  const xml = `<XSMConfig>\n<Templates><Template name="db" type="pv"><Kernel>/k</Kernel></Template></Templates>\n<Set name="s">\n${vm({ dom0: 'h1' })}\n</Set></XSMConfig>`;
  const r = loadSite(xml, 't.xml');
  if (!r.ok) return t.fail(r.errors.map(formatIssue).join('\n'));
  t.is(r.site.templates.find((x) => x.name === 'web')?.configFile, 'web.cfg');
  t.deepEqual(
    r.warnings.map(formatIssue).filter((w) => w.includes('@config')),
    [
      "t.xml:4:5: VM[name=a]@config: web is no declared template: the VM runs the xl config file web.cfg from its Dom0's config directory (default /etc/xen), with its own name, MEM, VCPUS, HWADDR and IP; the plan refuses it where the file is missing",
    ],
  );
});

test('a refused host or template causes no second error on the VMs that name it', (t) => {
  const e = errors(loadSite(site(vm()).replace('cpus="4" memory="1024"/>', 'cpus="x" memory="1024"/>'), 'h.xml'));
  t.deepEqual(e, ['h.xml:3:5: Host[name=xen01]@cpus: cpus "x" is not a whole decimal number']);
});

test('warns about unknown elements and attributes at their place', (t) => {
  const r = loadSite(
    site(vm({ extra: '\n      <Memory>1</Memory>' }))
      .replace('<VM name="a"', '<VM colour="red" name="a"')
      .replace('<MEM>', '<MEM unit="GiB">'),
    'w.xml',
  );
  if (!r.ok) return t.fail(r.errors.map(formatIssue).join('\n'));
  t.deepEqual(r.warnings.map(formatIssue), [
    'w.xml:7:5: VM[name=a]: unknown attribute colour is ignored',
    "w.xml:7:5: VM[name=a]@config: web is no declared template: the VM runs the xl config file web.cfg from its Dom0's config directory (default /etc/xen), with its own name, MEM, VCPUS, HWADDR and IP; the plan refuses it where the file is missing",
    'w.xml:12:7: VM[name=a]/MEM: attribute unit on <MEM> is ignored (MEM is always MiB)',
    'w.xml:13:7: VM[name=a]/Memory: unknown element <Memory> is ignored',
  ]);
});

test('refuses a file over the size cap', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xsm-big-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const big = join(dir, 'big.xml');
  writeFileSync(big, '');
  truncateSync(big, MAX_SITE_BYTES + 1); // sparse: nothing is read
  const r = await loadSiteFile(big);
  t.deepEqual(errors(r), [
    `${big}:1:1: XSMConfig: file is ${MAX_SITE_BYTES + 1} bytes; the limit is ${MAX_SITE_BYTES}`,
  ]);
  t.false(loadSite(' '.repeat(MAX_SITE_BYTES + 1), 'big.xml').ok);
});

test('refuses deep nesting before parsing it', (t) => {
  const depth = 100_000;
  const xml = `<XSMConfig>\n${'<a>'.repeat(depth)}${'</a>'.repeat(depth)}</XSMConfig>`;
  const e = errors(loadSite(xml, 'deep.xml'));
  t.is(e.length, 1);
  t.regex(e[0]!, /^deep\.xml:1:1: XSMConfig: elements are nested 100001 deep; a site file needs at most 16/);
});

test('refuses a __proto__ element and pollutes no prototype', (t) => {
  const xml = `<XSMConfig>\n  <__proto__><polluted>yes</polluted></__proto__>\n  <Set name="s"/>\n</XSMConfig>`;
  t.deepEqual(errors(loadSite(xml, 'p.xml')), [
    'p.xml:2:3: <__proto__>: element name <__proto__> is not allowed in a site file; remove it',
  ]);
  t.is(({} as Record<string, unknown>).polluted, undefined);
  const ctor = errors(loadSite('<XSMConfig><Set name="s"><constructor/></Set></XSMConfig>', 'c.xml'));
  t.deepEqual(ctor, ['c.xml:1:26: <constructor>: element name <constructor> is not allowed in a site file; remove it']);
});

test('a file with several errors reports all of them, in file order', (t) => {
  const e = errors(loadSite(fixture('many-errors.xml'), 'many-errors.xml'));
  t.deepEqual(e, [
    'many-errors.xml:9:7: VM[name=web1]/VCPUS: VCPUS "two" is not a whole decimal number',
    'many-errors.xml:15:7: VM[name=web2]/DOM0: DOM0 "xen09" is no known host; declare it in <Hosts> or use one of: xen01',
    'many-errors.xml:17:7: VM[name=web2]/HWADDR: MAC 00:16:3e:00:00:01 is already used at many-errors.xml:10:7; every VM needs its own MAC',
    'many-errors.xml:18:7: VM[name=web2]/IP: "10.0.0.300" is neither DHCP nor an IPv4/IPv6 address',
    'many-errors.xml:19:7: VM[name=web2]/MEM: MEM (MiB) "1e999" is not a whole decimal number',
    'many-errors.xml:23:5: VM[name=web1]: VM name web1 is already used at many-errors.xml:7:5; VM names must be unique across all Sets',
  ]);
});

test('refuses duplicate host names, addresses and boot MACs in the inventory', (t) => {
  const xml = `<XSMConfig><Hosts>
<Host name="h" address="10.0.0.1" mac="52:54:00:00:00:01" cpus="2" memory="512"/>
<Host name="h" address="10.0.0.1" mac="52:54:00:00:00:01" cpus="2" memory="512"/>
</Hosts></XSMConfig>`;
  t.deepEqual(errors(loadSite(xml, 'inv.xml')), [
    'inv.xml:3:1: Host[name=h]: host name h is declared twice; give each Host its own name',
    "inv.xml:3:1: Host[name=h]@address: address 10.0.0.1 is also host h's; each Host needs its own address",
    "inv.xml:3:1: Host[name=h]@mac: boot MAC 52:54:00:00:00:01 is also host h's; each Host needs its own boot MAC",
  ]);
});

test('refuses a template path that could break out of the xl config', (t) => {
  const xml = `<XSMConfig><Templates><Template name="web" type="pv"><Kernel>/k", extra="evil</Kernel></Template></Templates></XSMConfig>`;
  t.deepEqual(errors(loadSite(xml, 'k.xml')), [
    "k.xml:1:54: Template[name=web]/Kernel: Kernel must not contain quotes, commas, '=', backslashes or control characters",
  ]);
});

test('a file with thousands of errors reports the first 500 in order and says how many more there are', (t) => {
  const xml = `<XSMConfig>\n${'<Set name="s"/>\n'.repeat(700)}</XSMConfig>`;
  const e = errors(loadSite(xml, 'rep.xml'));
  t.is(e.length, 501);
  t.is(e[0], 'rep.xml:3:1: Set[name=s]: set name s is used twice; give each Set its own name');
  t.is(e[499], 'rep.xml:502:1: Set[name=s]: set name s is used twice; give each Set its own name');
  t.is(e[500], 'rep.xml:502:1: XSMConfig: 199 more issues are not shown; fix the ones above and load again');
});

/** A site with no <Hosts>, as the paper writes them: each DOM0 names its host by address. */
function paperSite(...vms: string[]): string {
  return ['<XSMConfig>', '  <Set name="s1">', ...vms, '  </Set>', '</XSMConfig>'].join('\n');
}

test('a DOM0 of digits and dots must be a real IPv4 address, not a host name', (t) => {
  for (const dom0 of ['192.168.5.301', '999.999.999.999', '192.168.5.1.5', '10.0.0.01']) {
    t.deepEqual(
      errors(loadSite(paperSite(vm({ dom0 })), 'p.xml')),
      [
        `p.xml:4:7: VM[name=a]/DOM0: DOM0 ${JSON.stringify(dom0)} looks like an IPv4 address but is not one: give four numbers 0-255 without leading zeros (e.g. 192.168.5.31), or a host name that starts with a letter`,
      ],
      dom0,
    );
  }
  t.true(loadSite(paperSite(vm({ dom0: '192.168.5.31' })), 'p.xml').ok);
});

test('addresses that name no single machine are refused for a DOM0, a Host and a static IP', (t) => {
  t.deepEqual(errors(loadSite(paperSite(vm({ dom0: '0.0.0.0' })), 'p.xml')), [
    "p.xml:4:7: VM[name=a]/DOM0: DOM0 0.0.0.0 is an unspecified address, which names no machine; give the host's own address",
  ]);
  const hostAt = (address: string) =>
    `<XSMConfig>\n  <Hosts>\n    <Host name="xen01" address="${address}" cpus="4" memory="1024"/>\n  </Hosts>\n</XSMConfig>`;
  t.deepEqual(errors(loadSite(hostAt('255.255.255.255'), 'h.xml')), [
    "h.xml:3:5: Host[name=xen01]@address: address 255.255.255.255 is a broadcast address, which names no single machine; give the host's own address",
  ]);
  t.deepEqual(errors(loadSite(hostAt('ff02::1'), 'h.xml')), [
    "h.xml:3:5: Host[name=xen01]@address: address ff02::1 is a multicast address, which names no single machine; give the host's own address",
  ]);
  t.deepEqual(errors(loadSite(site(vm({ ip: '224.0.0.5' })), 'v.xml')), [
    'v.xml:11:7: VM[name=a]/IP: static IP 224.0.0.5 is a multicast address, which names no single machine; give the VM its own unicast address, or DHCP',
  ]);
});

test('static IPs are compared as addresses, not as text', (t) => {
  const two = (a: string, b: string) =>
    site(vm({ name: 'a', ip: a }), vm({ name: 'b', ip: b, mac: '00:16:3e:00:00:02' }));
  t.deepEqual(errors(loadSite(two('10.0.0.50', '::ffff:10.0.0.50'), 'm.xml')), [
    'm.xml:18:7: VM[name=b]/IP: static IP ::ffff:10.0.0.50 is already given to VM a (as 10.0.0.50, the same address)',
  ]);
  t.deepEqual(errors(loadSite(two('2001:db8::1', '2001:DB8:0::1'), 'm.xml')), [
    'm.xml:18:7: VM[name=b]/IP: static IP 2001:DB8:0::1 is already given to VM a (as 2001:db8::1, the same address)',
  ]);
  t.true(loadSite(two('2001:db8::1', '2001:db8::2'), 'm.xml').ok);
});

test('host addresses are compared as addresses and host names ignoring case', (t) => {
  const hosts = (a: string, b: string) =>
    `<XSMConfig>\n  <Hosts>\n    <Host name="${a.split('@')[0]}" address="${a.split('@')[1]}" cpus="4" memory="1024"/>\n    <Host name="${b.split('@')[0]}" address="${b.split('@')[1]}" cpus="4" memory="1024"/>\n  </Hosts>\n</XSMConfig>`;
  t.deepEqual(errors(loadSite(hosts('xen01@2001:db8::1', 'xen02@2001:DB8::0:1'), 'h.xml')), [
    "h.xml:4:5: Host[name=xen02]@address: address 2001:DB8::0:1 is also host xen01's; each Host needs its own address",
  ]);
  t.deepEqual(errors(loadSite(hosts('xen01@10.0.0.1', 'XEN01@10.0.0.2'), 'h.xml')), [
    'h.xml:4:5: Host[name=XEN01]: host name XEN01 is declared twice (names ignore case, as DNS does); give each Host its own name',
  ]);
});

test('the all-zero and the broadcast MAC are refused, each named for what it is', (t) => {
  t.deepEqual(errors(loadSite(site(vm({ mac: '00:00:00:00:00:00' })), 'z.xml')), [
    'z.xml:10:7: VM[name=a]/HWADDR: 00:00:00:00:00:00 is the all-zero MAC, which no network card owns; give a real unicast address',
  ]);
  t.deepEqual(errors(loadSite(site(vm({ mac: 'FF-FF-FF-FF-FF-FF' })), 'z.xml')), [
    'z.xml:10:7: VM[name=a]/HWADDR: ff:ff:ff:ff:ff:ff is the broadcast MAC; a VM or host needs its own unicast address',
  ]);
});

test('VM names are unique ignoring case, and the message names the first spelling', (t) => {
  const xml = site(vm({ name: 'vm1' }), vm({ name: 'VM1', mac: '00:16:3e:00:00:02' }));
  t.deepEqual(errors(loadSite(xml, 'c.xml')), [
    'c.xml:14:5: VM[name=VM1]: VM name VM1 is already used as vm1 at c.xml:7:5; VM names must be unique across all Sets, ignoring case',
  ]);
});

test('an IPv6 DOM0 without <Hosts> is an implied host named for its address, and writes back unchanged', (t) => {
  const xml = paperSite(
    vm({ name: 'a', dom0: '2001:DB8:0::10' }),
    vm({ name: 'b', dom0: '2001:db8::10', mac: '00:16:3e:00:00:02' }),
  );
  const r = loadSite(xml, 'v6.xml');
  if (!r.ok) return t.fail(r.errors.map(formatIssue).join('\n'));
  t.deepEqual(
    r.site.hosts.map((h) => [h.name, h.address, h.implied]),
    [['2001-db8--10', '2001:db8::10', true]],
    'one host, however the address is spelled',
  );
  t.deepEqual(
    r.site.vms.map((v) => v.host),
    ['2001-db8--10', '2001-db8--10'],
  );
  t.regex(r.warnings.map(formatIssue).join('\n'), /its agent and queue are named 2001-db8--10/);
  const again = loadSite(serializeSite(r.site), 'again.xml');
  if (!again.ok) return t.fail(again.errors.map(formatIssue).join('\n'));
  t.deepEqual(
    again.site.hosts,
    r.site.hosts.map((h) => ({ ...h, pos: again.site.hosts[0]!.pos })),
  );
  t.regex(serializeSite(r.site), /<DOM0>2001:db8::10<\/DOM0>/);
});

test('a file with two roots is reported as two roots, naming both places', (t) => {
  t.deepEqual(errors(loadSite('<XSMConfig>\n</XSMConfig>\n<XSMConfig/>\n', 'two.xml')), [
    'two.xml:3:1: <XSMConfig>: the file has 2 root elements (<XSMConfig> at two.xml:1:1 and <XSMConfig> here); a site file has exactly one <XSMConfig>: merge them or remove one',
  ]);
});

test('a declaration the parser cannot read is refused as malformed, not thrown (found by fuzzing)', (t) => {
  const r = loadSite('<?"xml version="1.0"?>\n<XSMConfig></XSMConfig>', 'pi.xml');
  t.false(r.ok);
  t.regex(errors(r)[0]!, /^pi\.xml:1:1: XML: malformed XML: .*check the XML declaration/);
});
