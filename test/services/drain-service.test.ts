// Drain and return on twins (no Redis): the pre-check names every VM that cannot move and why, a drain is
// one new version (host in maintenance, VMs spread by room and rules), and undrain --return brings back
// exactly the VMs that left in the drain.

import test from 'ava';
import { memoryRuntime, type MemoryRuntime } from '../../src/runtime/service-runtime.ts';
import { drainHost, undrainHost } from '../../src/services/drain-service.ts';
import { ConsentRequiredError, submitSite } from '../../src/services/site-service.ts';
import { EditError } from '../../src/site/edit.ts';
import type { Site, VmSpec } from '../../src/site/model.ts';
import { serializeSite } from '../../src/site/serialize.ts';
import { host, site, template, vm } from '../site/helpers.ts';

/** h1 carries a, b, c (512 MiB each); h2 and h3 have room (2048 MiB each, one VM there already). */
function threeHosts(extra: (vms: VmSpec[]) => void = () => {}): Site {
  const vms = [vm('a', 'h1', 512), vm('b', 'h1', 512), vm('c', 'h1', 512), vm('x', 'h2', 512), vm('y', 'h3', 512)];
  extra(vms);
  return site([host('h1', 2048), host('h2', 2048), host('h3', 2048)], vms);
}

async function runtimeWith(s: Site): Promise<MemoryRuntime> {
  const rt = memoryRuntime();
  const r = await submitSite(rt, {
    xml: serializeSite(s),
    file: 'site.xml',
    base: 0,
    author: 'ann',
    reason: 't',
    consent: 'none',
    apply: false,
  });
  t0(r.unchanged);
  return rt;
}
const t0 = (unchanged: boolean) => {
  if (unchanged) throw new Error('setup stored nothing');
};

const req = (host: string, more: Partial<Parameters<typeof drainHost>[1]> = {}) => ({
  host,
  author: 'ann',
  consent: 'none' as const,
  ...more,
});

async function current(rt: MemoryRuntime): Promise<Site> {
  return (await rt.sites.load(await rt.sites.currentVersion())).site;
}

test('a drain is one version: the host in maintenance, its VMs spread over the others within their memory', async (t) => {
  const rt = await runtimeWith(threeHosts());
  const r = await drainHost(rt, req('h1'));
  t.deepEqual(r.blockers, []);
  t.is(r.moves.length, 3);
  t.true(r.moves.every((m) => m.from === 'h1' && m.live));
  // Spread, not piled: both other hosts take some.
  t.deepEqual([...new Set(r.moves.map((m) => m.to))].sort(), ['h2', 'h3']);
  t.is(await rt.sites.currentVersion(), 2);
  const s = await current(rt);
  t.true(s.hosts.find((h) => h.name === 'h1')!.maintenance);
  t.deepEqual(
    s.vms.filter((v) => v.host === 'h1'),
    [],
  );
  for (const h of ['h2', 'h3'])
    t.true(s.vms.filter((v) => v.host === h).reduce((n, v) => n + v.memMiB, 0) <= 2048, `${h} is not overloaded`);
  const plan = await rt.sites.plan(2);
  t.deepEqual(plan!.actions.map((a) => a.kind).sort(), ['migrate', 'migrate', 'migrate']);
  t.regex((await rt.sites.get(2))!.reason, /^drain h1: /);
  const recs = await rt.migrations.list();
  t.deepEqual(recs.map((m) => [m.vm, m.source, m.from]).sort(), [
    ['a', 'drain', 'h1'],
    ['b', 'drain', 'h1'],
    ['c', 'drain', 'h1'],
  ]);
});

test('a dry run shows the moves and the plan and stores nothing', async (t) => {
  const rt = await runtimeWith(threeHosts());
  const r = await drainHost(rt, req('h1', { dryRun: true }));
  t.is(r.moves.length, 3);
  t.is(r.preview!.actions.length, 3);
  t.deepEqual(r.disruptive, []);
  t.is(r.result, undefined);
  t.is(await rt.sites.currentVersion(), 1);
  t.deepEqual(await rt.migrations.list(), []);
});

test('the pre-check names every VM that cannot move and why, and the drain stores nothing', async (t) => {
  const s = threeHosts((vms) => {
    vms[0]!.placement = { ...vms[0]!.placement, pinned: true };
    // d needs more than any other host has left.
    vms.push(vm('d', 'h1', 1600));
  });
  s.hosts[0]!.memoryMiB = 4096;
  const rt = await runtimeWith(s);
  const dry = await drainHost(rt, req('h1', { dryRun: true }));
  t.deepEqual(
    dry.blockers.map((b) => b.vm),
    ['a', 'd'],
  );
  t.is(dry.blockers[0]!.why, 'pinned to h1');
  t.regex(dry.blockers[1]!.why, /^no room: needs 1600 MiB/);
  const e = await t.throwsAsync(drainHost(rt, req('h1')), { instanceOf: EditError });
  t.regex(e!.message, /cannot drain h1: a: pinned to h1; d: no room/);
  t.is(await rt.sites.currentVersion(), 1);
});

test('anti-affinity keeps a VM from the only host with room, and the pre-check says so', async (t) => {
  const vms = [vm('a', 'h1', 512), vm('b', 'h2', 512)];
  vms[0]!.placement = { ...vms[0]!.placement, antiAffinity: 'web' };
  vms[1]!.placement = { ...vms[1]!.placement, antiAffinity: 'web' };
  const rt = await runtimeWith(site([host('h1', 2048), host('h2', 2048)], vms));
  const r = await drainHost(rt, req('h1', { dryRun: true }));
  t.is(r.blockers.length, 1);
  t.regex(r.blockers[0]!.why, /^anti-affinity: group web/);
});

test('a VM whose disk only its host sees needs consent for its cold move', async (t) => {
  const s = threeHosts();
  s.pools = [{ name: 'local', type: 'file', path: '/srv/pool' }] as Site['pools'];
  s.templates = [
    template,
    {
      ...template,
      name: 'db',
      disks: [
        {
          vdev: 'xvda',
          pool: 'local',
          image: 'base.img',
          target: '/srv/pool/{vm}-xvda.img',
          format: 'raw',
          access: 'rw',
        },
      ],
    },
  ] as Site['templates'];
  s.vms[0] = { ...s.vms[0]!, config: 'db' };
  const rt = await runtimeWith(s);
  const dry = await drainHost(rt, req('h1', { dryRun: true }));
  t.deepEqual(dry.blockers, []);
  t.deepEqual(
    dry.cold.map((b) => b.vm),
    ['a'],
  );
  t.regex(dry.cold[0]!.why, /disk not on shared storage: .*needs consent/);
  t.false(dry.moves.find((m) => m.vm === 'a')!.live);
  t.true(dry.disruptive!.some((a) => a.vm === 'a'));
  await t.throwsAsync(drainHost(rt, req('h1')), { instanceOf: ConsentRequiredError });
  t.is(await rt.sites.currentVersion(), 1);
  const r = await drainHost(rt, req('h1', { consent: 'operator' }));
  t.false(r.result!.unchanged);
  t.is((await current(rt)).vms.find((v) => v.name === 'a')!.host, r.moves.find((m) => m.vm === 'a')!.to);
});

test('undrain --return brings back the VMs that left in the drain, and only those', async (t) => {
  const rt = await runtimeWith(threeHosts());
  await drainHost(rt, req('h1'));
  const r = await undrainHost(rt, req('h1', { returnVms: true }));
  t.deepEqual(r.moves.map((m) => m.vm).sort(), ['a', 'b', 'c']);
  t.deepEqual(r.blockers, []);
  const s = await current(rt);
  t.false(s.hosts.find((h) => h.name === 'h1')!.maintenance);
  t.deepEqual(
    s.vms
      .filter((v) => v.host === 'h1')
      .map((v) => v.name)
      .sort(),
    ['a', 'b', 'c'],
  );
  t.deepEqual(
    s.vms
      .filter((v) => v.host !== 'h1')
      .map((v) => v.name)
      .sort(),
    ['x', 'y'],
  );
  // A second return finds nothing left to bring back: the same content stores nothing.
  const again = await undrainHost(rt, req('h1', { returnVms: true }));
  t.deepEqual(again.moves, []);
  t.true(again.result!.unchanged);
});

test('undrain without --return only clears maintenance; a VM moved since the drain stays', async (t) => {
  const rt = await runtimeWith(threeHosts());
  const d = await drainHost(rt, req('h1'));
  const aTo = d.moves.find((m) => m.vm === 'a')!.to;
  const plain = await undrainHost(rt, req('h1'));
  t.deepEqual(plain.moves, []);
  t.false((await current(rt)).hosts.find((h) => h.name === 'h1')!.maintenance);
  t.is((await current(rt)).vms.find((v) => v.name === 'a')!.host, aTo);
  // Someone moves a on after the drain; the return leaves it where it is now.
  const s = await current(rt);
  const other = aTo === 'h2' ? 'h3' : 'h2';
  const moved = { ...s, vms: s.vms.map((v) => (v.name === 'a' ? { ...v, host: other } : v)) };
  const v = await rt.sites.currentVersion();
  const sub = await submitSite(rt, {
    xml: serializeSite(moved),
    file: 'm',
    base: v,
    author: 'ann',
    reason: 'move a',
    consent: 'none',
    apply: false,
  });
  t.false(sub.unchanged);
  if (!sub.unchanged) await rt.migrations.record({ vm: 'a', version: sub.version, from: aTo, to: other });
  const r = await undrainHost(rt, req('h1', { returnVms: true }));
  t.deepEqual(r.moves.map((m) => m.vm).sort(), ['b', 'c']);
  t.deepEqual(r.blockers, [{ vm: 'a', why: `moved since the drain (now on ${other})` }]);
});

test('drain of an unknown host is a 404 naming the known hosts', async (t) => {
  const rt = await runtimeWith(threeHosts());
  const e = await t.throwsAsync(drainHost(rt, req('h9')), { instanceOf: EditError });
  t.is(e!.status, 404);
  t.regex(e!.message, /known hosts: h1, h2, h3/);
});

test('VMs still on another host in maintenance take no room from the drain', async (t) => {
  const h0 = { ...host('h0', 2048), maintenance: true };
  const rt = await runtimeWith(
    site([h0, host('h1', 2048), host('h2', 1024)], [vm('z', 'h0', 1024), vm('a', 'h1', 512), vm('b', 'h1', 512)]),
  );
  const r = await drainHost(rt, req('h1'));
  t.deepEqual(r.blockers, []);
  t.deepEqual(r.moves.map((m) => `${m.vm}->${m.to}`).sort(), ['a->h2', 'b->h2']);
  t.is((await current(rt)).vms.find((v) => v.name === 'z')!.host, 'h0');
});
