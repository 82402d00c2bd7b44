// What an operator can trust through the API: the plan shown is the plan run; identical content stores
// nothing; nothing stops a running VM without consent, and capacity on undeclared hosts is checked; one
// host's failure does not stop other hosts' later work; a superseded version's jobs are not retried.
import test from 'ava';
import { readFile } from 'node:fs/promises';
import { siteXml } from '../integration/fixtures.ts';
import { eventually, withApi } from './with-api.ts';

const TWO = [
  { name: 'h1', memMiB: 1024 },
  { name: 'h2', memMiB: 1024 },
];
const THREE = [...TWO, { name: 'h3', memMiB: 1024 }];
// The paper's four Dom0s as the demo runs them: 2 GiB each, 512 MiB for Dom0, so 1536 MiB for guests.
const PAPER = ['192.168.5.101', '192.168.5.102', '192.168.5.103', '192.168.5.104'].map((name) => ({
  name,
  memMiB: 1536,
  cpus: 4,
}));
const paperXml = () => readFile(new URL('../../src/demo/paper-site.xml', import.meta.url), 'utf8');

test('the plan the API shows is the plan that runs, even when the world changed before it ran', async (t) => {
  const { s, call } = await withApi(t, TWO);
  await call('POST', '/api/site?base=0', 'admin', {
    xml: siteXml(TWO, [
      { name: 'a', host: 'h1', mem: 256 },
      { name: 'b', host: 'h2', mem: 256 },
    ]),
  });
  await s.waitConverged(1);
  const shown = await call('POST', '/api/site?base=1&apply=0', 'operator', {
    xml: siteXml(TWO, [
      { name: 'a', host: 'h1', mem: 512 },
      { name: 'b', host: 'h2', mem: 256 },
    ]),
  });
  t.is(shown.status, 201);
  t.deepEqual(
    shown.body.plan.actions.map((a: { id: string }) => a.id),
    ['reconfigure:a'],
  );
  // b dies by hand before the apply: planning again would also create b. The shown plan does not.
  await s.hv.get('h2')!.destroy('b');
  t.is((await call('POST', '/api/site/versions/2/apply', 'operator')).status, 202);
  await s.waitConverged(2);
  t.deepEqual(await s.where(), { a: 'h1' });
  const stored = await call('GET', '/api/site/versions/2', 'viewer');
  t.deepEqual(stored.body.plan, shown.body.plan);
  t.is(stored.body.planHash, shown.body.planHash);
  t.regex(shown.body.planHash, /^[0-9a-f]{64}$/);
});

test('a saved plan runs only if planning again gives the same plan; otherwise 409 says why', async (t) => {
  const { s, call } = await withApi(t, TWO);
  await call('POST', '/api/site?base=0', 'admin', { xml: siteXml(TWO, [{ name: 'a', host: 'h1', mem: 256 }]) });
  await s.waitConverged(1);
  const next = siteXml(TWO, [{ name: 'a', host: 'h2', mem: 256 }]);
  const saved = await call('POST', '/api/site/plan', 'viewer', { xml: next });
  t.is(saved.status, 200);
  t.like(saved.body, { base: 1 });
  t.regex(saved.body.observedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'ISO-8601');
  t.regex(saved.body.xmlHash, /^[0-9a-f]{64}$/);
  // The world moves: a is moved by hand, so the same file now plans nothing.
  await s.hv.get('h1')!.migrate('a', { host: 'h2', address: '10.77.0.2' });
  // Both agents' reports must show it (the planner goes by them): h2 has a, h1 no longer has it.
  const on = async (h: string) => (await s.rt.observed.host(h))?.domains.some((d) => d.name === 'a');
  await eventually(async () => (await on('h2')) && !(await on('h1')));
  const drifted = await call('POST', `/api/site?base=1&planHash=${saved.body.planHash}`, 'operator', { xml: next });
  t.is(drifted.status, 409);
  t.is(drifted.body.error.code, 'stale-plan');
  t.is(
    drifted.body.error.message,
    'plan is stale: the site changed since it was planned; the plan would now be: nothing to do',
  );
  t.is(await s.rt.sites.currentVersion(), 1, 'nothing stored');
  // Planned again and saved again: that plan is stored and run as it is.
  const again = await call('POST', '/api/site/plan', 'viewer', { xml: next });
  const ok = await call('POST', `/api/site?base=1&planHash=${again.body.planHash}`, 'operator', { xml: next });
  t.is(ok.status, 201);
  t.is(ok.body.planHash, again.body.planHash);
  // A saved plan whose base moved is refused before anything is planned.
  const late = await call('POST', `/api/site?base=1&planHash=${again.body.planHash}`, 'operator', {
    xml: siteXml(TWO, [{ name: 'a', host: 'h2', mem: 300 }]),
  });
  t.is(late.status, 409);
  t.is(late.body.error.message, 'plan is stale: base version moved from 1 to 2');
});

test('re-submitting identical content stores nothing and says "no changes", also when laid out differently', async (t) => {
  const { s, call } = await withApi(t, TWO);
  const xml = siteXml(TWO, [{ name: 'a', host: 'h1', mem: 256 }]);
  t.is((await call('POST', '/api/site?base=0', 'admin', { xml })).status, 201);
  await s.waitConverged(1);
  const same = await call('POST', '/api/site?base=1', 'operator', { xml });
  t.is(same.status, 200);
  t.deepEqual(same.body, { unchanged: true, version: 1, message: 'no changes' });
  // As `xsm site get` writes it (a base mark), reindented, with a comment, on an old base: still no change.
  const marked = `<?xml version="1.0"?>\n<!-- xsm:base-version 1 -->\n<!-- my comment -->\n${xml.replace(/\n {4}/g, '\n\t')}`;
  const again = await call('POST', '/api/site?base=0', 'admin', { xml: marked });
  t.is(again.status, 200);
  t.is(again.body.message, 'no changes');
  t.is(await s.rt.sites.currentVersion(), 1);
  t.is((await s.rt.sites.history()).length, 1);
});

test('concurrent identical submits store one version; the other is told there is nothing to change', async (t) => {
  const { s, call } = await withApi(t, TWO);
  const xml = siteXml(TWO, [{ name: 'a', host: 'h1', mem: 256 }]);
  // Two at once: one identity may have two site files parsing at a time (XSM_SITE_PARSES_PER_TOKEN).
  const answers = await Promise.all([1, 2].map(() => call('POST', '/api/site?base=0', 'admin', { xml })));
  t.deepEqual(answers.map((a) => a.status).sort(), [200, 201]);
  t.is(await s.rt.sites.currentVersion(), 1);
});

test('drift from an identical version is reported, and ?repair=1 stores a version whose plan repairs it', async (t) => {
  const { s, call } = await withApi(t, TWO);
  const xml = siteXml(TWO, [{ name: 'a', host: 'h1', mem: 256 }]);
  await call('POST', '/api/site?base=0', 'admin', { xml });
  await s.waitConverged(1);
  await s.hv.get('h1')!.destroy('a');
  await eventually(async () => !(await s.rt.observed.host('h1'))?.domains.length);
  const same = await call('POST', '/api/site?base=1', 'operator', { xml });
  t.is(same.status, 200);
  t.true(same.body.unchanged);
  t.regex(same.body.drift.message, /what runs differs from version 1 \(create:a\); .*repair=1/);
  const repair = await call('POST', '/api/site?base=1&repair=1', 'operator', { xml });
  t.is(repair.status, 201);
  t.deepEqual(
    repair.body.plan.actions.map((a: { id: string }) => a.id),
    ['create:a'],
  );
  await s.waitConverged(repair.body.version);
  t.deepEqual(await s.where(), { a: 'h1' });
});

test('a resize beyond an undeclared host is refused at plan time, naming the host and what is missing', async (t) => {
  const { s, call } = await withApi(t, PAPER);
  t.is((await call('POST', '/api/site?base=0', 'admin', { xml: await paperXml() })).status, 201);
  await s.waitConverged(1);
  const r = await call('POST', '/api/vms/vm3/reconfigure', 'operator', { json: { memMiB: 9999 } });
  t.is(r.status, 422);
  t.is(r.body.error.code, 'impossible-plan');
  t.regex(
    r.body.error.message,
    /vm3 to grow from 96 to 9999 MiB needs 9903 MiB but host 192\.168\.5\.103 has 1440 MiB free of 1536 \(as its agent reports\) \(8463 MiB missing\)/,
  );
  t.is(await s.rt.sites.currentVersion(), 1, 'nothing stored');
  t.like(await s.hv.get('192.168.5.103')!.find('vm3'), { state: 'running', memMiB: 96 });
});

test('a resize that restarts a VM needs consent: refused with the disruption listed, run when allowed', async (t) => {
  const { s, call } = await withApi(t, PAPER);
  await call('POST', '/api/site?base=0', 'admin', { xml: await paperXml() });
  await s.waitConverged(1);
  // The paper's templates set no maxmem: growing vm3 needs a new domain.
  const refused = await call('POST', '/api/vms/vm3/reconfigure', 'operator', { json: { memMiB: 512 } });
  t.is(refused.status, 409);
  t.is(refused.body.error.code, 'consent-required');
  t.deepEqual(refused.body.error.details.actions, [
    {
      id: 'reconfigure:vm3',
      kind: 'reconfigure',
      vm: 'vm3',
      disruption: 'vm3 is shut down on 192.168.5.103 and started again with 512 MiB, 4 vCPUs',
    },
  ]);
  t.regex(refused.body.error.hint, /allowDisruption/);
  t.is(await s.rt.sites.currentVersion(), 1, 'nothing stored');
  const allowed = await call('POST', '/api/vms/vm3/reconfigure', 'operator', {
    json: { memMiB: 512, allowDisruption: true },
  });
  t.is(allowed.status, 202);
  await s.waitConverged(allowed.body.version);
  t.like(await s.hv.get('192.168.5.103')!.find('vm3'), { state: 'running', memMiB: 512 });
  // A site file with the same kind of change needs ?allowDisruption=1 likewise.
  const file = (await paperXml()).replace(/(<VM name="vm2"[\s\S]*?<MEM>)96(<\/MEM>)/, '$1256$2');
  const base = allowed.body.version;
  t.is((await call('POST', `/api/site?base=${base}`, 'operator', { xml: file })).status, 409);
  t.is((await call('POST', `/api/site?base=${base}&allowDisruption=1`, 'operator', { xml: file })).status, 201);
});

test('a failed action on one host does not stop another host in a later wave; the outcome names what did not run', async (t) => {
  const { s, call } = await withApi(t, THREE);
  await call('POST', '/api/site?base=0', 'admin', {
    xml: siteXml(THREE, [
      { name: 'c', host: 'h1', mem: 256 },
      { name: 'big', host: 'h2', mem: 768 },
      { name: 'mover', host: 'h3', mem: 512 },
    ]),
  });
  await s.waitConverged(1);
  await s.hv.get('h1')!.create({ name: 'intruder', text: 'name = "intruder"\nmemory = 600\nvcpus = 1\n' });
  // Removing big needs consent; d cannot start on h1 (the intruder); mover's move waits for big's room.
  const v2 = await call('POST', '/api/site?base=1&allowDisruption=1', 'operator', {
    xml: siteXml(THREE, [
      { name: 'c', host: 'h1', mem: 256 },
      { name: 'd', host: 'h1', mem: 512 },
      { name: 'mover', host: 'h2', mem: 512 },
    ]),
  });
  t.is(v2.status, 201);
  await eventually(async () => (await s.where()).mover === 'h2', 20000, 'mover moving to h2');
  const outcome = await eventually(async () => {
    const o = await call('GET', '/api/site/versions/2/outcome', 'viewer');
    return o.body.state === 'partially-failed' ? o.body : undefined;
  });
  t.deepEqual(
    outcome.actions.map((a: { id: string; outcome: string }) => `${a.id} ${a.outcome}`),
    ['remove:big done', 'create:d failed', 'migrate:mover done'],
  );
  t.regex(outcome.summary, /1 failed \(create:d\)/);
});

test('retrying a job of a superseded version is refused with the reason and what to do', async (t) => {
  const { s, call } = await withApi(t, TWO);
  await s.hv.get('h1')!.create({ name: 'intruder', text: 'name = "intruder"\nmemory = 900\nvcpus = 1\n' });
  await call('POST', '/api/site?base=0', 'admin', { xml: siteXml(TWO, [{ name: 'a', host: 'h1', mem: 512 }]) });
  await eventually(async () => (await s.rt.hostQueue('h1').getJobState('v1-create-a')) === 'failed');
  // The operator moves on: version 2 places a elsewhere.
  t.is(
    (await call('POST', '/api/site?base=1', 'operator', { xml: siteXml(TWO, [{ name: 'a', host: 'h2', mem: 512 }]) }))
      .status,
    201,
  );
  const retry = await call('POST', '/api/jobs/host-h1/v1-create-a/retry', 'operator');
  t.is(retry.status, 409);
  t.is(retry.body.error.code, 'superseded');
  t.is(retry.body.error.message, 'version 1 was superseded by version 2; apply the current version instead');
  t.is(await s.rt.hostQueue('h1').getJobState('v1-create-a'), 'failed', 'not queued again');
});
