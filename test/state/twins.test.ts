// One contract for each store and its in-memory twin: every assertion below runs against the Redis store
// (a fresh prefix on the test Redis) and against the twin. A twin that drifts from Redis fails here, so the
// services' unit tests that run on twins (test/services/) test what production runs.

import test, { type ExecutionContext } from 'ava';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { redisConfigFromEnv } from '../../src/lib/redis.ts';
import { serializeSite } from '../../src/site/serialize.ts';
import type { ActionOutcome } from '../../src/state/apply-store.ts';
import type { AuditEntry } from '../../src/state/audit-store.ts';
import { FLUSH_MS } from '../../src/state/event-metrics-store.ts';
import { runningDomain } from './observed-fixtures.ts';
import { InvalidSiteError, StaleVersionError } from '../../src/state/site-store.ts';
import { memoryStores, redisStores, type StoreOptions, type Stores } from '../../src/state/stores.ts';
import { deleteKeys, freshPrefix } from '../integration/harness.ts';
import { host, template, vm } from '../site/helpers.ts';

/**
 * The stores of one build, and `pass(ms)` to let time go by: the twins run on a clock the test moves, the
 * Redis build waits (Redis keeps its own time).
 */
type Built = Stores & { pass(ms: number): Promise<void> };
type Build = (t: ExecutionContext, opts?: StoreOptions) => Promise<Built>;

const builds: [string, Build][] = [
  [
    'memory',
    (_t, opts) => {
      let now = Date.now();
      const pass = (ms: number) => {
        now += ms;
        return Promise.resolve();
      };
      return Promise.resolve({ ...memoryStores(() => now, opts), pass });
    },
  ],
  [
    'redis',
    (t, opts) => {
      const prefix = freshPrefix();
      const redis = new Redis(redisConfigFromEnv().url);
      t.teardown(async () => {
        await deleteKeys(prefix);
        redis.disconnect();
      });
      return Promise.resolve({ ...redisStores(redis, prefix, opts), pass: (ms: number) => sleep(ms) });
    },
  ],
];

const siteXml = (memMiB: number) =>
  serializeSite({
    sets: [{ name: 's', vms: ['a'] }],
    hosts: [host('h1', 4096), host('h2', 4096)],
    templates: [template],
    vms: [vm('a', 'h1', memMiB)],
  });

const dom = (name: string) => runningDomain(name, 3);

for (const [kind, build] of builds) {
  test(`${kind}: site versions are numbered, a stale base is refused, an invalid file stores nothing`, async (t) => {
    const { sites } = await build(t);
    t.is(await sites.currentVersion(), 0);
    const first = await sites.submit(siteXml(256), { base: 0, author: 'ann', reason: 'first' });
    t.is(first.version, 1);
    await t.throwsAsync(sites.submit(siteXml(512), { base: 0, author: 'bob', reason: 'late' }), {
      instanceOf: StaleVersionError,
      message: /based on version 0 but the current version is 1/,
    });
    await t.throwsAsync(sites.submit('<XSMConfig><Set', { base: 1, author: 'bob', reason: 'broken' }), {
      instanceOf: InvalidSiteError,
    });
    t.is(await sites.currentVersion(), 1, 'neither refusal stored anything');
    const plan = { actions: [], waves: 0, notes: [], base: 1, observedAt: 0, planHash: 'p', xmlHash: 'x' };
    const second = await sites.submit(siteXml(512), { base: 1, author: 'bob', reason: 'grow' }, {}, plan);
    t.is(second.version, 2);
    t.is((await sites.plan(2))?.version, 2, 'the plan is stored with its version');
    t.is(await sites.plan(1), undefined);
    t.deepEqual(
      (await sites.history()).map((v) => [v.version, v.author, v.base]),
      [
        [2, 'bob', 1],
        [1, 'ann', 0],
      ],
    );
    t.deepEqual(
      (await sites.history(1, 2)).map((v) => v.version),
      [1],
    );
    t.is((await sites.load(2)).site.vms[0]!.memMiB, 512);
    await t.throwsAsync(sites.load(3), { message: 'site version 3 does not exist' });
    await sites.markApplied(2);
    t.is(await sites.appliedVersion(), 2);
  });

  test(`${kind}: observed state keeps each host's last report; arrivals and fencing change only that host`, async (t) => {
    const { observed } = await build(t);
    const base = { heartbeatAt: 1000, totalMemMiB: 4096, freeMemMiB: 2048, nrCpus: 4 };
    await observed.report({ name: 'h2', ...base, domains: [dom('b')] });
    await observed.report({ name: 'h1', ...base, domains: [dom('a'), dom('b')] });
    t.deepEqual(await observed.whereIs('b'), ['h1', 'h2']);
    await observed.report({ name: 'h1', ...base, domains: [dom('a')] });
    t.deepEqual(await observed.whereIs('b'), ['h2'], 'a new report replaces the old one');
    await observed.report({ name: 'h1', ...base, domains: [dom('c'), dom('a')] });
    t.deepEqual(await observed.whereIs('c'), ['h1'], 'a domain that came is indexed...');
    t.deepEqual(await observed.whereIs('a'), ['h1'], '...and one that stayed is still there');
    await observed.report({ name: 'h1', ...base, domains: [dom('a')] });
    t.deepEqual(await observed.whereIs('c'), []);
    await observed.recordArrival('h2', dom('a'));
    t.deepEqual(await observed.whereIs('a'), ['h1', 'h2']);
    await observed.recordArrival('nobody', dom('a'));
    t.is(await observed.host('nobody'), undefined, 'an arrival on a host that never reported records nothing');
    await observed.markFenced('h1', 5000);
    const h1 = await observed.host('h1');
    t.is(h1?.fencedAt, 5000);
    t.deepEqual(h1?.domains, []);
    t.deepEqual(await observed.whereIs('a'), ['h2'], 'a fenced host runs nothing');
    t.is(h1?.heartbeatAt, 1000);
    t.deepEqual(Object.keys((await observed.all()).hosts), ['h1', 'h2']);
    t.deepEqual(await observed.stale(500, 2000), ['h1', 'h2']);
  });

  test(`${kind}: apply outcomes and status per version; converged is one number`, async (t) => {
    const { applies } = await build(t);
    await applies.record(3, new Map([['create:a', { state: 'done' }]]));
    await applies.record(3, new Map([['create:b', { state: 'failed', reason: 'no memory' }]]));
    await applies.record(3, new Map());
    t.deepEqual([...(await applies.outcomes(3))].sort(), [
      ['create:a', { state: 'done' }],
      ['create:b', { state: 'failed', reason: 'no memory' }],
    ]);
    t.is((await applies.outcomes(4)).size, 0);
    await applies.setStatus(3, { state: 'partially-failed', summary: 'one failed' });
    t.like(await applies.status(3), { state: 'partially-failed', summary: 'one failed' });
    t.is(await applies.status(4), undefined);
    await applies.markConverged(2);
    t.is(await applies.convergedVersion(), 2);
  });

  // Serial: it keeps Redis busy for a moment, which would stretch the short leases timed in other tests.
  test.serial(`${kind}: records the outcomes of one wave of 100,000 actions in one call`, async (t) => {
    // The scale run's wave 0 creates 100,000 VMs; recording them in one call overflowed the stack.
    const { applies } = await build(t);
    const wave = new Map<string, ActionOutcome>();
    for (let i = 0; i < 100_000; i++) wave.set(`create:vm${i}`, { state: 'done' });
    wave.set('create:vm99999', { state: 'failed', reason: 'no memory' });
    await applies.record(7, wave);
    const got = await applies.outcomes(7);
    t.is(got.size, 100_000);
    t.deepEqual(got.get('create:vm0'), { state: 'done' });
    t.deepEqual(got.get('create:vm99999'), { state: 'failed', reason: 'no memory' });
  });

  test(`${kind}: failover health and incident versions`, async (t) => {
    const { failover } = await build(t);
    await failover.setHealth('h1', { state: 'suspect', incident: 10, since: 20 });
    await failover.setHealth('h2', { state: 'fencing', incident: 11, since: 21, detail: 'silent' });
    t.deepEqual(await failover.health('h1'), { state: 'suspect', incident: 10, since: 20 });
    await failover.clearHealth('h1');
    t.deepEqual(Object.keys(await failover.allHealth()), ['h2']);
    t.is(await failover.incidentVersion('h2', 11), undefined);
    await failover.setIncidentVersion('h2', 11, 7);
    t.is(await failover.incidentVersion('h2', 11), 7);
    t.is(await failover.incidentVersion('h2', 12), undefined, 'per incident');
  });

  test(`${kind}: deploy records, one leader per session role, chain members in order`, async (t) => {
    const { deploys } = await build(t);
    t.deepEqual(await deploys.record('n1'), {});
    await deploys.setFields('n1', { rootOffset: 1048576, hostKey: 'SHA256:x' });
    t.is(await deploys.increment('n1', 'powerOns'), 1);
    t.is(await deploys.increment('n1', 'powerOns'), 2);
    t.deepEqual(await deploys.record('n1'), { rootOffset: '1048576', hostKey: 'SHA256:x', powerOns: '2' });
    t.true(await deploys.claimSessionLead('s1', 'sender', 'n1'));
    t.false(await deploys.claimSessionLead('s1', 'sender', 'n2'), 'the second machine is not the sender');
    t.true(await deploys.claimSessionLead('s1', 'head', 'n2'), 'each role has its own leader');
    t.is(await deploys.joinChain('s1', { host: 'n1', address: '10.0.0.1' }), 1);
    t.is(await deploys.joinChain('s1', { host: 'n2', address: '10.0.0.2' }), 2);
    const ready = await deploys.chainReady('s1');
    t.deepEqual(
      ready.map((m) => m.host),
      ['n1', 'n2'],
    );
    t.is(await deploys.chain('s1'), undefined);
    await deploys.setChain('s1', ready);
    t.deepEqual(await deploys.chain('s1'), ready);
    t.is(await deploys.sessionSentAt('s1'), undefined);
    await deploys.markSessionSent('s1', 1234);
    t.is(await deploys.sessionSentAt('s1'), 1234);
    await deploys.markDeployed('n1', { at: 1, image: 'dom0', sha256: 'ab' });
    t.deepEqual(await deploys.deployedHosts(), ['n1']);
    await deploys.forget('n1');
    t.deepEqual(await deploys.record('n1'), {});
  });

  test(`${kind}: cooldowns hold a moved VM and nothing else`, async (t) => {
    const { cooldowns } = await build(t);
    await cooldowns.start('a', 3, 60);
    t.deepEqual([...(await cooldowns.cooling(['a', 'b']))], ['a']);
  });

  test(`${kind}: host cooldowns hold a host a move touched, apart from VM cooldowns, and end`, async (t) => {
    const built = await build(t);
    const { cooldowns } = built;
    await cooldowns.startHost('h1', 3, 1);
    t.deepEqual([...(await cooldowns.hostsCooling(['h1', 'h2']))], ['h1']);
    t.deepEqual([...(await cooldowns.cooling(['h1']))], []);
    await built.pass(1100);
    t.deepEqual([...(await cooldowns.hostsCooling(['h1', 'h2']))], []);
  });

  test(`${kind}: the rebalancer's hysteresis state is off until set, and stays as set`, async (t) => {
    const { cooldowns } = await build(t);
    t.false(await cooldowns.engaged());
    await cooldowns.setEngaged(true);
    t.true(await cooldowns.engaged());
    await cooldowns.setEngaged(false);
    t.false(await cooldowns.engaged());
  });

  test(`${kind}: a lease has one holder until it is released or expires`, async (t) => {
    const built = await build(t);
    const { leases } = built;
    t.deepEqual(await leases.acquire('rebalance', 'w1', 300), { ok: true, holder: 'w1' });
    t.deepEqual(await leases.acquire('rebalance', 'w2', 300), { ok: false, holder: 'w1' });
    t.deepEqual(await leases.acquire('rebalance', 'w1', 300), { ok: true, holder: 'w1' });
    t.false(await leases.release('rebalance', 'w2'));
    t.is(await leases.holder('rebalance'), 'w1');
    t.true(await leases.release('rebalance', 'w1'));
    t.is(await leases.holder('rebalance'), undefined);
    t.deepEqual(await leases.acquire('rebalance', 'w2', 300), { ok: true, holder: 'w2' });
    await built.pass(400);
    t.is(await leases.holder('rebalance'), undefined);
    t.deepEqual(await leases.acquire('rebalance', 'w1', 300), { ok: true, holder: 'w1' });
  });

  test(`${kind}: migration slots refuse past each limit, naming it, and free on release or expiry`, async (t) => {
    const built = await build(t);
    const { migrationSlots: slots } = built;
    const limits = { global: 3, perSource: 1, perTarget: 2 };
    t.deepEqual(await slots.acquire({ id: 'm1', from: 'h1', to: 'h2' }, limits, 60_000), { ok: true });
    t.deepEqual(await slots.acquire({ id: 'm1', from: 'h1', to: 'h2' }, limits, 60_000), { ok: true });
    t.deepEqual(await slots.acquire({ id: 'm2', from: 'h1', to: 'h3' }, limits, 60_000), {
      ok: false,
      why: '1 of 1 live migrations leave h1',
    });
    t.deepEqual(await slots.acquire({ id: 'm3', from: 'h3', to: 'h2' }, limits, 60_000), { ok: true });
    t.deepEqual(await slots.acquire({ id: 'm4', from: 'h4', to: 'h2' }, limits, 60_000), {
      ok: false,
      why: '2 of 2 live migrations reach h2',
    });
    t.deepEqual(await slots.acquire({ id: 'm5', from: 'h5', to: 'h6' }, limits, 300), { ok: true });
    t.deepEqual(await slots.acquire({ id: 'm6', from: 'h6', to: 'h5' }, limits, 60_000), {
      ok: false,
      why: '3 of 3 live migrations run site-wide',
    });
    t.deepEqual(
      (await slots.held()).map((s) => s.id),
      ['m1', 'm3', 'm5'],
    );
    t.true(await slots.renew('m5', 300));
    await built.pass(400);
    t.false(await slots.renew('m5', 60_000), 'an expired slot is not renewed');
    t.deepEqual(await slots.acquire({ id: 'm6', from: 'h6', to: 'h5' }, limits, 60_000), { ok: true });
    await slots.release('m1');
    t.false(await slots.renew('m1', 60_000), 'a released slot is not taken back by a renewal');
    t.deepEqual(await slots.acquire({ id: 'm2', from: 'h1', to: 'h3' }, limits, 60_000), { ok: true });
    t.deepEqual(
      (await slots.held()).map((s) => `${s.id}:${s.from}>${s.to}`),
      ['m2:h1>h3', 'm3:h3>h2', 'm6:h6>h5'],
    );
  });

  test(`${kind}: the migration history merges the planner's and the agent's writes, newest first`, async (t) => {
    const { migrations } = await build(t);
    // The agent may write before the planner: the record is the same either way.
    await migrations.record({
      vm: 'a',
      version: 4,
      from: 'h1',
      to: 'h2',
      mode: 'live',
      outcome: 'running',
      startedAt: 5,
    });
    await migrations.record({
      vm: 'a',
      version: 4,
      source: 'rebalance',
      reason: 'lowers imbalance',
      predictedGain: 0.25,
    });
    await migrations.record({ vm: 'b', version: 5, from: 'h2', to: 'h1', source: 'operator', outcome: 'running' });
    await migrations.record({ vm: 'a', version: 4, outcome: 'ok', durationMs: 120 });
    const list = await migrations.list();
    t.deepEqual(
      list.map((r) => r.id),
      ['v5-b', 'v4-a'],
    );
    const a = list[1]!;
    t.like(a, {
      vm: 'a',
      version: 4,
      from: 'h1',
      to: 'h2',
      mode: 'live',
      source: 'rebalance',
      reason: 'lowers imbalance',
      predictedGain: 0.25,
      outcome: 'ok',
      startedAt: 5,
      durationMs: 120,
    });
    t.is(typeof a.at, 'number');
    t.deepEqual(
      (await migrations.list(1)).map((r) => r.id),
      ['v5-b'],
    );
    t.deepEqual(await migrations.get(4, 'a'), a);
    t.is(await migrations.get(4, 'b'), undefined);
    t.deepEqual(await migrations.getMany(4, ['b', 'a', 'c']), [undefined, a, undefined], 'in the order asked');
    t.deepEqual(await migrations.getMany(4, []), []);
  });

  test(`${kind}: a manual power request waits until it is confirmed; the last confirmed state is kept`, async (t) => {
    const { manualPower } = await build(t);
    t.is(await manualPower.pending('h1'), undefined);
    await manualPower.request('h1', { want: 'on', requestedAt: 'now' });
    t.deepEqual(await manualPower.pending('h1'), { want: 'on', requestedAt: 'now' });
    await manualPower.clear('h1');
    t.is(await manualPower.pending('h1'), undefined);
    await manualPower.setLastConfirmed('h1', 'off');
    t.is(await manualPower.lastConfirmed('h1'), 'off');
  });

  test(`${kind}: metrics keep each host's latest poll and a newest-first history`, async (t) => {
    const { metrics } = await build(t);
    const poll = (v: number) => [
      {
        name: 'h1',
        ip: '10.0.0.1',
        up: true,
        reported: 100,
        metrics: { load_one: { name: 'load_one', value: v, units: '', tn: 1, type: 'float' } },
      },
    ];
    await metrics.store(poll(0.5) as never, 10_000);
    await metrics.store(poll(0.7) as never, 20_000);
    t.like(await metrics.latest('h1'), { host: 'h1', up: true, reportedAt: 100_000 });
    t.is((await metrics.latest('h1'))?.metrics.load_one?.v, 0.7);
    t.deepEqual(await metrics.history('h1', 'load_one'), [
      [19_000, 0.7],
      [9_000, 0.5],
    ]);
    t.deepEqual(
      (await metrics.all()).map((m) => m.host),
      ['h1'],
    );
  });

  test(`${kind}: event counters add up and histograms are cumulative by bucket`, async (t) => {
    const { events } = await build(t);
    events.count('xsm_migrations_total', { mode: 'live', outcome: 'done' });
    events.count('xsm_migrations_total', { mode: 'live', outcome: 'done' }, 2);
    events.observe('xsm_plan_duration_seconds', {}, 0.002);
    events.observe('xsm_plan_duration_seconds', {}, 1000);
    // The Redis build adds events up in the process and writes them every FLUSH_MS, or when asked.
    await events.flush();
    t.deepEqual(await events.counter('xsm_migrations_total'), [
      { labels: { mode: 'live', outcome: 'done' }, value: 3 },
    ]);
    const [h] = await events.histogram('xsm_plan_duration_seconds');
    t.is(h?.count, 2);
    t.is(h?.buckets.at(-1)?.[1], 2, 'the +Inf bucket counts every observation');
    t.is(h?.buckets[0]?.[1], 1);
  });

  test(`${kind}: an observation on a bucket's bound counts in that bucket, and histograms with the same labels stay apart`, async (t) => {
    const { events } = await build(t);
    const labels = { workflow: 'create-vm', step: 'verify' };
    events.observe('xsm_step_duration_seconds', labels, 0.05);
    events.observe('xsm_step_duration_seconds', labels, 0.051);
    events.observe('xsm_job_duration_seconds', labels, 0.05);
    await events.flush();
    const [step] = await events.histogram('xsm_step_duration_seconds');
    t.deepEqual(step?.labels, { step: 'verify', workflow: 'create-vm' });
    t.deepEqual(step?.buckets.slice(0, 3), [
      [0.01, 0],
      [0.05, 1],
      [0.1, 2],
    ]);
    const [job] = await events.histogram('xsm_job_duration_seconds');
    t.is(job?.count, 1);
    t.deepEqual(job?.buckets[0], [0.05, 1]);
  });

  test(`${kind}: the audit log answers newest first, by user, kind and Set, and gives back what was appended`, async (t) => {
    const { audit } = await build(t);
    const base = { role: 'operator', from: '10.0.0.9', what: 'POST /api/site', outcome: 'ok' };
    const id1 = await audit.append({ ...base, user: 'ann', kind: 'submit', sets: ['web'], version: 3 });
    await audit.append({ ...base, user: 'bob', kind: 'edit', sets: ['web', 'db'], consent: true, status: 200 });
    await audit.append({ ...base, user: 'ann', kind: 'apply', reason: undefined, job: 'apply-v3' });
    await audit.append({ ...base, user: 'system:rebalance', role: 'system', kind: 'rebalance', outcome: 'failed' });
    const all = await audit.query();
    t.deepEqual(
      all.map((e) => [e.user, e.kind]),
      [
        ['system:rebalance', 'rebalance'],
        ['ann', 'apply'],
        ['bob', 'edit'],
        ['ann', 'submit'],
      ],
    );
    t.regex(id1, /^[0-9]+-[0-9]+$/);
    const first = all.at(-1)!;
    t.deepEqual(first, { ...base, id: id1, user: 'ann', kind: 'submit', sets: ['web'], version: 3, time: first.time });
    // The time is the API host's clock, the id Redis' clock at the XADD: on a loaded machine the two are
    // seconds apart, never minutes.
    t.true(Math.abs(Date.parse(first.time) - Number(id1.split('-')[0])) < 10_000, 'time is when it was appended');
    t.like(all[2], { consent: true, status: 200, sets: ['web', 'db'] }, 'numbers and flags come back typed');
    t.false('reason' in all[1]!, 'an undefined field is not stored');
    const users = (es: AuditEntry[]) => es.map((e) => e.user);
    t.deepEqual(users(await audit.query({ user: 'ann' })), ['ann', 'ann']);
    t.deepEqual(users(await audit.query({ kind: 'edit' })), ['bob']);
    t.deepEqual(users(await audit.query({ set: 'db' })), ['bob']);
    t.deepEqual(users(await audit.query({ set: 'web', user: 'ann' })), ['ann']);
    t.deepEqual(await audit.query({ user: 'nobody' }), []);
    t.deepEqual(await audit.query({ set: 'web', kind: 'rebalance' }), [], 'an entry without Sets is in no Set');
  });

  test(`${kind}: the audit log pages by limit and cursor, and bounds by time inclusively`, async (t) => {
    const { audit, pass } = await build(t);
    const add = (user: string) =>
      audit.append({ user, role: 'operator', from: 'test', kind: 'edit', what: 'x', outcome: 'ok' });
    const ida = await add('a');
    await pass(5);
    const idb = await add('b');
    const idb2 = await add('b2'); // in b's millisecond on the twin, maybe a later one on Redis
    await pass(5);
    const idc = await add('c');
    const ms = (id: string) => Number(id.split('-')[0]);
    const users = (es: AuditEntry[]) => es.map((e) => e.user);
    t.deepEqual(users(await audit.query({ limit: 2 })), ['c', 'b2']);
    t.deepEqual(users(await audit.query({ limit: 2, cursor: idc })), ['b2', 'b'], 'older than the cursor');
    t.deepEqual(users(await audit.query({ limit: 2, cursor: idb })), ['a']);
    t.deepEqual(users(await audit.query({ since: ms(idb) })), ['c', 'b2', 'b'], 'since includes its millisecond');
    t.deepEqual(users(await audit.query({ until: ms(idb2) })), ['b2', 'b', 'a'], 'until includes its millisecond');
    t.deepEqual(users(await audit.query({ since: ms(idb), until: ms(idb2) })), ['b2', 'b']);
    t.deepEqual(users(await audit.query({ until: ms(ida) })), ['a']);
    t.deepEqual(users(await audit.query({ since: ms(ida), cursor: idb })), ['a']);
    t.deepEqual(await audit.query({ since: ms(idc) + 1 }), []);
    t.deepEqual(await audit.query({ since: ms(idc), until: ms(ida) }), [], 'since after until: nothing');
    await t.throwsAsync(audit.query({ since: -1 }), { message: /Invalid stream ID/ }, 'before 1970 is no id');
    await t.throwsAsync(audit.query({ cursor: 'yesterday' }), { message: /Invalid stream ID/ });
  });

  test(`${kind}: the audit log answers 100 entries by default and finds rare matches past a page of 500`, async (t) => {
    const { audit } = await build(t);
    const add = (user: string) =>
      audit.append({ user, role: 'operator', from: 'test', kind: 'edit', what: 'x', outcome: 'ok' });
    await add('rare-old');
    for (let i = 0; i < 600; i++) await add(`u${i}`);
    await add('rare-new');
    const page = await audit.query();
    t.is(page.length, 100);
    t.is(page[0]!.user, 'rare-new');
    t.is(page[99]!.user, 'u501');
    t.deepEqual((await audit.query({ limit: 1000 })).map((e) => e.user).slice(-2), ['u0', 'rare-old']);
    t.deepEqual(
      (await audit.query({ user: 'rare-old' })).map((e) => e.user),
      ['rare-old'],
      'a filter reads on past the first 500 entries',
    );
    t.deepEqual(
      (await audit.query({ kind: 'edit', limit: 2, cursor: page[99]!.id })).map((e) => e.user),
      ['u500', 'u499'],
    );
  });

  test(`${kind}: the audit log trims entries older than the retention and keeps every newer one`, async (t) => {
    // A retention of half a second, so the Redis build can wait it out.
    const { audit, pass } = await build(t, { auditRetentionDays: 500 / 86_400_000 });
    const add = (user: string) =>
      audit.append({ user, role: 'operator', from: 'test', kind: 'edit', what: 'x', outcome: 'ok' });
    // Enough entries to fill whole stream nodes: Redis's `MINID ~` drops only whole nodes.
    for (let i = 0; i < 250; i++) await add(`old${i}`);
    await pass(700);
    for (const u of ['new1', 'new2', 'new3']) await add(u);
    const users = (await audit.query({ limit: 1000 })).map((e) => e.user);
    t.deepEqual(users.slice(0, 3), ['new3', 'new2', 'new1'], 'every entry within the retention is kept');
    t.false(users.includes('old0'), 'the oldest entries are gone');
    t.true(users.length < 253);
  });

  test(`${kind}: a session gives back its token's digest until it is ended or expires`, async (t) => {
    const { sessions, pass } = await build(t, { sessionTtlSec: 1 });
    const digest = createHash('sha256').update('a token').digest();
    const id = await sessions.create(digest);
    t.regex(id, /^[A-Za-z0-9_-]{43}$/);
    t.deepEqual(await sessions.tokenDigest(id), digest);
    const other = await sessions.create(createHash('sha256').update('another token').digest());
    t.not(other, id);
    t.is(await sessions.tokenDigest('A'.repeat(43)), undefined, 'an unknown id');
    t.is(await sessions.tokenDigest(`${id}=`), undefined, 'an id of another shape is not looked up');
    await sessions.end(id);
    t.is(await sessions.tokenDigest(id), undefined, 'ended');
    await sessions.end(id);
    t.truthy(await sessions.tokenDigest(other), 'ending one session leaves the others');
    await pass(400);
    t.truthy(await sessions.tokenDigest(other), 'alive within its TTL');
    await pass(800);
    t.is(await sessions.tokenDigest(other), undefined, 'expired after its TTL');
  });

  test(`${kind}: a session TTL Redis cannot keep is refused when a session is made`, async (t) => {
    const { sessions } = await build(t, { sessionTtlSec: 0 });
    await t.throwsAsync(sessions.create(Buffer.alloc(32)), { message: /invalid expire time/ });
  });
  test(`${kind}: fencing raises a host's epoch once per incident; other hosts keep theirs`, async (t) => {
    const { fence } = await build(t);
    t.is(await fence.epoch('h1'), 0, 'never fenced');
    t.deepEqual(await fence.epochs(), {});
    t.is(await fence.fence('h1', 1000), 1);
    t.is(await fence.fence('h1', 1000), 1, 'a retried failover of the same incident gets the same epoch');
    t.is(await fence.fence('h1', 2000), 2, 'a new incident fences again');
    t.is(await fence.fence('h2', 1000), 1);
    t.deepEqual(await fence.epochs(), { h1: 2, h2: 1 });
    t.is(await fence.epoch('h3'), 0);
    t.is(await fence.plannedEpochs(7), undefined, 'a version planned before epochs existed');
    await fence.setPlannedEpochs(7, await fence.epochs());
    await fence.fence('h1', 3000);
    t.deepEqual(await fence.plannedEpochs(7), { h1: 2, h2: 1 }, 'what version 7 was planned under, not today');
  });

  test(`${kind}: a lease is kept by renewing it and expires its TTL after the last renewal`, async (t) => {
    const { fence, pass } = await build(t);
    t.is(await fence.lease('h1'), undefined, 'a host that never kept a lease');
    await fence.renewLease('h1', 1000);
    const fresh = (await fence.lease('h1'))!;
    t.is(fresh.ttlMs, 1000);
    t.true(fresh.remainingMs > 500 && fresh.remainingMs <= 1000, `${fresh.remainingMs} ms left`);
    await pass(600);
    await fence.renewLease('h1', 1000);
    await pass(600);
    t.true((await fence.lease('h1'))!.remainingMs > 0, 'renewed: alive past its first TTL');
    await pass(1100);
    t.deepEqual(await fence.lease('h1'), { ttlMs: 1000, remainingMs: 0 }, 'expired, and still known as a lease');
  });

  test(`${kind}: restore stores a recovered version under its own number, the ones before it as lost, and continues from it`, async (t) => {
    const { sites } = await build(t);
    const kept = siteXml(256);
    await sites.restore({ version: 4, xml: kept, author: 'ada', reason: 'recovered', expectedCurrent: 0 });
    t.is(await sites.currentVersion(), 4);
    t.is(await sites.appliedVersion(), 4);
    t.is((await sites.get(4))!.xml, kept);
    t.is(await sites.get(2), undefined, 'a lost version has no file');
    t.deepEqual(
      (await sites.history()).map((h) => [h.version, h.author]),
      [
        [4, 'ada'],
        [3, 'xsm recover'],
        [2, 'xsm recover'],
        [1, 'xsm recover'],
      ],
    );
    await t.throwsAsync(
      sites.restore({ version: 9, xml: siteXml(256), author: 'ada', reason: 'r', expectedCurrent: 0 }),
      { message: /current version is now 4, not 0/ },
    );
    await t.throwsAsync(
      sites.restore({ version: 3, xml: siteXml(256), author: 'ada', reason: 'r', expectedCurrent: 4 }),
      { message: /already holds version 4, not older than the agents' version 3/ },
    );
    const next = await sites.submit(siteXml(512), { base: 4, author: 'ada', reason: 'after' });
    t.is(next.version, 5);
  });

  test(`${kind}: raiseEpoch raises a host's fencing epoch, never lowers it`, async (t) => {
    const { fence } = await build(t);
    await fence.raiseEpoch('h1', 3);
    t.is(await fence.epoch('h1'), 3);
    await fence.raiseEpoch('h1', 2);
    t.is(await fence.epoch('h1'), 3);
    t.is(await fence.fence('h1', 77), 4, 'a later fence comes out above it');
  });

  test(`${kind}: a recovery request collects one answer per host until it is ended`, async (t) => {
    const { recovery } = await build(t);
    t.is(await recovery.pending(), undefined);
    await recovery.request('r1', 60_000);
    t.is(await recovery.pending(), 'r1');
    await recovery.answer('r1', { host: 'h2', problem: 'no copy yet' });
    await recovery.answer('r1', { host: 'h1', epoch: 2 });
    await recovery.answer('r1', { host: 'h1', epoch: 3 });
    t.deepEqual(await recovery.answers('r1'), [
      { host: 'h1', epoch: 3 },
      { host: 'h2', problem: 'no copy yet' },
    ]);
    await recovery.end('r1');
    t.is(await recovery.pending(), undefined);
    t.deepEqual(await recovery.answers('r1'), []);
  });
}

test('event metrics reach Redis by themselves within FLUSH_MS, many events as one write per field', async (t) => {
  const prefix = freshPrefix();
  const redis = new Redis(redisConfigFromEnv().url);
  t.teardown(async () => {
    redis.disconnect();
    await deleteKeys(prefix);
  });
  // Every command the store sends goes through a pipeline: count them as they are sent.
  const sent: string[] = [];
  const pipeline = redis.pipeline.bind(redis);
  redis.pipeline = (...args: Parameters<typeof redis.pipeline>) => {
    const p = pipeline(...args);
    const exec = p.exec.bind(p);
    p.exec = (...a: Parameters<typeof p.exec>) => {
      sent.push(...(p as unknown as { _queue: { name: string }[] })._queue.map((c) => c.name));
      return exec(...a);
    };
    return p;
  };
  const { events } = redisStores(redis, prefix);
  for (let i = 0; i < 100; i++) {
    // The same label sets, given in either order, are one series.
    if (i % 2) events.count('xsm_jobs_finished_total', { queue_kind: 'host', job: 'create', outcome: 'completed' });
    else events.count('xsm_jobs_finished_total', { outcome: 'completed', job: 'create', queue_kind: 'host' });
    if (i % 2) events.observe('xsm_step_duration_seconds', { workflow: 'create-vm', step: 'xl-create' }, 0.02);
    else events.observe('xsm_step_duration_seconds', { step: 'xl-create', workflow: 'create-vm' }, 0.02);
  }
  await sleep(FLUSH_MS + 200);
  t.deepEqual(await events.counter('xsm_jobs_finished_total'), [
    { labels: { job: 'create', outcome: 'completed', queue_kind: 'host' }, value: 100 },
  ]);
  const [h] = await events.histogram('xsm_step_duration_seconds');
  t.is(h?.count, 100);
  t.is(Math.round((h?.sum ?? 0) * 1000), 2000);
  // 200 events: one HINCRBY per counter field, bucket and count, one HINCRBYFLOAT for the sum.
  t.deepEqual(sent.sort(), ['hincrby', 'hincrby', 'hincrby', 'hincrbyfloat']);
});
