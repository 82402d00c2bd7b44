// POST /api/hosts/upgrade and GET /api/hosts/upgrade/:id on a simulated site (the control worker's updater
// reboots simulated Dom0s): the dry run lists the hosts in order with what each drain moves and starts
// nothing; only an admin may start one; one runs at a time; it is followed to its end host by host.
import test from 'ava';
import { siteXml } from '../integration/fixtures.ts';
import { eventually, withApi } from './with-api.ts';

const HOSTS = [
  { name: 'h1', memMiB: 2048 },
  { name: 'h2', memMiB: 2048 },
  { name: 'h3', memMiB: 2048 },
];

test('a rolling upgrade: plan first, admin only, one at a time, every host done and its VMs back', async (t) => {
  const { s, call } = await withApi(t, HOSTS);
  const v1 = await call('POST', '/api/site?base=0', 'admin', {
    xml: siteXml(HOSTS, [
      { name: 'a', host: 'h1', mem: 512 },
      { name: 'b', host: 'h2', mem: 512 },
      { name: 'c', host: 'h3', mem: 1024 },
    ]),
  });
  t.is(v1.status, 201, JSON.stringify(v1.body));
  await s.waitConverged(1);

  const dry = await call('POST', '/api/hosts/upgrade', 'admin', {
    json: { image: 'dom0:2', hosts: ['h3', 'h1'], dryRun: true },
  });
  t.is(dry.status, 200, JSON.stringify(dry.body));
  t.is(dry.body.plan.method, 'simulated');
  t.deepEqual(
    dry.body.plan.hosts.map((h: { host: string; action: string }) => [h.host, h.action]),
    [
      ['h3', 'upgrade'],
      ['h1', 'upgrade'],
    ],
  );
  t.deepEqual(
    dry.body.plan.hosts[0].moves.map((m: { vm: string }) => m.vm),
    ['c'],
  );
  t.is((await call('GET', '/api/site/versions', 'viewer')).body.versions.length, 1, 'a dry run stores nothing');

  t.is((await call('POST', '/api/hosts/upgrade', 'operator', { json: { image: 'dom0:2' } })).status, 403);
  const bad = await call('POST', '/api/hosts/upgrade', 'admin', { json: { image: 'dom0:two' } });
  t.is(bad.status, 400);
  const unknown = await call('POST', '/api/hosts/upgrade', 'admin', { json: { image: 'dom0', hosts: ['h9'] } });
  t.is(unknown.status, 404);
  t.regex(unknown.body.error.message, /h9/);

  const started = await call('POST', '/api/hosts/upgrade', 'admin', { json: { image: 'dom0:2' } });
  t.is(started.status, 202, JSON.stringify(started.body));
  const again = await call('POST', '/api/hosts/upgrade', 'admin', { json: { image: 'dom0:2' } });
  t.is(again.status, 409);
  t.is(again.body.error.code, 'upgrade-running');

  const done = await eventually(
    async () => {
      const v = await call('GET', `/api/hosts/upgrade/${started.body.id}`, 'viewer');
      return v.body.state === 'completed' || v.body.state === 'failed' ? v.body : undefined;
    },
    60_000,
    'the upgrade to end',
  );
  t.is(done.state, 'completed', done.summary);
  t.deepEqual(
    done.hosts.map((h: { state: string }) => h.state),
    ['done', 'done', 'done'],
  );
  t.deepEqual(await s.where(), { a: 'h1', b: 'h2', c: 'h3' });
  t.is((await call('GET', '/api/hosts/upgrade/upgrade-nothere', 'viewer')).status, 404);

  // Run again: every host is on the image already.
  const noop = await call('POST', '/api/hosts/upgrade', 'admin', { json: { image: 'dom0:2', dryRun: true } });
  t.deepEqual(
    noop.body.plan.hosts.map((h: { action: string }) => h.action),
    ['skip', 'skip', 'skip'],
  );
  const audit = (await call('GET', '/api/audit?limit=50', 'admin')).body.entries as { path?: string }[];
  t.true(JSON.stringify(audit).includes('/api/hosts/upgrade'), 'the upgrade request is in the audit log');
});
