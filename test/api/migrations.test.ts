// GET /api/migrations: an operator's live migration is recorded by the agent that ran it, with its source,
// the version's reason, outcome and duration; the rebalancer's moves carry the planner's reason and
// predicted gain; viewers may read it, nobody without a token, and a bad query is refused.
import test from 'ava';
import { siteXml } from '../integration/fixtures.ts';
import { eventually, withApi } from './with-api.ts';

const HOSTS = [
  { name: 'h1', memMiB: 2048 },
  { name: 'h2', memMiB: 2048 },
];

test('an operator migration and a rebalance are in the history with source, reason, outcome and duration', async (t) => {
  const { s, call } = await withApi(t, HOSTS);
  const v1 = await call('POST', '/api/site?base=0', 'admin', {
    xml: siteXml(HOSTS, [
      { name: 'a', host: 'h1', mem: 256 },
      { name: 'b', host: 'h1', mem: 256 },
      { name: 'c', host: 'h1', mem: 256 },
      { name: 'd', host: 'h1', mem: 256 },
    ]),
  });
  t.is(v1.status, 201, JSON.stringify(v1.body));
  await s.waitConverged(1);
  t.is((await call('POST', '/api/vms/a/migrate', 'operator', { json: { to: 'h2' } })).status, 202);
  await s.waitConverged(2);
  const first = await eventually(async () => {
    const r = await call('GET', '/api/migrations', 'viewer');
    return r.body.migrations?.[0]?.outcome === 'ok' ? r.body.migrations[0] : undefined;
  });
  t.like(first, { vm: 'a', version: 2, from: 'h1', to: 'h2', mode: 'live', source: 'operator', author: 'otto' });
  t.is(first.reason, 'migrate a from h1 to h2');
  t.is(typeof first.durationMs, 'number');
  t.regex(first.startedAt, /^\d{4}-\d\d-\d\dT/);

  const rb = await call('POST', '/api/rebalance', 'admin', { json: { actAbove: 0, stopBelow: 0 } });
  t.is(rb.status, 202, JSON.stringify(rb.body));
  await s.waitConverged(rb.body.version);
  const list = await eventually(async () => {
    const r = await call('GET', `/api/migrations?limit=10`, 'viewer');
    return r.body.migrations.length === 1 + rb.body.moves.length &&
      r.body.migrations.every((m: { outcome?: string }) => m.outcome === 'ok')
      ? r.body.migrations
      : undefined;
  });
  const moved = list.find((m: { version: number }) => m.version === rb.body.version);
  t.like(moved, { source: 'rebalance', outcome: 'ok', mode: 'live' });
  t.regex(moved.reason, /lowers the score by/);
  t.true(moved.predictedGain > 0);
  const onlyA = await call('GET', '/api/migrations?vm=a', 'viewer');
  t.true(onlyA.body.migrations.every((m: { vm: string }) => m.vm === 'a'));
  t.is((await call('GET', '/api/migrations', null)).status, 401);
  t.is((await call('GET', '/api/migrations?limit=0x10', 'viewer')).status, 400);
  t.is((await call('GET', '/api/migrations?color=red', 'viewer')).status, 400);
  const bad = await call('POST', '/api/rebalance', 'admin', { json: { actAbove: 0.1, stopBelow: 0.2 } });
  t.is(bad.status, 400);
  t.regex(bad.body.error.message, /stopBelow 0.2 is above actAbove 0.1/);
});
