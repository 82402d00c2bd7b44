// What the site console stands on, without a browser: the dry run of a VM operation (the plan shown before
// consent), the live job events, the data the page draws, and the simulated metrics the demo's graphs show.

import test from 'ava';
import { siteXml } from '../integration/fixtures.ts';
import { TOKENS, withApi } from './with-api.ts';
import { simulatedMetricsFeed } from '../../src/demo/simulated-metrics.ts';

const HOSTS = [
  { name: 'h1', memMiB: 2048, cpus: 4 },
  { name: 'h2', memMiB: 2048, cpus: 4 },
];
/** The two-host site the console tests use: VMs a and b (b's template cannot grow live) on h1, converged. */
async function site(t: import('ava').ExecutionContext) {
  const { s, api, call: apiCall } = await withApi(t, HOSTS);
  const v1 = await s.submitAndApply(
    siteXml(HOSTS, [
      { name: 'a', host: 'h1', mem: 256 },
      { name: 'b', host: 'h1', mem: 256, config: 'fixed' },
    ]),
  );
  await s.waitConverged(v1);
  const call = (method: string, path: string, role: keyof typeof TOKENS | null, json?: unknown) =>
    apiCall(method, path, role, json === undefined ? undefined : { json });
  return { s, api, call };
}

test('a dry run answers the plan a migration would get and stores nothing', async (t) => {
  const { s, call } = await site(t);
  t.is((await call('POST', '/api/vms/a/migrate', 'viewer', { to: 'h2', dryRun: true })).status, 403);
  const r = await call('POST', '/api/vms/a/migrate', 'operator', { to: 'h2', dryRun: true });
  t.is(r.status, 200);
  t.true(r.body.dryRun);
  t.deepEqual(
    r.body.plan.actions.map((a: { id: string; mode: string }) => [a.id, a.mode]),
    [['migrate:a', 'live']],
  );
  t.deepEqual(r.body.disruptive, []);
  t.regex(r.body.planHash, /^[0-9a-f]{64}$/);
  t.is(await s.rt.sites.currentVersion(), 1, 'nothing stored');
});

test('a dry run marks what would stop a VM, and the real request still needs consent for it', async (t) => {
  const { s, call } = await site(t);
  // The `fixed` template has no room to grow live: more memory is a restart.
  const preview = await call('POST', '/api/vms/b/reconfigure', 'operator', { memMiB: 512, dryRun: true });
  t.is(preview.status, 200);
  t.deepEqual(
    preview.body.disruptive.map((a: { id: string }) => a.id),
    ['reconfigure:b'],
  );
  t.regex(preview.body.disruptive[0].disruption, /b is shut down on h1 and started again with 512 MiB/);
  const refused = await call('POST', '/api/vms/b/reconfigure', 'operator', { memMiB: 512 });
  t.is(refused.status, 409);
  t.is(refused.body.error.code, 'consent-required');
  t.is(await s.rt.sites.currentVersion(), 1);
});

test('the console data says who looks, which VMs are in sync and the units of each graph', async (t) => {
  const { s, call } = await site(t);
  const feed = simulatedMetricsFeed(s.hv, s.rt.metrics, (h) => `10.77.0.${h.slice(1)}`);
  await feed.poll(Date.now() - 2000);
  await feed.poll();
  const d = (await call('GET', '/admin/site/data.json?points=5', 'viewer')).body;
  t.deepEqual(d.you, { name: 'vera', role: 'viewer' });
  t.is(d.converged, 1);
  t.deepEqual(
    d.vms.map((v: { name: string; inSync: boolean }) => [v.name, v.inSync]),
    [
      ['a', true],
      ['b', true],
    ],
  );
  const a = d.vms.find((v: { name: string }) => v.name === 'a');
  t.is(a.units.vm_cpu_pct, '%');
  t.is(a.units.vm_mem_used, 'MiB');
  t.is(a.graphs.vm_cpu_pct.length, 1, 'CPU use needs two samples: one point after two polls');
  t.is(a.graphs.vm_mem_used.length, 2);
  const h1 = d.hosts.find((h: { name: string }) => h.name === 'h1');
  t.is(h1.units.xen_free_mem, 'MiB');
  t.is(h1.graphs.vm_count.at(-1)[1], 2);
  t.true(h1.graphs.load_one.at(-1)[1] > 0);
});

test('live job events: a viewer gets the progress at once and again when a migration changes it', async (t) => {
  const { api, call } = await site(t);
  const refused = await fetch(`${api.url}/admin/site/events`, { headers: { accept: 'application/json' } });
  t.is(refused.status, 401);
  const ac = new AbortController();
  t.teardown(() => ac.abort());
  const res = await fetch(`${api.url}/admin/site/events`, {
    headers: { authorization: `Bearer ${TOKENS.viewer}` },
    signal: ac.signal,
  });
  t.regex(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  const nextProgress = async () => {
    for (;;) {
      const end = buffer.indexOf('\n\n');
      if (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.match(/^event: progress\ndata: (.*)$/m);
        if (data) return JSON.parse(data[1]!);
        continue;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error('the stream ended');
      buffer += value;
    }
  };
  const first = await nextProgress();
  t.is(first.version, 1);
  t.is(first.converged, 1);
  t.is(first.apply.state, 'converged');
  t.true(first.finished.some((j: { id: string }) => j.id === 'v1-create-a'));
  t.is((await call('POST', '/api/vms/a/migrate', 'operator', { to: 'h2' })).status, 202);
  for (;;) {
    const p = await nextProgress();
    if (p.converged === 2) {
      t.true(p.finished.some((j: { id: string; name: string }) => j.id === 'v2-migrate-a' && j.name === 'migrate'));
      break;
    }
  }
});
