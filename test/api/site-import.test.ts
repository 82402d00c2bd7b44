// The paper's config files on the simulator, through the API: Figure 3 runs two distinct guests from
// apache_svr.cfg and mysql_svr.cfg; a file missing on a target host is refused at plan time; and
// `site import` gives a file that applies with no changes planned.
import test from 'ava';
import { readFile } from 'node:fs/promises';
import { readDomainConfig } from '../../src/drivers/hypervisor/domain-config.ts';
import { eventually, withApi } from './with-api.ts';

const PAPER = ['192.168.5.101', '192.168.5.102', '192.168.5.103', '192.168.5.104'].map((name) => ({
  name,
  memMiB: 1536,
  cpus: 4,
}));
const paperXml = () => readFile(new URL('../../src/demo/paper-site.xml', import.meta.url), 'utf8');

test('Figure 3 runs vm1 from apache_svr.cfg and vm4 from mysql_svr.cfg: two different guests', async (t) => {
  const { s, call } = await withApi(t, PAPER);
  t.is((await call('POST', '/api/site?base=0', 'admin', { xml: await paperXml() })).status, 201);
  await s.waitConverged(1);
  const config = async (host: string, vm: string) =>
    (await s.store.read(host))!.domains.find((d) => d.name === vm)!.config;
  const vm1 = await config('192.168.5.101', 'vm1');
  const vm4 = await config('192.168.5.104', 'vm4');
  t.true(vm1.includes('kernel  = "/srv/xen/kernels/vmlinuz"') && !vm1.includes('pygrub'));
  t.true(vm4.includes('bootloader = "pygrub"') && vm4.includes("'phy:/dev/vg0/mysql-data,xvdb,w'"));
  // Each with its own name, size and MAC from the site file.
  t.like(readDomainConfig(vm1), { name: 'vm1', memMiB: 96, vcpus: 4, nics: [{ mac: 'aa:00:00:00:00:01' }] });
  t.like(readDomainConfig(vm4), { name: 'vm4', memMiB: 96, vcpus: 4, nics: [{ mac: 'aa:00:00:00:00:04' }] });
});

test('moving vm4 to a Dom0 without mysql_svr.cfg is refused at plan time, naming file and host; nothing stored', async (t) => {
  const { s, call } = await withApi(t, PAPER);
  const paper = await paperXml();
  await call('POST', '/api/site?base=0', 'admin', { xml: paper });
  await s.waitConverged(1);
  await s.hv.get('192.168.5.102')!.removeConfigFile('mysql_svr.cfg');
  await eventually(
    async () => !(await s.rt.observed.host('192.168.5.102'))?.configFiles?.some((f) => f.name === 'mysql_svr.cfg'),
    10_000,
    'the agent reporting the removed file',
  );
  const moved = paper.replace(/(<VM name="vm4"[\s\S]*?<DOM0>)192\.168\.5\.104/, '$1192.168.5.102');
  const r = await call('POST', '/api/site?base=1', 'operator', { xml: moved });
  t.is(r.status, 422);
  t.is(r.body.error.code, 'impossible-plan');
  t.regex(
    r.body.error.message,
    /^a config file is missing; nothing was stored:\nupload\.xml:29:5: VM\[name=vm4\]@config: config file \/etc\/xen\/mysql_svr\.cfg is missing on host 192\.168\.5\.102/,
  );
  t.is(await s.rt.sites.currentVersion(), 1);
  t.deepEqual(await s.where(), {
    vm1: '192.168.5.101',
    vm2: '192.168.5.102',
    vm3: '192.168.5.103',
    vm4: '192.168.5.104',
  });
});

test('site import: running domains, their config files and hosts become a site file that applies with no changes', async (t) => {
  const { s, call } = await withApi(t, PAPER);
  await call('POST', '/api/site?base=0', 'admin', { xml: await paperXml() });
  await s.waitConverged(1);
  // Someone started web3 by hand from its own config file, and a stray guest from a file elsewhere.
  const h3 = s.hv.get('192.168.5.103')!;
  await h3.writeConfigFile(
    'web3.cfg',
    'name = "web3"\ntype = "pvh"\nkernel = "/k"\nmemory = 64\nvcpus = 2\nvif = [ "mac=00:16:3e:00:00:33,bridge=xenbr0" ]\n',
  );
  await h3.createFromFile('/etc/xen/web3.cfg');
  await s.hv.get('192.168.5.104')!.create({ name: 'stray', text: 'name = "stray"\nmemory = 32\n' });
  await eventually(async () => {
    const o = await s.rt.observed.all();
    return (
      o.hosts['192.168.5.103']?.domains.some((d) => d.name === 'web3') &&
      o.hosts['192.168.5.104']?.domains.some((d) => d.name === 'stray')
    );
  });
  t.is((await call('GET', '/api/site/import', 'viewer')).status, 403);
  const imported = await call('GET', '/api/site/import', 'operator');
  t.is(imported.status, 200);
  t.like(imported.body, { base: 1, hosts: 4, vms: 5 });
  t.true(imported.body.xml.includes('<VM name="web3" config="web3">'));
  t.deepEqual(imported.body.notes, [
    'domain stray on 192.168.5.104 is left out: no config file in /etc/xen gives its name; write one (`xl list -l stray` shows its config) and import again',
  ]);
  // Applied as it is: a new version, and nothing to do.
  const submitted = await call('POST', '/api/site?base=1', 'operator', { xml: imported.body.xml });
  t.is(submitted.status, 201, JSON.stringify(submitted.body));
  t.deepEqual(submitted.body.plan.actions, []);
  await s.waitConverged(2);
  t.deepEqual(await s.where(), {
    vm1: '192.168.5.101',
    vm2: '192.168.5.102',
    vm3: '192.168.5.103',
    vm4: '192.168.5.104',
    web3: '192.168.5.103',
    stray: '192.168.5.104',
  });
  // Imported again, the same file: submitting it changes nothing.
  const again = await call('GET', '/api/site/import', 'operator');
  t.is(again.body.xml, imported.body.xml);
  const same = await call('POST', '/api/site?base=2', 'operator', { xml: again.body.xml });
  t.like(same.body, { unchanged: true, version: 2 });
});
