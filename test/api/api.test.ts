import test from 'ava';
import { startTestSite, type TestSite } from '../integration/harness.ts';
import { siteXml } from '../integration/fixtures.ts';
import { startApi, type RunningApi } from '../../src/api/listen.ts';
import { TokenTable } from '../../src/api/auth.ts';
import { silentLogger } from '../../src/lib/log.ts';

const HOSTS = [
  { name: 'h1', memMiB: 1024 },
  { name: 'h2', memMiB: 1024 },
];
const TOKENS = {
  viewer: 'viewer-token-0123456789',
  operator: 'operator-token-0123456789',
  admin: 'admin-token-0123456789',
};

async function withApi(t: import('ava').ExecutionContext): Promise<{
  s: TestSite;
  api: RunningApi;
  call: (
    method: string,
    path: string,
    role?: keyof typeof TOKENS | null,
    body?: { xml: string } | { json: unknown },
  ) => Promise<{ status: number; body: any }>;
}> {
  const s = await startTestSite(HOSTS);
  const tokens = new TokenTable([
    { token: TOKENS.viewer, role: 'viewer', name: 'vera' },
    { token: TOKENS.operator, role: 'operator', name: 'otto' },
    { token: TOKENS.admin, role: 'admin', name: 'ada' },
  ]);
  const api = await startApi({ rt: s.rt, tokens, log: silentLogger });
  t.teardown(async () => {
    await api.close();
    await s.close();
  });
  const call = async (
    method: string,
    path: string,
    role: keyof typeof TOKENS | null = 'operator',
    body?: { xml: string } | { json: unknown },
  ) => {
    const headers: Record<string, string> = {};
    if (role) headers.authorization = `Bearer ${TOKENS[role]}`;
    if (body && 'xml' in body) headers['content-type'] = 'application/xml';
    if (body && 'json' in body) headers['content-type'] = 'application/json';
    const res = await fetch(api.url + path, {
      method,
      headers,
      ...(body ? { body: 'xml' in body ? body.xml : JSON.stringify(body.json) } : {}),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* html or xml */
    }
    return { status: res.status, body: parsed as any };
  };
  return { s, api, call };
}

test('tokens and roles: viewers read, operators change, only admins open the dashboard', async (t) => {
  const { call } = await withApi(t);
  const xml = siteXml(HOSTS, [{ name: 'a', host: 'h1', mem: 256 }]);
  t.is((await call('GET', '/api/site', null)).status, 401);
  const bad = await call('GET', '/api/site', null);
  t.is(bad.body.error.code, 'unauthenticated');
  t.is((await call('GET', '/api/site', 'viewer')).status, 200);
  const forbidden = await call('POST', '/api/site?base=0', 'viewer', { xml });
  t.is(forbidden.status, 403);
  t.regex(forbidden.body.error.message, /needs the operator role; your token \(vera\) has viewer/);
  t.is((await call('GET', '/admin/queues', null)).status, 401);
  t.is((await call('GET', '/admin/queues', 'operator')).status, 403);
  const board = await call('GET', '/admin/queues', 'admin');
  t.is(board.status, 200);
  t.regex(String(board.body), /<html/i);
});

test('an unknown token is refused with a hint', async (t) => {
  const { api } = await withApi(t);
  const res = await fetch(`${api.url}/api/hosts`, { headers: { authorization: 'Bearer not-a-real-token-at-all' } });
  t.is(res.status, 401);
  const body = (await res.json()) as { error: { message: string; hint: string } };
  t.is(body.error.message, 'unknown token');
  t.regex(body.error.hint, /XSM_TOKENS/);
});

test('upload, plan and apply a site; hosts and VMs show desired and observed state', async (t) => {
  const { s, call } = await withApi(t);
  const xml = siteXml(HOSTS, [
    { name: 'a', host: 'h1', mem: 256 },
    { name: 'b', host: 'h2', mem: 256 },
  ]);
  const dry = await call('POST', '/api/site/plan', 'viewer', { xml });
  t.is(dry.status, 200);
  t.deepEqual(
    dry.body.plan.actions.map((a: { kind: string; vm: string }) => `${a.kind} ${a.vm}`),
    ['create a', 'create b'],
  );
  t.is(await s.rt.sites.currentVersion(), 0, 'a dry run stores nothing');
  const up = await call('POST', '/api/site?base=0&reason=first', 'admin', { xml });
  t.is(up.status, 201);
  t.is(up.body.version, 1);
  await s.waitConverged(1);
  const site = await call('GET', '/api/site', 'viewer');
  t.like(site.body, { version: 1, applied: 1, converged: 1, author: 'ada', reason: 'first' });
  const vms = await call('GET', '/api/vms', 'viewer');
  t.deepEqual(
    vms.body.vms.map((v: { name: string; observed: { host: string }[]; inSync: boolean }) => [
      v.name,
      v.observed.map((o) => o.host).join(),
      v.inSync,
    ]),
    [
      ['a', 'h1', true],
      ['b', 'h2', true],
    ],
  );
  const hosts = await call('GET', '/api/hosts', 'viewer');
  t.deepEqual(
    hosts.body.hosts.map((h: { name: string; domains: number }) => [h.name, h.domains]),
    [
      ['h1', 1],
      ['h2', 1],
    ],
  );
  const stored = await call('GET', '/api/site/versions/1', 'viewer');
  t.is(stored.body.xml, xml);
  t.is(stored.body.plan.actions.length, 2);
});

test('bad input is refused with file:line:col, a stale base with 409, and nothing is stored', async (t) => {
  const { s, call } = await withApi(t);
  const bad = siteXml(HOSTS, [{ name: 'a', host: 'h9', mem: 256 }]);
  const r = await call('POST', '/api/site?base=0&file=mine.xml', 'admin', { xml: bad });
  t.is(r.status, 422);
  t.is(r.body.error.code, 'invalid-site');
  t.regex(r.body.error.details[0].text, /^mine\.xml:10:32: VM\[name=a\]\/DOM0: DOM0 "h9" is no known host/);
  const hostile = `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><XSMConfig>&e;</XSMConfig>`;
  const h = await call('POST', '/api/site/validate', 'viewer', { xml: hostile });
  t.is(h.status, 422);
  t.regex(JSON.stringify(h.body.errors), /DOCTYPE/);
  t.notRegex(JSON.stringify(h.body), /root:/);
  const noBody = await call('POST', '/api/site?base=0', 'admin');
  t.is(noBody.status, 400);
  const tooBig = await call('POST', '/api/site?base=0', 'admin', {
    xml: siteXml(HOSTS, [{ name: 'a', host: 'h1', mem: 1536 }]),
  });
  t.is(tooBig.status, 422);
  t.regex(tooBig.body.error.details[0].text, /a needs 1536 MiB but host h1 has 1024 MiB free of 1024/);
  t.is(await s.rt.sites.currentVersion(), 0);
  t.is(
    (await call('POST', '/api/site?base=0', 'admin', { xml: siteXml(HOSTS, [{ name: 'a', host: 'h1', mem: 256 }]) }))
      .status,
    201,
  );
  const stale = await call('POST', '/api/site?base=0', 'admin', {
    xml: siteXml(HOSTS, [{ name: 'z', host: 'h1', mem: 256 }]),
  });
  t.is(stale.status, 409);
  t.is(stale.body.error.code, 'stale-version');
  t.deepEqual(stale.body.error.details, { base: 0, current: 1 });
  t.is(await s.rt.sites.currentVersion(), 1);
});

test('single VM operations write new versions and run: migrate, reconfigure, remove', async (t) => {
  const { s, call } = await withApi(t);
  await call('POST', '/api/site?base=0', 'admin', {
    xml: siteXml(HOSTS, [
      { name: 'a', host: 'h1', mem: 256 },
      { name: 'b', host: 'h1', mem: 256 },
    ]),
  });
  await s.waitConverged(1);
  const m = await call('POST', '/api/vms/a/migrate', 'operator', { json: { to: 'h2' } });
  t.is(m.status, 202);
  t.is(m.body.reason, 'migrate a from h1 to h2');
  t.deepEqual(
    m.body.plan.actions.map((a: { kind: string }) => a.kind),
    ['migrate'],
  );
  await s.waitConverged(m.body.version);
  t.deepEqual(await s.where(), { a: 'h2', b: 'h1' });
  const r = await call('POST', '/api/vms/b/reconfigure', 'operator', { json: { memMiB: 512, vcpus: 2 } });
  t.is(r.status, 202);
  await s.waitConverged(r.body.version);
  t.like(await s.hv.get('h1')!.find('b'), { memMiB: 512, vcpus: 2 });
  // Removing stops a running VM: refused without consent, nothing stored.
  const unconsented = await call('DELETE', '/api/vms/a', 'operator');
  t.is(unconsented.status, 409);
  t.is(unconsented.body.error.code, 'consent-required');
  t.deepEqual(unconsented.body.error.details.actions, [
    { id: 'remove:a', kind: 'remove', vm: 'a', disruption: 'a is shut down and destroyed on h2' },
  ]);
  t.is(await s.rt.sites.currentVersion(), r.body.version);
  const d = await call('DELETE', '/api/vms/a', 'operator', { json: { allowDisruption: true } });
  t.is(d.status, 202);
  await s.waitConverged(d.body.version);
  t.deepEqual(await s.where(), { b: 'h1' });
  const hist = await call('GET', '/api/site/versions', 'viewer');
  t.deepEqual(
    hist.body.versions.map((v: { reason: string }) => v.reason),
    ['remove a from h2', 'reconfigure b: MEM 256->512 MiB, VCPUS 1->2', 'migrate a from h1 to h2', 'upload'],
  );
  // Unknown names: 404 naming them, and no version written.
  const before = await s.rt.sites.currentVersion();
  const nohost = await call('POST', '/api/vms/b/migrate', 'operator', { json: { to: 'h7' } });
  t.is(nohost.status, 404);
  t.regex(nohost.body.error.message, /no host named "h7".*known hosts: h1, h2/);
  t.is((await call('POST', '/api/vms/nope/migrate', 'operator', { json: { to: 'h2' } })).status, 404);
  const nofit = await call('POST', '/api/vms/b/reconfigure', 'operator', { json: { memMiB: 4096 } });
  t.is(nofit.status, 422);
  t.is(await s.rt.sites.currentVersion(), before);
});

test('jobs are listed with their step, and a failed job can be retried once its cause is gone', async (t) => {
  const { s, call } = await withApi(t);
  // Something outside XSM fills h1: the create fails for good (no room), naming the host.
  await s.hv.get('h1')!.create({ name: 'intruder', text: 'name = "intruder"\nmemory = 900\nvcpus = 1\n' });
  await call('POST', '/api/site?base=0', 'admin', { xml: siteXml(HOSTS, [{ name: 'a', host: 'h1', mem: 512 }]) });
  let failed: { queue: string; id: string; failedReason: string }[] = [];
  const until = Date.now() + 10000;
  while (!failed.length && Date.now() < until) {
    failed = (await call('GET', '/api/jobs?state=failed', 'viewer')).body.jobs.filter(
      (j: { name: string }) => j.name === 'create',
    );
    await new Promise((r) => setTimeout(r, 50));
  }
  t.is(failed.length, 1);
  t.like(failed[0], { queue: 'host-h1', id: 'v1-create-a' });
  t.regex(failed[0]!.failedReason, /h1 has \d+ MiB free but a needs 512 MiB/);
  const one = await call('GET', '/api/jobs/host-h1/v1-create-a', 'viewer');
  t.like(one.body.progress, { workflow: 'create-vm', step: 'check-plan', index: 1, total: 6 });
  t.is(one.body.progress.journal, undefined, 'the journal is internal');
  t.is((await call('POST', '/api/jobs/host-h1/v1-create-a/retry', 'viewer')).status, 403);
  await s.hv.get('h1')!.destroy('intruder');
  t.is((await call('POST', '/api/jobs/host-h1/v1-create-a/retry', 'operator')).status, 202);
  const until2 = Date.now() + 10000;
  // Done when the job is (the domain shows up a step before the job completes).
  while (
    (await call('GET', '/api/jobs/host-h1/v1-create-a', 'viewer')).body.state !== 'completed' &&
    Date.now() < until2
  )
    await new Promise((r) => setTimeout(r, 50));
  t.deepEqual(await s.where(), { a: 'h1' });
  const again = await call('POST', '/api/jobs/host-h1/v1-create-a/retry', 'operator');
  t.is(again.status, 409);
  t.regex(again.body.error.message, /is completed, not failed/);
  t.is((await call('POST', '/api/jobs/host-h1/nope/retry', 'operator')).status, 404);
});

test('unknown endpoints and malformed JSON get JSON errors', async (t) => {
  const { api, call } = await withApi(t);
  const nf = await call('GET', '/api/nothing', 'viewer');
  t.is(nf.status, 404);
  t.is(nf.body.error.code, 'not-found');
  const res = await fetch(`${api.url}/api/vms/a/migrate`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKENS.operator}`, 'content-type': 'application/json' },
    body: '{"to":',
  });
  t.is(res.status, 400);
  t.truthy(((await res.json()) as { error: { message: string } }).error.message);
});
