// The API's contract for automation: ISO-8601 times, cursor pagination of the version history and the audit
// log, a per-action status of a version, and the OpenAPI document as a page.
import test from 'ava';
import { siteXml } from '../integration/fixtures.ts';
import { AuditStore } from '../../src/state/audit-store.ts';
import { withApi } from './with-api.ts';

const HOSTS = [{ name: 'h1', memMiB: 2048 }];
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

test('times are ISO-8601; the version history and the audit log page by cursor', async (t) => {
  const { s, call } = await withApi(t, HOSTS);
  for (let i = 1; i <= 5; i++)
    await s.submitAndApply(siteXml(HOSTS, [{ name: 'a', host: 'h1', mem: 128 + i * 16 }]), i - 1, `v${i}`, {
      apply: i === 5,
    });
  await s.waitConverged(5);
  const site = await call('GET', '/api/site', 'viewer');
  t.regex(site.body.time, ISO);
  const jobs = await call('GET', '/api/jobs', 'viewer');
  t.true(jobs.body.jobs.length > 0);
  for (const j of jobs.body.jobs) t.regex(j.createdAt, ISO);

  const page1 = await call('GET', '/api/site/versions?limit=2', 'viewer');
  t.deepEqual(
    page1.body.versions.map((v: { version: number }) => v.version),
    [5, 4],
  );
  t.regex(page1.body.versions[0].time, ISO);
  t.is(page1.body.next, '4');
  const page2 = await call('GET', `/api/site/versions?limit=2&cursor=${page1.body.next}`, 'viewer');
  t.deepEqual(
    page2.body.versions.map((v: { version: number }) => v.version),
    [3, 2],
  );
  const page3 = await call('GET', `/api/site/versions?limit=2&cursor=${page2.body.next}`, 'viewer');
  t.deepEqual(
    page3.body.versions.map((v: { version: number }) => v.version),
    [1],
  );
  t.false('next' in page3.body, 'the last page says so by having no next');

  const audit = new AuditStore(s.rt.redis, s.rt.config.prefix);
  for (const user of ['u1', 'u2', 'u3'])
    await audit.append({ user, role: 'operator', from: 'test', kind: 'edit', what: 'x', outcome: 'ok' });
  const a1 = await call('GET', '/api/audit?limit=2', 'viewer');
  t.deepEqual(
    a1.body.entries.map((e: { user: string }) => e.user),
    ['u3', 'u2'],
  );
  const a2 = await call('GET', `/api/audit?limit=2&cursor=${a1.body.next}`, 'viewer');
  t.deepEqual(
    a2.body.entries.map((e: { user: string }) => e.user),
    ['u1'],
  );
  t.is((await call('GET', '/api/audit?cursor=yesterday', 'viewer')).status, 400);
});

test('GET /api/site/versions/:v/status says per action where it is, for automation to poll', async (t) => {
  const { s, call } = await withApi(t, HOSTS);
  const v = await s.submitAndApply(
    siteXml(HOSTS, [
      { name: 'a', host: 'h1', mem: 256 },
      { name: 'b', host: 'h1', mem: 256 },
    ]),
  );
  await s.waitConverged(v);
  const r = await call('GET', `/api/site/versions/${v}/status`, 'viewer');
  t.is(r.status, 200);
  t.like(r.body, { version: v, state: 'converged' });
  t.deepEqual(
    r.body.actions.map((a: { id: string; status: string; job: { queue: string } }) => [a.id, a.status, a.job.queue]),
    [
      ['create:a', 'done', 'host-h1'],
      ['create:b', 'done', 'host-h1'],
    ],
  );
  t.is((await call('GET', '/api/site/versions/99/status', 'viewer')).status, 404);
});

test('GET /api/docs is the OpenAPI document as a page with no script', async (t) => {
  const { api } = await withApi(t, HOSTS);
  const r = await fetch(`${api.url}/api/docs`);
  t.is(r.status, 200);
  const html = await r.text();
  t.regex(html, /<code>\/api\/vms\/\{name\}\/migrate<\/code>/);
  t.regex(html, /role <b>operator<\/b>/);
  t.notRegex(html, /<script/);
});
