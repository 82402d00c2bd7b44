// `xsm site import` with storage pools: the pools the agents report (type, location, which hosts have them)
// are written as <Pools>, so the imported file loads and submits with nothing planned. Simulated site with
// simulated storage on real Redis.
import test from 'ava';
import { provisionSimPool, SimPoolStore, SimulatedStorage } from '../../src/drivers/storage/simulated.ts';
import { importSite } from '../../src/services/site-import.ts';
import { submitSite } from '../../src/services/site-service.ts';
import { loadSite } from '../../src/site/parse.ts';
import type { PoolSpec } from '../../src/site/model.ts';
import { siteXml } from '../integration/fixtures.ts';
import { startTestSite } from '../integration/harness.ts';

test('import writes the reported pools (file on every host, NFS on one, LVM on one) and submits with no changes planned', async (t) => {
  const local: PoolSpec = { name: 'local', type: 'file', path: '/srv/xen/pool' };
  const nfs: PoolSpec = { name: 'shared', type: 'nfs', server: '10.77.0.100', export: '/x', path: '/mnt/shared' };
  const vg: PoolSpec = { name: 'fast', type: 'lvm', vg: 'vg0' };
  const pools = new SimPoolStore();
  const images = [{ name: 'deb12.img', sizeMiB: 512 }];
  provisionSimPool(pools, { pool: nfs, sizeMiB: 8192, images });
  for (const host of ['h1', 'h2']) provisionSimPool(pools, { pool: local, host, sizeMiB: 8192, images });
  provisionSimPool(pools, { pool: vg, host: 'h2', sizeMiB: 8192, images: [{ name: 'deb12', sizeMiB: 512 }] });
  const hosts = [
    { name: 'h1', memMiB: 2048 },
    { name: 'h2', memMiB: 2048 },
  ];
  const s = await startTestSite(hosts, { storage: (h) => new SimulatedStorage(pools, h, 0) });
  t.teardown(() => s.close());
  const extras = {
    pools: [
      '  <Pools>',
      '<Pool name="local" type="file" path="/srv/xen/pool"/>',
      '<Pool name="shared" type="nfs" server="10.77.0.100" export="/x" path="/mnt/shared" hosts="h1"/>',
      '<Pool name="fast" type="lvm" vg="vg0" hosts="h2"/>',
      '</Pools>',
    ].join(''),
    templates:
      '<Template name="onlocal"><Kernel>/k</Kernel><Disk pool="local" image="deb12.img"/></Template>' +
      '<Template name="onnfs"><Kernel>/k</Kernel><Disk pool="shared" image="deb12.img"/></Template>',
  };
  const v1 = await s.submitAndApply(
    siteXml(
      hosts,
      [
        { name: 'vn', host: 'h1', mem: 256, config: 'onnfs' },
        { name: 'vf', host: 'h2', mem: 256, config: 'onlocal' },
      ],
      extras,
    ),
  );
  await s.waitConverged(v1);
  // Every agent has reported the pools it has since the version was applied.
  const until = Date.now() + 10_000;
  for (;;) {
    const o = await s.rt.observed.all();
    if (o.hosts.h1?.pools?.length === 2 && o.hosts.h2?.pools?.length === 2) break;
    if (Date.now() > until) throw new Error(`pools not reported: ${JSON.stringify(o.hosts.h1?.pools)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const observed = await s.rt.observed.all();
  t.like(
    observed.hosts.h1!.pools!.find((p) => p.name === 'shared'),
    { type: 'nfs', server: '10.77.0.100', export: '/x' },
  );
  const imported = await importSite(s.rt);
  t.deepEqual(imported.notes, []);
  const loaded = loadSite(imported.xml, 'import.xml');
  if (!loaded.ok) throw new Error(loaded.errors[0]!.message);
  t.deepEqual(
    loaded.site.pools!.map(({ pos: _pos, ...p }) => p),
    [
      { name: 'local', type: 'file', path: '/srv/xen/pool' },
      { name: 'shared', type: 'nfs', server: '10.77.0.100', export: '/x', path: '/mnt/shared', hosts: ['h1'] },
      { name: 'fast', type: 'lvm', vg: 'vg0', hosts: ['h2'] },
    ],
  );
  const r = await submitSite(s.rt, {
    xml: imported.xml,
    file: 'import.xml',
    base: imported.base,
    author: 'test',
    reason: 'import',
    consent: 'none',
    apply: false,
  });
  t.true(r.unchanged, `the import of a converged site changes nothing: ${JSON.stringify(r)}`);
});

test('a pool a host stopped reporting is left off its hosts, with a note; pools with no report anywhere are kept', async (t) => {
  const { siteFromObserved } = await import('../../src/site/import.ts');
  const base = loadSite(
    siteXml(
      [
        { name: 'h1', memMiB: 2048 },
        { name: 'h2', memMiB: 2048 },
      ],
      [],
      {
        pools: '<Pools><Pool name="local" type="file" path="/p"/><Pool name="gone" type="lvm" vg="vg9"/></Pools>',
      },
    ),
    's.xml',
  );
  if (!base.ok) throw new Error(base.errors[0]!.message);
  const report = (name: string, pools: { name: string; type: 'file' | 'lvm' | 'nfs'; path?: string }[]) => ({
    name,
    heartbeatAt: 1,
    totalMemMiB: 4096,
    freeMemMiB: 2048,
    nrCpus: 8,
    domains: [],
    pools: pools.map((p) => ({ ...p, sizeMiB: 100, freeMiB: 50, images: [] })),
  });
  const { site, notes } = siteFromObserved(
    { hosts: { h1: report('h1', [{ name: 'local', type: 'file', path: '/p' }]), h2: report('h2', []) } },
    base.site,
  );
  t.deepEqual(
    site.pools!.map((p) => [p.name, p.hosts]),
    [
      ['local', ['h1']],
      ['gone', undefined],
    ],
  );
  t.deepEqual(notes, [
    'pool local is not reported by h2, which the current version lists: left off its hosts',
    'pool gone: no host reports it; kept as the current version has it',
  ]);
});
