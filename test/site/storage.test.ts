import test from 'ava';
import { readFileSync } from 'node:fs';
import { loadSite } from '../../src/site/parse.ts';
import type { LoadResult, Site } from '../../src/site/model.ts';
import { formatIssue } from '../../src/site/model.ts';
import { planChanges, PlanError } from '../../src/site/plan.ts';
import type { ObservedPool, ObservedState } from '../../src/site/observed.ts';
import { canMoveLive, liveMovePredicate, whyNotLive } from '../../src/site/storage.ts';
import { evacuate } from '../../src/failover/placement.ts';
import { serializeSite } from '../../src/site/serialize.ts';

const POOLS = `  <Pools>
    <Pool name="local" type="file" path="/srv/xen/pool"/>
    <Pool name="vg" type="lvm" vg="vg0" thinpool="thin0"/>
    <Pool name="shared" type="nfs" server="192.168.5.1" export="/export/xen" path="/mnt/xsm/shared" hosts="xen01 xen02"/>
  </Pools>`;

function siteXml(vms: { name: string; host: string; tpl: string }[], pools = POOLS, extraTemplates = ''): string {
  return `<XSMConfig>
  <Hosts>
    <Host name="xen01" address="192.168.5.101" cpus="8" memory="8192"/>
    <Host name="xen02" address="192.168.5.102" cpus="8" memory="8192"/>
    <Host name="xen03" address="192.168.5.103" cpus="8" memory="8192"/>
  </Hosts>
${pools}
  <Templates>
    <Template name="onlocal"><Kernel>/k</Kernel><Disk vdev="xvda" pool="local" image="deb12.img"/></Template>
    <Template name="onlocalqcow"><Kernel>/k</Kernel><Disk vdev="xvda" pool="local" image="deb12.img" clone="overlay"/></Template>
    <Template name="onlvm"><Kernel>/k</Kernel><Disk vdev="xvda" pool="vg" image="deb12"/></Template>
    <Template name="onnfs"><Kernel>/k</Kernel><Disk vdev="xvda" pool="shared" image="deb12.img"/></Template>
    <Template name="plain"><Kernel>/k</Kernel><Disk target="/srv/xen/disks/{vm}.img"/></Template>
${extraTemplates}
  </Templates>
  <Set name="s">
${vms
  .map(
    (v, i) =>
      `    <VM name="${v.name}" config="${v.tpl}"><DOM0>${v.host}</DOM0><VCPUS>1</VCPUS><HWADDR>00:16:3e:00:00:${String(i + 1).padStart(2, '0')}</HWADDR><IP>DHCP</IP><MEM>512</MEM></VM>`,
  )
  .join('\n')}
  </Set>
</XSMConfig>`;
}

function ok(r: LoadResult): Site {
  if (!r.ok) throw new Error(r.errors.map(formatIssue).join('\n'));
  return r.site;
}
const errs = (r: LoadResult) => (r.ok ? [] : r.errors.map(formatIssue));

function pool(name: string, type: ObservedPool['type'], freeMiB: number, images: [string, number][]): ObservedPool {
  return { name, type, sizeMiB: 100000, freeMiB, images: images.map(([n, s]) => ({ name: n, sizeMiB: s })) };
}
function observedWith(pools: Record<string, ObservedPool[]>, domains: Record<string, string[]> = {}): ObservedState {
  const hosts: ObservedState['hosts'] = {};
  for (const h of ['xen01', 'xen02', 'xen03'])
    hosts[h] = {
      name: h,
      heartbeatAt: Date.now(),
      totalMemMiB: 9216,
      freeMemMiB: 8192,
      nrCpus: 8,
      domains: (domains[h] ?? []).map((n) => ({
        name: n,
        domid: 1,
        state: 'running',
        memMiB: 512,
        maxMemMiB: 512,
        vcpus: 1,
        maxVcpus: 1,
        cpuTimeSec: 0,
      })),
      pools: pools[h] ?? [],
    };
  return { hosts };
}

test('reads pools and disks made from images, with XSM-chosen paths per pool kind', (t) => {
  const site = ok(loadSite(siteXml([]), 's.xml'));
  t.deepEqual(
    site.pools?.map((p) => [p.name, p.type]),
    [
      ['local', 'file'],
      ['vg', 'lvm'],
      ['shared', 'nfs'],
    ],
  );
  const disk = (n: string) => site.templates.find((x) => x.name === n)!.disks[0]!;
  t.like(disk('onlocal'), { target: '/srv/xen/pool/{vm}-xvda.img', clone: 'copy', format: 'raw', pool: 'local' });
  t.like(disk('onlocalqcow'), { target: '/srv/xen/pool/{vm}-xvda.qcow2', clone: 'overlay', format: 'qcow2' });
  t.like(disk('onlvm'), { target: '/dev/vg0/{vm}-xvda', clone: 'snapshot', image: 'deb12' });
  t.like(disk('onnfs'), { target: '/mnt/xsm/shared/{vm}-xvda.img', pool: 'shared' });
  t.is(disk('plain').pool, undefined);
  // The round trip keeps pools and pooled disks.
  t.deepEqual(
    ok(loadSite(serializeSite(site), 'again.xml')).templates,
    site.templates.map((x) => ({
      ...x,
      pos: ok(loadSite(serializeSite(site), 'again.xml')).templates.find((y) => y.name === x.name)!.pos,
    })),
  );
});

test("the paper's site files load unchanged and declare no pools", (t) => {
  const paper = readFileSync(new URL('../../src/demo/paper-site.xml', import.meta.url), 'utf8');
  const site = ok(loadSite(paper, 'paper-site.xml'));
  t.is(site.pools, undefined);
  // The paper's config names are its xl config files: their disks are the files' own, none XSM makes.
  t.deepEqual(
    site.templates.map((x) => [x.configFile, x.disks.length]),
    [
      ['apache_svr.cfg', 0],
      ['mysql_svr.cfg', 0],
    ],
  );
});

test('refuses bad pools and pooled disks at their line, naming what is wrong', (t) => {
  const bad = `  <Pools>
    <Pool name="a" type="zfs" path="/x"/>
    <Pool name="b" type="file"/>
    <Pool name="c" type="nfs" server="192.168.5.1" export="/e" path="/m" hosts="xen09"/>
    <Pool name="d" type="lvm" vg="vg0" path="/x"/>
  </Pools>`;
  const e = errs(loadSite(siteXml([], bad), 'bad.xml'));
  t.true(
    e.some((m) => /^bad\.xml:8:5: Pool\[name=a\]@type: type "zfs" is not one of file, lvm, nfs/.test(m)),
    e.join('\n'),
  );
  t.true(e.some((m) => /bad\.xml:9:5: Pool\[name=b\]@path: a file pool needs path/.test(m)));
  t.true(e.some((m) => /Pool\[name=c\]@hosts: host xen09 is not in <Hosts>/.test(m)));
  t.true(e.some((m) => /Pool\[name=d\]@path: path does not apply to a lvm pool/.test(m)));
  const tpl = `<Template name="t1"><Kernel>/k</Kernel><Disk pool="nope" image="x.img"/></Template>
    <Template name="t2"><Kernel>/k</Kernel><Disk pool="vg" image="x" clone="overlay"/></Template>
    <Template name="t3"><Kernel>/k</Kernel><Disk pool="local" image="x.img" target="/a/b.img"/></Template>
    <Template name="t4"><Kernel>/k</Kernel><Disk target="/a/b.img" image="x.img"/></Template>`;
  const e2 = errs(loadSite(siteXml([], POOLS, tpl), 't.xml'));
  t.true(
    e2.some((m) =>
      /Template\[name=t1\]\/Disk\[1\]: pool "nope" is not declared in <Pools> \(declared: local, vg, shared\)/.test(m),
    ),
    e2.join('\n'),
  );
  t.true(e2.some((m) => /t2\]\/Disk\[1\]: clone "overlay" does not apply to lvm pool vg/.test(m)));
  t.true(e2.some((m) => /t3\]\/Disk\[1\]: a disk in pool local has its path chosen by XSM/.test(m)));
  t.true(e2.some((m) => /t4\]\/Disk\[1\]: image and clone need a pool/.test(m)));
});

test('create makes the disks; the plan refuses a pool without room, naming VM, pool, host, need and free', (t) => {
  const site = ok(loadSite(siteXml([{ name: 'web1', host: 'xen01', tpl: 'onlocal' }]), 'site.xml'));
  const roomy = observedWith({ xen01: [pool('local', 'file', 5000, [['deb12.img', 2048]])] });
  const plan = planChanges(undefined, site, roomy);
  const create = plan.actions[0]!;
  t.is(create.kind, 'create');
  t.like(create.kind === 'create' ? create.disks?.[0] : undefined, {
    path: '/srv/xen/pool/web1-xvda.img',
    image: 'deb12.img',
    clone: 'copy',
  });
  const full = observedWith({ xen01: [pool('local', 'file', 1000, [['deb12.img', 2048]])] });
  const e = t.throws(() => planChanges(undefined, site, full), { instanceOf: PlanError });
  t.regex(
    e!.message,
    /^site\.xml:\d+:5: VM\[name=web1\]: disk xvda needs 2048 MiB in pool local on xen01, which has 1000 MiB free/,
  );
  // Two VMs in one shared NFS pool add up, wherever they run.
  const two = ok(
    loadSite(
      siteXml([
        { name: 'a', host: 'xen01', tpl: 'onnfs' },
        { name: 'b', host: 'xen02', tpl: 'onnfs' },
      ]),
      'two.xml',
    ),
  );
  const nfs = (free: number) => pool('shared', 'nfs', free, [['deb12.img', 1024]]);
  t.notThrows(() => planChanges(undefined, two, observedWith({ xen01: [nfs(2048)], xen02: [nfs(2048)] })));
  t.throws(() => planChanges(undefined, two, observedWith({ xen01: [nfs(1500)], xen02: [nfs(1500)] })), {
    message:
      /VM\[name=b\]: disk xvda needs 1024 MiB in pool shared on xen02 \(2048 MiB with the plan's other disks there\), which has 1500 MiB free/,
  });
  // A pool the host does not report, and a disk already there (nothing needed).
  t.throws(() => planChanges(undefined, site, observedWith({})), { message: /host xen01 does not report pool local/ });
  const there = observedWith({
    xen01: [
      pool('local', 'file', 10, [
        ['deb12.img', 2048],
        ['web1-xvda.img', 2048],
      ]),
    ],
  });
  t.notThrows(() => planChanges(undefined, site, there));
  // No report at all: a note, not a refusal.
  const p = planChanges(undefined, site, { hosts: {} });
  t.true(p.notes.some((n) => n.includes('free space of pool local on xen01 is unknown')));
});

test('a move is live only when both hosts share the disks; otherwise a disruptive cold move copies them', (t) => {
  const v1 = ok(
    loadSite(
      siteXml([
        { name: 'n', host: 'xen01', tpl: 'onnfs' },
        { name: 'l', host: 'xen01', tpl: 'onlocal' },
        { name: 'p', host: 'xen01', tpl: 'plain' },
      ]),
      'v1.xml',
    ),
  );
  const v2 = ok(
    loadSite(
      siteXml([
        { name: 'n', host: 'xen02', tpl: 'onnfs' },
        { name: 'l', host: 'xen02', tpl: 'onlocal' },
        { name: 'p', host: 'xen02', tpl: 'plain' },
      ]),
      'v2.xml',
    ),
  );
  const local = (extra: [string, number][]) => pool('local', 'file', 9000, [['deb12.img', 2048], ...extra]);
  const obs = observedWith({ xen01: [local([['l-xvda.img', 2048]])], xen02: [local([])] }, { xen01: ['n', 'l', 'p'] });
  const plan = planChanges(v1, v2, obs);
  const byVm = new Map(plan.actions.map((a) => [a.vm, a]));
  t.like(byVm.get('n'), { kind: 'migrate', mode: 'live' });
  t.like(byVm.get('p'), { kind: 'migrate', mode: 'live' });
  const cold = byVm.get('l')!;
  t.like(cold, { kind: 'migrate', mode: 'cold', disruptive: true });
  t.regex(cold.reason, /disk xvda is in file pool local, which each host has for itself/);
  t.regex(cold.disruption!, /copied to xen02 and checked by sha256/);
  t.is(cold.kind === 'migrate' ? cold.disks?.[0]?.path : '', '/srv/xen/pool/l-xvda.img');
  // The predicate the rebalancer takes says the same.
  t.true(canMoveLive(v2, v2.vms[0]!, 'xen01', 'xen02'));
  t.false(canMoveLive(v2, v2.vms[1]!, 'xen01', 'xen02'));
  t.false(liveMovePredicate(v2)('n', 'xen01', 'xen03'));
  t.deepEqual(whyNotLive(v2, v2.vms[0]!, 'xen01', 'xen03'), [
    'disk xvda is in NFS pool shared, which xen03 does not mount',
  ]);
  // The copy needs room on the target: the source disk's size counts.
  const tight = observedWith(
    { xen01: [local([['l-xvda.img', 2048]])], xen02: [pool('local', 'file', 100, [['deb12.img', 2048]])] },
    { xen01: ['n', 'l', 'p'] },
  );
  t.throws(() => planChanges(v1, v2, tight), {
    message: /VM\[name=l\]: disk xvda needs 2048 MiB in pool local on xen02/,
  });
});

test('remove keeps the disks and says where, unless the request asks to delete them', (t) => {
  const v1 = ok(loadSite(siteXml([{ name: 'l', host: 'xen01', tpl: 'onlocal' }]), 'v1.xml'));
  const v2 = ok(loadSite(siteXml([]), 'v2.xml'));
  const keep = planChanges(v1, v2).actions[0]!;
  t.like(keep, { kind: 'remove', disruptive: true });
  t.regex(keep.disruption!, /its disks are kept: \/srv\/xen\/pool\/l-xvda\.img on xen01/);
  t.false(keep.kind === 'remove' && keep.deleteDisks === true);
  const drop = planChanges(v1, v2, undefined, { deleteDisks: new Set(['l']) }).actions[0]!;
  t.regex(drop.disruption!, /its disks are DELETED/);
  t.true(drop.kind === 'remove' && drop.deleteDisks === true);
});

test('failover restarts only VMs whose disks a survivor reaches, and names the others with why', (t) => {
  const site = ok(
    loadSite(
      siteXml([
        { name: 'n', host: 'xen01', tpl: 'onnfs' },
        { name: 'l', host: 'xen01', tpl: 'onlocal' },
        { name: 'p', host: 'xen01', tpl: 'plain' },
      ]),
      's.xml',
    ),
  );
  const ev = evacuate(site, 'xen01');
  t.deepEqual(
    ev.restarted.map((r) => r.vm),
    ['n', 'p'],
  );
  // The NFS pool is mounted by xen01 and xen02 only: n can only go to xen02.
  t.is(ev.restarted[0]!.to, 'xen02');
  t.deepEqual(ev.stranded, [
    {
      vm: 'l',
      why: 'no surviving host can reach its disks: disk xvda is in file pool local on xen01, which only xen01 sees',
    },
  ]);
});

test("the plan's reason says which disk a create makes, from which image, in which pool", (t) => {
  const site = ok(
    loadSite(
      siteXml([
        { name: 'a', host: 'xen01', tpl: 'onlocalqcow' },
        { name: 'b', host: 'xen01', tpl: 'onlvm' },
      ]),
      's.xml',
    ),
  );
  const [a, b] = planChanges(undefined, site).actions;
  t.is(
    a!.reason,
    'a is new in the site file; disk xvda as a qcow2 overlay from deb12.img into pool local (/srv/xen/pool/a-xvda.qcow2)',
  );
  t.is(b!.reason, 'b is new in the site file; disk xvda as a thin snapshot from deb12 into pool vg (/dev/vg0/b-xvda)');
});

test('a VM created on another host than its old one, away from its local disk, is planned with a note saying it starts from fresh disks', (t) => {
  const v1 = ok(loadSite(siteXml([{ name: 'l', host: 'xen01', tpl: 'onlocal' }]), 'v1.xml'));
  const v2 = ok(loadSite(siteXml([{ name: 'l', host: 'xen02', tpl: 'onlocal' }]), 'v2.xml'));
  // Not running anywhere (its host restarted empty): the planner creates it where the file now puts it.
  const obs = observedWith({ xen02: [pool('local', 'file', 9000, [['deb12.img', 2048]])] });
  const plan = planChanges(v1, v2, obs);
  t.like(plan.actions[0], { kind: 'create', host: 'xen02' });
  t.true(
    plan.notes.some((n) =>
      n.startsWith(
        "l is created on xen02 with NEW disks made from its template's images: its disks on xen01 are out of reach",
      ),
    ),
    plan.notes.join('\n'),
  );
});
