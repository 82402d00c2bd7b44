import test from 'ava';
import { loadSite } from '../../src/site/parse.ts';
import { planChanges, PlanError } from '../../src/site/plan.ts';
import { formatPlan } from '../../src/site/plan-format.ts';
import type { Site } from '../../src/site/model.ts';
import type { ConfigFileInfo, ObservedHost, ObservedState } from '../../src/site/observed.ts';
import type { DomainInfo } from '../../src/site/domain.ts';

// The paper's format: config="apache_svr" names /etc/xen/apache_svr.cfg on the VM's Dom0.
function paper(vms: { name: string; dom0: string; config: string; mem?: number }[]): Site {
  const xml = `<XSMConfig>\n<Set name="My_site">\n${vms
    .map(
      (v, i) =>
        `<VM name="${v.name}" config="${v.config}"><DOM0>${v.dom0}</DOM0><VCPUS>1</VCPUS><HWADDR>aa:00:00:00:00:0${i + 1}</HWADDR><IP>DHCP</IP><MEM>${v.mem ?? 96}</MEM></VM>`,
    )
    .join('\n')}\n</Set>\n</XSMConfig>\n`;
  const r = loadSite(xml, 'paper.xml');
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.site;
}

const file = (name: string, sha = 'a'): ConfigFileInfo => ({ name, sha256: sha.repeat(64).slice(0, 64) });
function hostSeen(name: string, files: ConfigFileInfo[] | undefined, domains: DomainInfo[] = []): ObservedHost {
  return {
    name,
    heartbeatAt: Date.now(),
    totalMemMiB: 4096,
    freeMemMiB: 3000,
    nrCpus: 4,
    domains,
    ...(files ? { configDir: '/etc/xen', configFiles: files } : {}),
  };
}
const observed = (...hosts: ObservedHost[]): ObservedState => ({
  hosts: Object.fromEntries(hosts.map((h) => [h.name, h])),
});
const running = (name: string, mem = 96): DomainInfo => ({
  name,
  domid: 3,
  state: 'running',
  memMiB: mem,
  maxMemMiB: mem,
  vcpus: 1,
  maxVcpus: 1,
  cpuTimeSec: 1,
});

test('a paper config name is the config file NAME.cfg, not a built-in guest: apache_svr and mysql_svr stay distinct', (t) => {
  const site = paper([
    { name: 'vm1', dom0: 'xen01', config: 'apache_svr' },
    { name: 'vm4', dom0: 'xen01', config: 'mysql_svr' },
  ]);
  t.deepEqual(
    site.templates.map((x) => [x.name, x.configFile]),
    [
      ['apache_svr', 'apache_svr.cfg'],
      ['mysql_svr', 'mysql_svr.cfg'],
    ],
  );
});

test('refuses a VM whose config file is missing on its host, naming the VM in the file, the file and the host', (t) => {
  const site = paper([
    { name: 'vm1', dom0: 'xen01', config: 'apache_svr' },
    { name: 'vm4', dom0: 'xen02', config: 'mysql_svr' },
  ]);
  const seen = observed(
    hostSeen('xen01', [file('apache_svr.cfg'), file('mysql_svr.cfg')]),
    hostSeen('xen02', [file('apache_svr.cfg')]),
  );
  const err = t.throws(() => planChanges(undefined, site, seen), { instanceOf: PlanError });
  t.is(
    err!.message,
    'a config file is missing; nothing was stored:\n' +
      'paper.xml:4:1: VM[name=vm4]@config: config file /etc/xen/mysql_svr.cfg is missing on host xen02 (needed to start vm4 there); copy it there or choose another DOM0',
  );
});

test('a VM whose file is there carries its hash as a precondition, so a file changed after planning is stale', (t) => {
  const site = paper([{ name: 'vm1', dom0: 'xen01', config: 'apache_svr' }]);
  const plan = planChanges(undefined, site, observed(hostSeen('xen01', [file('apache_svr.cfg', 'b')])));
  t.deepEqual(
    plan.actions.map((a) => a.id),
    ['create:vm1'],
  );
  t.deepEqual(plan.actions[0]!.preconditions.at(-1), {
    kind: 'config-file',
    host: 'xen01',
    file: 'apache_svr.cfg',
    sha256: 'b'.repeat(64),
  });
});

test('a host that has not reported its config files is not checked, and the plan says so', (t) => {
  const site = paper([{ name: 'vm1', dom0: 'xen01', config: 'apache_svr' }]);
  const plan = planChanges(undefined, site, observed(hostSeen('xen01', undefined)));
  t.deepEqual(
    plan.actions.map((a) => a.id),
    ['create:vm1'],
  );
  t.true(
    plan.notes.includes('config file apache_svr.cfg not checked on xen01: no agent report of its config files yet'),
  );
  const offline = planChanges(undefined, site);
  t.true(offline.notes.some((n) => n.startsWith('config file apache_svr.cfg not checked on xen01')));
});

test('a live migration to a host without the file is refused; one between differing copies is reported', (t) => {
  const before = paper([{ name: 'vm1', dom0: 'xen01', config: 'apache_svr' }]);
  const after = paper([{ name: 'vm1', dom0: 'xen02', config: 'apache_svr' }]);
  const missing = observed(
    hostSeen('xen01', [file('apache_svr.cfg')], [running('vm1')]),
    hostSeen('xen02', [file('mysql_svr.cfg')]),
  );
  const err = t.throws(() => planChanges(before, after, missing), { instanceOf: PlanError });
  t.regex(
    err!.message,
    /VM\[name=vm1\]@config: config file \/etc\/xen\/apache_svr.cfg is missing on host xen02 \(needed to move vm1 there\)/,
  );

  const differ = observed(
    hostSeen('xen01', [file('apache_svr.cfg', '1')], [running('vm1')]),
    hostSeen('xen02', [file('apache_svr.cfg', '2')]),
  );
  const plan = planChanges(before, after, differ);
  t.deepEqual(
    plan.actions.map((a) => `${a.id} ${a.kind === 'migrate' ? a.mode : ''}`),
    ['migrate:vm1 live'],
  );
  t.true(
    plan.notes.includes(
      "apache_svr.cfg differs between xen01 (sha256 111111111111) and xen02 (sha256 222222222222): vm1 keeps running as it was started, but a restart on xen02 runs xen02's file",
    ),
    plan.notes.join('\n'),
  );
  t.true(formatPlan(plan).includes('note: apache_svr.cfg differs between xen01'));
  const same = observed(
    hostSeen('xen01', [file('apache_svr.cfg', '1')], [running('vm1')]),
    hostSeen('xen02', [file('apache_svr.cfg', '1')]),
  );
  t.false(planChanges(before, after, same).notes.some((n) => n.includes('differs')));
});

test('a VM that stays where it is needs no check: removing a file under a running VM plans nothing', (t) => {
  const site = paper([{ name: 'vm1', dom0: 'xen01', config: 'apache_svr' }]);
  const plan = planChanges(site, site, observed(hostSeen('xen01', [], [running('vm1')])));
  t.deepEqual(plan.actions, []);
});
