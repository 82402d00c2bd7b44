// Only an admin may add, change or remove a host's <Power>: it says where XSM sends a BMC password and which
// machine fencing switches off. An operator's file that touches Power is refused with 403 naming the
// element, and nothing is stored; the same operator may change everything else.
import test from 'ava';
import { startTestSite } from '../integration/harness.ts';
import { siteXml, type HostLine, type VmLine } from '../integration/fixtures.ts';
import { startApi } from '../../src/api/listen.ts';
import { TokenTable } from '../../src/api/auth.ts';
import { silentLogger } from '../../src/lib/log.ts';
import { powerChanges } from '../../src/api/power-guard.ts';
import { loadSite } from '../../src/site/parse.ts';

const TOKENS = { operator: 'operator-token-0123456789', admin: 'admin-token-0123456789' };
const BMC = { driver: 'ipmi', address: '10.0.0.201', user: 'admin', passwordFile: '/etc/xsm/secrets/h1' };
const plain: HostLine[] = [
  { name: 'h1', memMiB: 1024 },
  { name: 'h2', memMiB: 1024 },
];
const powered: HostLine[] = [{ ...plain[0]!, power: BMC }, plain[1]!];
const VMS: VmLine[] = [{ name: 'a', host: 'h1', mem: 256 }];

async function withApi(t: import('ava').ExecutionContext) {
  const s = await startTestSite(plain);
  const api = await startApi({
    rt: s.rt,
    tokens: new TokenTable([
      { token: TOKENS.operator, role: 'operator', name: 'otto' },
      { token: TOKENS.admin, role: 'admin', name: 'ada' },
    ]),
    log: silentLogger,
  });
  t.teardown(async () => {
    await api.close();
    await s.close();
  });
  const submit = async (role: keyof typeof TOKENS, xml: string, base: number) => {
    const res = await fetch(`${api.url}/api/site?base=${base}&apply=0`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKENS[role]}`, 'content-type': 'application/xml' },
      body: xml,
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  return { s, submit };
}

test('an operator cannot add Power: 403 naming the element, nothing stored; an admin can', async (t) => {
  const { s, submit } = await withApi(t);
  const refused = await submit('operator', siteXml(powered, VMS), 0);
  t.is(refused.status, 403);
  t.is(refused.body.error.code, 'forbidden');
  t.is(
    refused.body.error.message,
    'only an admin may add, change or remove a <Power> entry: Host[name=h1]/Power (added); your token (otto) has operator; nothing was stored',
  );
  t.deepEqual(refused.body.error.details, { changes: [{ element: 'Host[name=h1]/Power', change: 'added' }] });
  t.is(await s.rt.sites.currentVersion(), 0);

  const stored = await submit('admin', siteXml(powered, VMS), 0);
  t.is(stored.status, 201, JSON.stringify(stored.body));
  t.is(await s.rt.sites.currentVersion(), 1);
});

test('an operator may change everything but Power; changing or removing it is refused', async (t) => {
  const { s, submit } = await withApi(t);
  t.is((await submit('admin', siteXml(powered, VMS), 0)).status, 201);
  // Same Power, other VMs: allowed.
  const more = await submit('operator', siteXml(powered, [...VMS, { name: 'b', host: 'h2', mem: 256 }]), 1);
  t.is(more.status, 201, JSON.stringify(more.body));
  const cases: [HostLine[], string][] = [
    [[{ ...plain[0]!, power: { ...BMC, address: '10.0.0.99' } }, plain[1]!], 'Host[name=h1]/Power (changed)'],
    [[{ ...plain[0]!, power: { ...BMC, passwordFile: '/etc/xsm/secrets/other' } }, plain[1]!], 'h1]/Power (changed)'],
    [plain, 'Host[name=h1]/Power (removed)'],
    [[plain[1]!], 'Host[name=h1]/Power (removed)'],
    [[...powered, { name: 'h3', memMiB: 512, power: { driver: 'manual' } }], 'Host[name=h3]/Power (added)'],
  ];
  for (const [hosts, named] of cases) {
    const r = await submit('operator', siteXml(hosts, hosts.some((h) => h.name === 'h1') ? VMS : []), 2);
    t.is(r.status, 403, named);
    t.true(r.body.error.message.includes(named), r.body.error.message);
  }
  t.is(await s.rt.sites.currentVersion(), 2, 'nothing stored');
});

test('powerChanges compares every Power attribute, including the TLS opt-out', (t) => {
  const load = (xml: string) => {
    const r = loadSite(xml, 't.xml', { power: false });
    if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('; '));
    return r.site;
  };
  const redfish = { driver: 'redfish', address: 'bmc1.example.org', user: 'root', passwordFile: '/etc/xsm/secrets/p' };
  const base = load(siteXml([{ name: 'h1', memMiB: 1024, power: redfish }], []));
  const insecure = load(siteXml([{ name: 'h1', memMiB: 1024, power: { ...redfish, insecureTls: true } }], []));
  t.deepEqual(powerChanges(base, base), []);
  t.deepEqual(powerChanges(base, insecure), [{ element: 'Host[name=h1]/Power', change: 'changed' }]);
  t.deepEqual(powerChanges(undefined, base), [{ element: 'Host[name=h1]/Power', change: 'added' }]);
});
