// `xsm recover` on a simulated site: two versions applied, Redis wiped (FLUSHALL on a Redis of the test's
// own), the control plane and API started again, then the site store rebuilt from the copies the agents keep
// on disk. Also every refusal: copies that disagree, no agent answering, a store that is not empty, a non-admin.
import test from 'ava';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { TokenTable } from '../../src/api/auth.ts';
import { startApi } from '../../src/api/listen.ts';
import { readSiteCopy, writeSiteCopy } from '../../src/lib/site-copy.ts';
import { silentLogger } from '../../src/lib/log.ts';
import { XsmRuntime } from '../../src/runtime/runtime.ts';
import { recoverSite, RecoveryRefusedError } from '../../src/services/recovery.ts';
import { previewPlan, submitSite } from '../../src/services/site-service.ts';
import { LOST_VERSION } from '../../src/state/site-store.ts';
import { startControlWorker } from '../../workers/control-lib.ts';
import { PrivateRedis } from '../scenarios/private-redis.ts';
import { siteXml } from './fixtures.ts';
import { startTestSite } from './harness.ts';

const HOSTS = [
  { name: 'h1', memMiB: 4096 },
  { name: 'h2', memMiB: 4096 },
];
const V1 = siteXml(HOSTS, [
  { name: 'a', host: 'h1', mem: 256 },
  { name: 'b', host: 'h2', mem: 256 },
]);
const V2 = siteXml(HOSTS, [
  { name: 'a', host: 'h2', mem: 256 },
  { name: 'b', host: 'h2', mem: 512 },
  { name: 'c', host: 'h1', mem: 256 },
]);
const V3 = siteXml(HOSTS, [
  { name: 'a', host: 'h2', mem: 256 },
  { name: 'b', host: 'h2', mem: 512 },
  { name: 'c', host: 'h1', mem: 256 },
  { name: 'd', host: 'h1', mem: 128 },
]);

async function until<T>(fn: () => Promise<T>, ms: number, what: string): Promise<NonNullable<T>> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`${what} not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const cacheDirs = async (hosts: string[]) => {
  const root = await mkdtemp(join(tmpdir(), 'xsm-recover-'));
  return Object.fromEntries(hosts.map((h) => [h, join(root, h)]));
};

test('Redis wiped after two versions: recover keeps the numbers and the site, plans nothing, and the next apply is version 3', async (t) => {
  const redis = await PrivateRedis.start();
  const dirs = await cacheDirs(['h1', 'h2']);
  const s = await startTestSite(HOSTS, { redisUrl: redis.url, cacheDir: (h) => dirs[h]! });
  const admin = { token: 'admin-token-0123456789', role: 'admin' as const, name: 'ada' };
  const operator = { token: 'operator-token-0123456789', role: 'operator' as const, name: 'otto' };
  // Teardowns run last first: the new control plane, then the site, then the Redis.
  t.teardown(async () => {
    await s.close();
    await redis.stop();
  });
  await s.submitAndApply(V1);
  await s.waitConverged(1);
  await s.submitAndApply(V2);
  await s.waitConverged(2);
  const before = await s.where();
  // Every agent keeps version 2 on its disk (written on its heartbeat once the version was applied).
  for (const h of ['h1', 'h2'])
    await until(async () => (await readSiteCopy(dirs[h]!))?.version === 2, 10_000, `${h}'s copy of version 2`);

  // Redis loses everything; the control plane and the API start again on the empty Redis.
  await s.control.close();
  const wipe = new Redis(redis.url);
  await wipe.flushall();
  wipe.disconnect();
  const rt2 = new XsmRuntime(s.rt.config, silentLogger);
  t.is(await rt2.sites.currentVersion(), 0, 'the store is empty');
  const control2 = startControlWorker(rt2, silentLogger);
  const api = await startApi({ rt: rt2, tokens: new TokenTable([admin, operator]), log: silentLogger });
  t.teardown(async () => {
    await api.close();
    await control2.close();
    await rt2.close();
  });
  const post = async (token: string, body: object) => {
    const res = await fetch(`${api.url}/api/admin/recover`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as any };
  };

  t.is((await post(operator.token, { dryRun: true })).status, 403, 'admins only');
  const dry = await post(admin.token, { dryRun: true, waitMs: 10_000 });
  t.is(dry.status, 200, JSON.stringify(dry.body));
  t.like(dry.body, { dryRun: true, version: 2, from: ['h1', 'h2'], missing: [], drift: [], before: 0 });
  t.is(await rt2.sites.currentVersion(), 0, 'a dry run stores nothing');

  const done = await post(admin.token, { waitMs: 10_000 });
  t.is(done.status, 201, JSON.stringify(done.body));
  t.like(done.body, { dryRun: false, version: 2, from: ['h1', 'h2'], converged: true, drift: [] });
  t.is(await rt2.sites.currentVersion(), 2, 'the version number is kept');
  t.is((await rt2.sites.get(2))!.xml, V2, 'the desired site is the file version 2 was');
  t.like((await rt2.sites.history())[1], { version: 1, ...LOST_VERSION });
  t.is(await rt2.applies.convergedVersion(), 2);
  t.deepEqual((await previewPlan(rt2, V2, 'site.xml')).plan.actions, [], '`xsm site plan` of the file plans nothing');
  t.deepEqual(await s.where(), before, 'no VM was touched');
  const audit = await rt2.audit.query({ kind: 'recover' });
  t.deepEqual(
    audit.map((e) => e.status),
    [201, 200, 403],
    'every recover request is audited, the refused one included',
  );
  t.deepEqual(
    audit.slice(0, 2).map((e) => e.user),
    ['ada', 'ada'],
  );

  // A second recover refuses: the store is not empty any more.
  const again = await post(admin.token, { waitMs: 2000 });
  t.is(again.status, 409);
  t.regex(again.body.error.message, /already holds version 2/);

  // The next change is version 3, applied by the new control plane.
  const r = await submitSite(rt2, {
    xml: V3,
    file: 'v3.xml',
    base: 2,
    author: 'test',
    reason: 'after recovery',
    consent: 'operator',
    apply: true,
  });
  t.false(r.unchanged);
  t.is(r.unchanged ? 0 : r.version, 3);
  t.deepEqual(r.unchanged ? [] : r.plan.actions.map((a) => a.id), ['create:d']);
  await until(async () => (await rt2.applies.convergedVersion()) === 3, 20_000, 'version 3 converged');
  t.is((await s.where()).d, 'h1');
});

test('copies of the newest version that differ are refused, naming hosts and version; nothing is stored', async (t) => {
  const dirs = await cacheDirs(['h1', 'h2']);
  await writeSiteCopy(dirs.h1!, 5, V2);
  await writeSiteCopy(dirs.h2!, 5, V3);
  const s = await startTestSite(HOSTS, { cacheDir: (h) => dirs[h]! });
  t.teardown(() => s.close());
  const e = await t.throwsAsync(recoverSite(s.rt, { author: 't', dryRun: true, waitMs: 10_000, pollMs: 50 }), {
    instanceOf: RecoveryRefusedError,
  });
  t.regex(e.message, /copies of version 5.*are different files: h1 \(sha256 [0-9a-f]{12}\) vs h2/);
  t.is(await s.rt.sites.currentVersion(), 0);
});

test('an older copy beside the newest is named; no agent answering is refused; a store that holds versions is refused', async (t) => {
  const none = await startTestSite(HOSTS, { agents: false });
  t.teardown(() => none.close());
  const e = await t.throwsAsync(recoverSite(none.rt, { author: 't', dryRun: false, waitMs: 500, pollMs: 50 }), {
    instanceOf: RecoveryRefusedError,
  });
  t.regex(e.message, /no host agent answered within 500 ms: nothing was recovered/);

  const dirs = await cacheDirs(['h1', 'h2']);
  await writeSiteCopy(dirs.h1!, 7, V2);
  await writeSiteCopy(dirs.h2!, 6, V1);
  const s = await startTestSite(HOSTS, { cacheDir: (h) => dirs[h]! });
  t.teardown(() => s.close());
  const dry = await recoverSite(s.rt, { author: 't', dryRun: true, waitMs: 10_000, pollMs: 50 });
  t.like(dry, { version: 7, from: ['h1'], older: [{ host: 'h2', version: 6 }] });
  await s.submitAndApply(V1);
  const full = await t.throwsAsync(recoverSite(s.rt, { author: 't', dryRun: true, waitMs: 1000, pollMs: 50 }));
  t.regex(full.message, /already holds version 1: recover rebuilds a Redis that lost everything/);
  // Redis back from an older backup: the agents' newer version 7 goes on top, 2..6 marked lost.
  await s.waitConverged(1);
  const over = await recoverSite(s.rt, {
    author: 't',
    dryRun: false,
    waitMs: 10_000,
    pollMs: 50,
    overOlder: true,
  });
  t.like(over, { version: 7, before: 1 });
  t.is(await s.rt.sites.currentVersion(), 7);
  t.deepEqual(
    (await s.rt.sites.history()).map((h) => h.version),
    [7, 6, 5, 4, 3, 2, 1],
  );
});
