// POST /api/hosts/:name/drain and /undrain on a simulated site: a dry run shows the moves and stores nothing,
// an operator's drain empties the host onto the others without overloading any (as the simulated hosts
// observe it), undrain with return brings the VMs back, every call is audited, and bad input is refused.
import test from 'ava';
import { siteXml } from '../integration/fixtures.ts';
import { withApi } from './with-api.ts';

const HOSTS = [
  { name: 'h1', memMiB: 2048 },
  { name: 'h2', memMiB: 2048 },
  { name: 'h3', memMiB: 2048 },
];

test('drain empties a host within the others memory, undrain with return brings its VMs back, all audited', async (t) => {
  const { s, call } = await withApi(t, HOSTS);
  const v1 = await call('POST', '/api/site?base=0', 'admin', {
    xml: siteXml(HOSTS, [
      { name: 'a', host: 'h1', mem: 512 },
      { name: 'b', host: 'h1', mem: 512 },
      { name: 'c', host: 'h1', mem: 512 },
      { name: 'x', host: 'h2', mem: 1024 },
      { name: 'y', host: 'h3', mem: 512 },
    ]),
  });
  t.is(v1.status, 201, JSON.stringify(v1.body));
  await s.waitConverged(1);

  const dry = await call('POST', '/api/hosts/h1/drain', 'operator', { json: { dryRun: true } });
  t.is(dry.status, 200, JSON.stringify(dry.body));
  t.true(dry.body.dryRun);
  t.deepEqual(dry.body.blockers, []);
  t.is(dry.body.plan.actions.length, 3);
  t.is((await call('GET', '/api/site/versions', 'viewer')).body.versions.length, 1, 'a dry run stores nothing');

  const d = await call('POST', '/api/hosts/h1/drain', 'operator', { json: { reason: 'BIOS update' } });
  t.is(d.status, 202, JSON.stringify(d.body));
  t.deepEqual(d.body.moves.map((m: { vm: string }) => m.vm).sort(), ['a', 'b', 'c']);
  await s.waitConverged(d.body.version);
  const hosts = (await call('GET', '/api/hosts', 'viewer')).body.hosts as {
    name: string;
    maintenance: boolean;
    domains: number;
    freeMemMiB: number;
  }[];
  t.like(
    hosts.find((h) => h.name === 'h1'),
    { maintenance: true, domains: 0 },
  );
  for (const h of hosts) t.true(h.freeMemMiB >= 0, `${h.name} is not overloaded`);

  const u = await call('POST', '/api/hosts/h1/undrain', 'operator', { json: { return: true } });
  t.is(u.status, 202, JSON.stringify(u.body));
  await s.waitConverged(u.body.version);
  const vms = (await call('GET', '/api/vms', 'viewer')).body.vms as { name: string; observed: { host: string }[] }[];
  t.deepEqual(
    vms
      .filter((v) => v.observed[0]?.host === 'h1')
      .map((v) => v.name)
      .sort(),
    ['a', 'b', 'c'],
  );
  const after = (await call('GET', '/api/hosts', 'viewer')).body.hosts.find((h: { name: string }) => h.name === 'h1');
  t.false(after.maintenance);

  const audit = (await call('GET', '/api/audit', 'admin')).body.entries as {
    what: string;
    kind: string;
    version?: number;
  }[];
  t.true(audit.some((e) => e.what === 'POST /api/hosts/h1/drain' && e.kind === 'edit' && e.version === d.body.version));
  t.true(audit.some((e) => e.what === 'POST /api/hosts/h1/undrain' && e.version === u.body.version));
});

test('drain refuses a viewer, an unknown host, an unknown field, and a pinned VM with its reason', async (t) => {
  const { s, call } = await withApi(t, HOSTS);
  const v1 = await call('POST', '/api/site?base=0', 'admin', {
    xml: siteXml(HOSTS, [
      { name: 'a', host: 'h1', mem: 512, pinned: true },
      { name: 'b', host: 'h1', mem: 512 },
    ]),
  });
  t.is(v1.status, 201, JSON.stringify(v1.body));
  await s.waitConverged(1);
  t.is((await call('POST', '/api/hosts/h1/drain', 'viewer', { json: {} })).status, 403);
  t.is((await call('POST', '/api/hosts/h9/drain', 'operator', { json: {} })).status, 404);
  t.is((await call('POST', '/api/hosts/h1/drain', 'operator', { json: { force: true } })).status, 400);
  t.is((await call('POST', '/api/hosts/h1/undrain', 'operator', { json: { retrun: true } })).status, 400);
  const r = await call('POST', '/api/hosts/h1/drain', 'operator', { json: {} });
  t.is(r.status, 422, JSON.stringify(r.body));
  t.regex(r.body.error.message, /cannot drain h1: a: pinned to h1; nothing was stored/);
  t.is((await call('GET', '/api/site/versions', 'viewer')).body.versions.length, 1);
});

test('an operator drains a host only when the VMs it moves are in Sets it owns; each attempt is audited', async (t) => {
  const { s, call } = await withApi(t, HOSTS);
  const xml = siteXml(HOSTS, [
    { name: 'a', host: 'h1', mem: 512 },
    { name: 'b', host: 'h2', mem: 512 },
  ]);
  t.true(xml.includes('<Set name="test">'));
  const v1 = await call('POST', '/api/site?base=0', 'admin', {
    xml: xml.replace('<Set name="test">', '<Set name="test"><Owner>carol</Owner>'),
  });
  t.is(v1.status, 201, JSON.stringify(v1.body));
  await s.waitConverged(1);
  const r = await call('POST', '/api/hosts/h1/drain', 'operator', { json: {} });
  t.is(r.status, 403, JSON.stringify(r.body));
  t.regex(r.body.error.message, /Set\[name=test\]/);
  t.false(r.body.error.message.includes('Host[name=h1]'), 'the maintenance flag itself is the route’s to set');
  t.is((await call('GET', '/api/site/versions', 'viewer')).body.versions.length, 1);
  // A host with nothing of carol's on it: the operator may put it in maintenance.
  const empty = await call('POST', '/api/hosts/h3/drain', 'operator', { json: {} });
  t.is(empty.status, 202, JSON.stringify(empty.body));
  const audit = (await call('GET', '/api/audit', 'admin')).body.entries as { what: string; outcome: string }[];
  t.true(audit.some((e) => e.what === 'POST /api/hosts/h1/drain' && e.outcome === 'refused'));
  t.true(audit.some((e) => e.what === 'POST /api/hosts/h3/drain' && e.outcome === 'ok'));
});
