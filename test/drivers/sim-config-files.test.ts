import test from 'ava';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { MemorySimStore, SimulatedXenHost, provisionSimHost } from '../../src/drivers/hypervisor/simulated.ts';
import { buildDomainConfig } from '../../src/drivers/hypervisor/domain-config.ts';
import { HypervisorRefusal } from '../../src/drivers/hypervisor/hypervisor.ts';
import { configFileTemplate } from '../../src/site/templates.ts';
import { vm } from '../site/helpers.ts';

const apache = readFileSync(new URL('../site/fixtures/xl/apache_svr.cfg', import.meta.url), 'utf8');
const mysql = readFileSync(new URL('../site/fixtures/xl/mysql_svr.cfg', import.meta.url), 'utf8');
const sha = (text: string) => createHash('sha256').update(text).digest('hex');

async function dom0() {
  const store = new MemorySimStore();
  await provisionSimHost(store, { name: 'xen01', totalMemMiB: 4096, dom0MemMiB: 512, nrCpus: 4 });
  return new SimulatedXenHost(store, 'xen01', { createMs: 0, shutdownMs: 0, migrateMsPerGiB: 0 });
}

test('a simulated Dom0 holds the config files an operator writes and reports each with its hash and domain name', async (t) => {
  const hv = await dom0();
  t.deepEqual(await hv.configFiles(), { dir: '/etc/xen', files: [] });
  await hv.writeConfigFile('mysql_svr.cfg', mysql);
  await hv.writeConfigFile('apache_svr.cfg', apache);
  t.deepEqual(await hv.configFiles(), {
    dir: '/etc/xen',
    files: [
      { name: 'apache_svr.cfg', sha256: sha(apache), domain: 'apache_svr' },
      { name: 'mysql_svr.cfg', sha256: sha(mysql), domain: 'mysql_svr' },
    ],
  });
  t.is(await hv.readConfigFile('apache_svr.cfg'), apache);
  t.is(await hv.readConfigFile('../shadow.cfg'), undefined);
  await t.throwsAsync(hv.writeConfigFile('../x.cfg', 'name="x"'), { instanceOf: HypervisorRefusal });
  await hv.removeConfigFile('mysql_svr.cfg');
  t.deepEqual(
    (await hv.configFiles()).files.map((f) => f.name),
    ['apache_svr.cfg'],
  );
});

test('`xl create /etc/xen/FILE` on the simulator runs the file as written; a missing file is refused as xl does', async (t) => {
  const hv = await dom0();
  await hv.writeConfigFile('mysql_svr.cfg', mysql);
  await hv.createFromFile('/etc/xen/mysql_svr.cfg');
  const d = await hv.find('mysql_svr');
  t.like(d, { memMiB: 256, vcpus: 2, nics: [{ mac: '00:16:3e:dd:00:04', ip: '192.168.5.40' }] });
  await t.throwsAsync(hv.createFromFile('/etc/xen/apache_svr.cfg'), {
    instanceOf: HypervisorRefusal,
    message: 'xen01: Failed to read config file: /etc/xen/apache_svr.cfg: No such file or directory',
  });
});

test("a VM of the paper's format is created from its Dom0's file with its own name, size and MAC over it", async (t) => {
  const hv = await dom0();
  await hv.writeConfigFile('apache_svr.cfg', apache);
  await hv.writeConfigFile('mysql_svr.cfg', mysql);
  const vm1 = { ...vm('vm1', 'xen01', 96, 4), hwaddr: 'aa:00:00:00:00:01' };
  const vm4 = { ...vm('vm4', 'xen01', 128, 2), hwaddr: 'aa:00:00:00:00:04' };
  await hv.create(await buildDomainConfig(hv, vm1, configFileTemplate('apache_svr')));
  await hv.create(await buildDomainConfig(hv, vm4, configFileTemplate('mysql_svr')));
  // Two distinct guests: each keeps its own file's ceilings and devices.
  t.like(await hv.find('vm1'), {
    memMiB: 96,
    maxMemMiB: 512,
    vcpus: 4,
    maxVcpus: 4,
    nics: [{ mac: 'aa:00:00:00:00:01' }],
  });
  t.like(await hv.find('vm4'), {
    memMiB: 128,
    maxMemMiB: 128,
    vcpus: 2,
    maxVcpus: 2,
    nics: [{ mac: 'aa:00:00:00:00:04' }],
  });
  const state = await hv.store.read('xen01');
  const config = (name: string) => state!.domains.find((d) => d.name === name)!.config;
  t.true(config('vm1').includes('bootloader = "pygrub"'));
  t.true(config('vm4').includes('kernel  = "/srv/xen/kernels/vmlinuz-6.1.0-18-amd64"'));
  // The operator's file is untouched.
  t.is(await hv.readConfigFile('apache_svr.cfg'), apache);
});

test('a config file missing at create time is a refusal naming the file and the host', async (t) => {
  const hv = await dom0();
  await t.throwsAsync(buildDomainConfig(hv, vm('vm1', 'xen01', 96), configFileTemplate('apache_svr')), {
    instanceOf: HypervisorRefusal,
    message:
      'xen01: config file /etc/xen/apache_svr.cfg for vm1 is not there; put it back (the plan saw it) and retry the job',
  });
  await hv.writeConfigFile('apache_svr.cfg', 'name = "x"\nmemory = \n');
  await t.throwsAsync(buildDomainConfig(hv, vm('vm1', 'xen01', 96), configFileTemplate('apache_svr')), {
    instanceOf: HypervisorRefusal,
    message: 'xen01: config file apache_svr.cfg:2:10: a setting needs a value',
  });
});
