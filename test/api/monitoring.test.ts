import test from 'ava';
import { spawnSync } from 'node:child_process';
import { startTestSite } from '../integration/harness.ts';
import { siteXml } from '../integration/fixtures.ts';
import { startApi } from '../../src/api/listen.ts';
import { TokenTable } from '../../src/api/auth.ts';
import { silentLogger } from '../../src/lib/log.ts';
import { MetricsStore } from '../../src/state/metrics-store.ts';
import { ManualPower } from '../../src/drivers/power/manual.ts';
import { main } from '../../src/cli/main.ts';

const HOSTS = [
  { name: 'h1', memMiB: 2048, cpus: 4 },
  { name: 'h2', memMiB: 2048, cpus: 4 },
];
const TOKENS = {
  viewer: 'mon-viewer-token-0123456789',
  operator: 'mon-operator-token-0123456789',
  admin: 'mon-admin-token-0123456789',
};

async function site(t: import('ava').ExecutionContext) {
  const s = await startTestSite(HOSTS);
  const api = await startApi({
    rt: s.rt,
    tokens: new TokenTable([
      { token: TOKENS.viewer, role: 'viewer', name: 'vera' },
      { token: TOKENS.operator, role: 'operator', name: 'otto' },
      { token: TOKENS.admin, role: 'admin', name: 'ada' },
    ]),
    log: silentLogger,
  });
  t.teardown(async () => {
    await api.close();
    await s.close();
  });
  const call = async (method: string, path: string, role: keyof typeof TOKENS | null, json?: unknown) => {
    const headers: Record<string, string> = {};
    if (role) headers.authorization = `Bearer ${TOKENS[role]}`;
    if (json !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(api.url + path, {
      method,
      headers,
      ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
    });
    const text = await res.text();
    let body: any = text;
    try {
      body = JSON.parse(text);
    } catch {
      /* text */
    }
    return { status: res.status, body, type: res.headers.get('content-type') ?? '' };
  };
  // Every VM on h1 and busy: the rebalancer has something to do.
  const vms = ['a', 'b', 'c', 'd'].map((name) => ({ name, host: 'h1', mem: 256, vcpus: 1 }));
  const v1 = await s.submitAndApply(siteXml(HOSTS, vms));
  await s.waitConverged(v1);
  const metrics = new MetricsStore(s.rt.redis, s.rt.config.prefix);
  const now = Date.now();
  for (let i = 0; i < 5; i++) {
    await metrics.store(
      [
        ...vms.map((v) => ({
          name: v.name,
          ip: v.name,
          reported: Math.floor(now / 1000),
          tn: 0,
          tmax: 60,
          up: true,
          metrics: { vm_cpu_pct: { name: 'vm_cpu_pct', value: 80 + i, type: 'float', units: '%', tn: 0, tmax: 60 } },
        })),
        {
          name: 'h1',
          ip: '10.77.0.1',
          reported: Math.floor(now / 1000),
          tn: 0,
          tmax: 20,
          up: true,
          metrics: { load_one: { name: 'load_one', value: 3 + i / 10, type: 'float', units: '', tn: 0, tmax: 70 } },
        },
      ],
      now - (5 - i) * 15000,
    );
  }
  return { s, api, call, v1 };
}

test('GET /metrics answers in Prometheus text format behind a viewer token', async (t) => {
  const { call, v1 } = await site(t);
  t.is((await call('GET', '/metrics', null)).status, 401);
  // Workers record what happened right after each job ends, without waiting for it: scrape until it is in.
  let r = await call('GET', '/metrics', 'viewer');
  for (let i = 0; i < 50 && !/xsm_converge_duration_seconds_count 1\n[\s\S]*$/.test(String(r.body)); i++) {
    await new Promise((res) => setTimeout(res, 100));
    r = await call('GET', '/metrics', 'viewer');
  }
  for (
    let i = 0;
    i < 50 && !String(r.body).includes('xsm_jobs_finished_total{queue_kind="host",job="create",outcome="completed"} 4');
    i++
  ) {
    await new Promise((res) => setTimeout(res, 100));
    r = await call('GET', '/metrics', 'viewer');
  }
  t.is(r.status, 200);
  t.regex(r.type, /^text\/plain/);
  const text = String(r.body);
  t.true(text.includes(`xsm_site_version{kind="current"} ${v1}`));
  t.true(text.includes(`xsm_site_version{kind="converged"} ${v1}`));
  t.regex(text, /xsm_host_domains\{host="h1"\} 4\n/);
  t.regex(text, /xsm_host_domains\{host="h2"\} 0\n/);
  t.regex(text, /xsm_host_health\{host="h1",state="healthy"\} 1/);
  // Base units; one family per Ganglia metric; a gauge of whether each VM is where the site file says.
  t.regex(text, /xsm_vm_memory_bytes\{vm="a",host="h1"\} 268435456\n/);
  t.regex(text, /xsm_host_memory_total_bytes\{host="h1"\} \d+/);
  t.notRegex(text, /_mib\b/);
  t.regex(text, /# TYPE xsm_ganglia_vm_cpu_pct gauge\nxsm_ganglia_vm_cpu_pct\{host="a"\} 84\n/);
  t.regex(text, /xsm_vm_in_sync\{vm="a"\} 1\n/);
  t.regex(text, /xsm_jobs\{queue="host-h1",state="completed"\} 4/);
  // What happened: counters and histograms, recorded by the workers that did it, read here from Redis.
  t.regex(text, /# TYPE xsm_jobs_finished_total counter\n/);
  t.regex(text, /xsm_jobs_finished_total\{queue_kind="host",job="create",outcome="completed"\} 4\n/);
  t.regex(text, /# TYPE xsm_job_duration_seconds histogram\n/);
  t.regex(text, /xsm_job_duration_seconds_bucket\{queue_kind="host",job="create",le="\+Inf"\} 4\n/);
  t.regex(text, /xsm_job_duration_seconds_count\{queue_kind="host",job="create"\} 4\n/);
  t.regex(text, /xsm_step_duration_seconds_count\{workflow="create-vm",step="xl-create"\} 4\n/);
  t.regex(text, /xsm_plan_duration_seconds_count 1\n/);
  t.regex(text, /xsm_converge_duration_seconds_count 1\n/);
  // Buckets are cumulative: every bucket count is at most the next one's.
  const buckets = [
    ...text.matchAll(/xsm_job_duration_seconds_bucket\{queue_kind="host",job="create",le="[^"]+"\} (\d+)/g),
  ].map((m) => Number(m[1]));
  t.deepEqual(
    buckets,
    [...buckets].sort((a, b) => a - b),
  );
  // Prometheus's own checker, where Debian's prometheus package installed it (CI installs it).
  const promtool = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (promtool.error) t.log('promtool not installed: the exposition format was not checked by it');
  else t.is(promtool.status, 0, `${promtool.stdout}${promtool.stderr}`);
});

test('POST /api/rebalance: operators plan (dry run) and apply; bad input is refused with the field named', async (t) => {
  const { s, call, v1 } = await site(t);
  t.is((await call('POST', '/api/rebalance', 'viewer', { dryRun: true })).status, 403);
  const bad = await call('POST', '/api/rebalance', 'operator', { mode: 'chaos' });
  t.is(bad.status, 400);
  t.regex(bad.body.error.message, /body mode: expected one of "performance", "density", got "chaos"/);
  t.deepEqual(bad.body.error.details.issues, [
    { in: 'body', field: 'mode', expected: 'one of "performance", "density"', got: '"chaos"' },
  ]);
  const dry = await call('POST', '/api/rebalance', 'operator', { dryRun: true });
  t.is(dry.status, 200);
  t.true(
    dry.body.moves.length >= 1 &&
      dry.body.moves.every((m: { from: string; to: string }) => m.from === 'h1' && m.to === 'h2'),
  );
  t.is(await s.rt.sites.currentVersion(), v1);
  const real = await call('POST', '/api/rebalance', 'operator', { maxMoves: 1 });
  t.is(real.status, 202);
  t.is(real.body.version, v1 + 1);
  t.is(real.body.moves.length, 1);
  await s.waitConverged(v1 + 1);
  t.is((await s.where())[real.body.moves[0].vm], 'h2');
});

test('the rebalancing schedule is set by admins and read by anyone', async (t) => {
  const { call } = await site(t);
  t.deepEqual((await call('GET', '/api/rebalance/schedule', 'viewer')).body, { everyMinutes: 0 });
  t.is((await call('PUT', '/api/rebalance/schedule', 'operator', { everyMinutes: 15 })).status, 403);
  t.is((await call('PUT', '/api/rebalance/schedule', 'admin', { everyMinutes: -1 })).status, 400);
  t.is((await call('PUT', '/api/rebalance/schedule', 'admin', { everyMinutes: 15, mode: 'density' })).status, 200);
  const got = (await call('GET', '/api/rebalance/schedule', 'viewer')).body;
  t.is(got.everyMinutes, 15);
  t.is(got.request.mode, 'density');
  t.is((await call('PUT', '/api/rebalance/schedule', 'admin', { everyMinutes: 0 })).status, 200);
  t.deepEqual((await call('GET', '/api/rebalance/schedule', 'viewer')).body, { everyMinutes: 0 });
});

test('the site dashboard serves hosts and VMs with their Ganglia history', async (t) => {
  const { call } = await site(t);
  t.is((await call('GET', '/admin/site', null)).status, 401);
  const page = await call('GET', '/admin/site', 'viewer');
  t.is(page.status, 200);
  t.regex(String(page.body), /<title>XSM site<\/title>/);
  t.notRegex(String(page.body), /<script[^>]+src=/, 'no external scripts');
  const data = (await call('GET', '/admin/site/data.json?points=3', 'viewer')).body;
  const h1 = data.hosts.find((h: { name: string }) => h.name === 'h1');
  t.is(h1.health, 'healthy');
  t.deepEqual(h1.vms.sort(), ['a', 'b', 'c', 'd']);
  // Oldest first, the newest `points` values.
  t.deepEqual(
    h1.graphs.load_one.map((p: [number, number]) => p[1]),
    [3.2, 3.3, 3.4],
  );
  const a = data.vms.find((v: { name: string }) => v.name === 'a');
  t.deepEqual(a.observedHosts, ['h1']);
  t.deepEqual(
    a.graphs.vm_cpu_pct.map((p: [number, number]) => p[1]),
    [82, 83, 84],
  );
});

test('manual power: an operator confirms what XSM asked, and nothing else', async (t) => {
  const { s, call } = await site(t);
  const none = await call('POST', '/api/hosts/h2/power/confirm', 'operator');
  t.is(none.status, 409);
  t.regex(none.body.error.message, /no manual power request is pending for host h2/);
  const power = new ManualPower(s.rt.manualPower, 'h2', { pollMs: 20, timeoutMs: 10000 });
  const off = power.off();
  await new Promise((r) => setTimeout(r, 100));
  t.is(await power.status(), 'unknown', 'not off before the operator says so');
  t.is((await call('POST', '/api/hosts/h2/power/confirm', 'viewer')).status, 403);
  t.is((await call('POST', '/api/hosts/h2/power/confirm', 'operator')).status, 200);
  await off;
  t.is(await power.status(), 'off');
});

test.serial('xsm rebalance --dry-run and xsm host health through the API', async (t) => {
  const { api } = await site(t);
  process.env.XSM_API = api.url;
  process.env.XSM_TOKEN = TOKENS.operator;
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l) };
  t.is(await main(['rebalance', '--dry-run'], io), 0, err.join('\n'));
  t.regex(out.join('\n'), /imbalance \d\.\d{3} -> \d\.\d{3} with \d+ live migrations?/);
  t.regex(out.join('\n'), /VM\s+FROM\s+TO\n[- ]+\n[a-d]\s+h1\s+h2/);
  t.regex(out.join('\n'), /dry run: nothing written/);
  out.length = 0;
  t.is(await main(['host', 'health'], io), 0);
  t.is(out.join('\n'), 'all hosts healthy');
  t.is(await main(['rebalance', '--mode', 'chaos'], io), 2);
  t.regex(err.join('\n'), /--mode is one of performance, density/);
});
