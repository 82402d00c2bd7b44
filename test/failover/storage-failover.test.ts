// Failover with disks in pools: a fenced host's VM restarts only where its disks are (an NFS pool the survivor
// mounts); a VM whose disk was in the dead host's own pool stays down, and the failover version says why.
import test from 'ava';
import { startTestSite, type TestSite } from '../integration/harness.ts';
import { siteXml } from '../integration/fixtures.ts';
import { checkHosts, failoverJobId, type FailoverPolicy } from '../../src/services/health-check.ts';
import { provisionSimPool, SimPoolStore, SimulatedStorage } from '../../src/drivers/storage/simulated.ts';
import type { PoolSpec } from '../../src/site/model.ts';

const POLICY: FailoverPolicy = { suspectAfterMs: 400, fenceAfterMs: 300, maxDeadFraction: 0.5 };

async function failHost(s: TestSite, host: string): Promise<string> {
  await s.agents.get(host)!.close();
  s.agents.delete(host);
  const until = Date.now() + 20000;
  for (;;) {
    await checkHosts(s.rt, POLICY);
    const h = await s.rt.failover.health(host);
    if (h && h.state !== 'suspect') {
      const job = await s.rt.control().getJob(failoverJobId(host, h.incident));
      const state = job ? await job.getState() : 'missing';
      if (state === 'completed' || state === 'failed') return state;
    }
    if (Date.now() > until) throw new Error(`failover of ${host} did not finish`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("failover restarts the VM on the shared NFS pool and leaves the one on the dead host's local pool down, saying why", async (t) => {
  const local: PoolSpec = { name: 'local', type: 'file', path: '/srv/xen/pool' };
  const nfs: PoolSpec = { name: 'shared', type: 'nfs', server: '10.77.0.100', export: '/x', path: '/mnt/shared' };
  const pools = new SimPoolStore();
  const images = [{ name: 'deb12.img', sizeMiB: 512 }];
  provisionSimPool(pools, { pool: nfs, sizeMiB: 8192, images });
  for (const host of ['h1', 'h2']) provisionSimPool(pools, { pool: local, host, sizeMiB: 8192, images });
  const hosts = [
    { name: 'h1', memMiB: 2048 },
    { name: 'h2', memMiB: 2048 },
  ];
  const s = await startTestSite(hosts, { storage: (h) => new SimulatedStorage(pools, h, 0) });
  t.teardown(() => s.close());
  const extras = {
    pools: `  <Pools><Pool name="local" type="file" path="/srv/xen/pool"/><Pool name="shared" type="nfs" server="10.77.0.100" export="/x" path="/mnt/shared"/></Pools>`,
    templates: `<Template name="onlocal"><Kernel>/k</Kernel><Disk pool="local" image="deb12.img"/></Template><Template name="onnfs"><Kernel>/k</Kernel><Disk pool="shared" image="deb12.img"/></Template>`,
  };
  const v1 = await s.submitAndApply(
    siteXml(
      hosts,
      [
        { name: 'vn', host: 'h1', mem: 256, config: 'onnfs' },
        { name: 'vf', host: 'h1', mem: 256, config: 'onlocal' },
      ],
      extras,
    ),
  );
  await s.waitConverged(v1);
  t.is(await failHost(s, 'h1'), 'completed');
  const v2 = await s.rt.sites.currentVersion();
  const meta = (await s.rt.sites.get(v2))!;
  t.regex(
    meta.reason,
    /1 VM restarted elsewhere, 1 left down \(vf: no surviving host can reach its disks: disk xvda is in file pool local on h1, which only h1 sees\)/,
  );
  await s.waitApplyEnded(v2);
  const where = await s.where();
  t.is(where.vn, 'h2');
  t.is(where.vf, undefined);
  // vn's disk was already on the export: h2 started it from there, it made no second disk.
  t.deepEqual(pools.get('shared')!.log, ['h1: provision /mnt/shared/vn-xvda.img']);
});
