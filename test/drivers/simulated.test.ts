import test from 'ava';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DirSimStore,
  MemorySimStore,
  SimulatedXenHost,
  provisionSimHost,
} from '../../src/drivers/hypervisor/simulated.ts';
import { renderDomainConfig, readDomainConfig } from '../../src/drivers/hypervisor/domain-config.ts';
import { HypervisorRefusal } from '../../src/drivers/hypervisor/hypervisor.ts';
import { SimulatedPower } from '../../src/drivers/power/simulated.ts';
import { host as hostSpec, template, vm } from '../site/helpers.ts';

async function twoHosts() {
  const store = new MemorySimStore();
  await provisionSimHost(store, { name: 'a', totalMemMiB: 2048, dom0MemMiB: 512, nrCpus: 4 });
  await provisionSimHost(store, { name: 'b', totalMemMiB: 2048, dom0MemMiB: 512, nrCpus: 4 });
  const t = { createMs: 0, shutdownMs: 0, migrateMsPerGiB: 0 };
  return { store, a: new SimulatedXenHost(store, 'a', t), b: new SimulatedXenHost(store, 'b', t) };
}
const cfg = (name: string, mem: number, vcpus = 1, maxmem = mem, maxvcpus = vcpus) =>
  renderDomainConfig({ ...vm(name, 'a', mem, vcpus) }, { ...template, maxMemMiB: maxmem, maxVcpus: maxvcpus });

test('renders an xl.cfg the simulator and xl both read, with the VM name in the disk path', (t) => {
  const c = renderDomainConfig(vm('web1', 'h', 512, 2), {
    ...template,
    disks: [{ target: '/srv/xen/disks/{vm}.img', vdev: 'xvda', format: 'raw', access: 'rw' }],
  });
  t.regex(c.text, /^name = "web1"$/m);
  t.regex(c.text, /^maxmem = 2048$/m);
  t.regex(c.text, /target=\/srv\/xen\/disks\/web1\.img/);
  t.regex(c.text, /^vif = \[ 'mac=00:16:3e:[0-9a-f:]+,bridge=xenbr0' \]$/m);
  t.deepEqual(readDomainConfig(c.text), {
    name: 'web1',
    memMiB: 512,
    maxMemMiB: 2048,
    vcpus: 2,
    maxVcpus: 8,
    nics: [{ mac: c.text.match(/mac=([0-9a-f:]+)/)![1]! }],
  });
  t.throws(() => renderDomainConfig(vm('x', 'h', 64), { ...template, kernel: '/k"\nextra="evil' }), {
    message: /refusing to write/,
  });
});

test('the simulator keeps memory accounts and refuses what xl refuses', async (t) => {
  const { a } = await twoHosts();
  await a.create(cfg('v1', 1024, 2, 1400, 4));
  t.is((await a.info()).freeMemMiB, 512);
  const dup = await t.throwsAsync(a.create(cfg('v1', 64)), { instanceOf: HypervisorRefusal });
  t.regex(dup!.message, /Domain with name "v1" already exists/);
  await t.throwsAsync(a.create(cfg('v2', 600)), { instanceOf: HypervisorRefusal, message: /failed to free memory/ });
  await t.throwsAsync(a.setMemory('v1', 1500), { message: /above maxmem 1400m/ });
  await a.setMemory('v1', 1200);
  await t.throwsAsync(a.setVcpus('v1', 5), { message: /greater than max vcpus/ });
  await a.setVcpus('v1', 3);
  t.like(await a.find('v1'), { memMiB: 1200, vcpus: 3, state: 'running' });
  await t.throwsAsync(a.destroy('nope'), { message: /nope is an invalid domain identifier \(rc=-6\)/ });
  const ids = (await a.list()).map((d) => d.domid);
  t.deepEqual(ids, [0, 1]);
});

test('migration moves a domain between simulated hosts only when the target has room', async (t) => {
  const { a, b } = await twoHosts();
  await a.create(cfg('v1', 1024));
  await b.create(cfg('fill', 1024));
  await t.throwsAsync(a.migrate('v1', { host: 'b', address: 'b' }), { message: /problems at target/ });
  t.truthy(await a.find('v1'), 'a failed migration resumes at the sender');
  await b.destroy('fill');
  await a.migrate('v1', { host: 'b', address: 'b' });
  t.is(await a.find('v1'), undefined);
  t.like(await b.find('v1'), { state: 'running', memMiB: 1024 });
});

test('state in a directory outlives the object driving it; power off empties the host', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'xsm-sim-'));
  const store = new DirSimStore(dir);
  await provisionSimHost(store, { name: 'h', totalMemMiB: 1024, nrCpus: 2, dom0MemMiB: 256 });
  await new SimulatedXenHost(store, 'h', { createMs: 0 }).create(cfg('v', 128));
  const again = new SimulatedXenHost(new DirSimStore(dir), 'h');
  t.like(await again.find('v'), { memMiB: 128 });
  const power = new SimulatedPower(again);
  await power.off();
  t.is(await power.status(), 'off');
  await t.throwsAsync(again.list(), { message: /powered off/ });
  await power.on();
  t.deepEqual(
    (await again.list()).map((d) => d.name),
    ['Domain-0'],
  );
  void hostSpec;
});

test('find answers like list for one domain and Domain-0, and a changed answer does not change the host', async (t) => {
  const { a } = await twoHosts();
  await a.create(cfg('v1', 256));
  const listed = (await a.list()).find((d) => d.name === 'v1')!;
  const found = (await a.find('v1'))!;
  t.deepEqual({ ...found, cpuTimeSec: 0 }, { ...listed, cpuTimeSec: 0 });
  t.is((await a.find('Domain-0'))!.domid, 0);
  t.is(await a.find('nope'), undefined);
  // Listings share one parse of each config: what a caller does to its copy stays with it.
  const mac = found.nics![0]!.mac;
  found.nics![0]!.mac = 'ff:ff:ff:ff:ff:ff';
  t.is((await a.find('v1'))!.nics![0]!.mac, mac);
  t.is((await a.list()).find((d) => d.name === 'v1')!.nics![0]!.mac, mac);
});

test('the simulator stops a domain by domid only while that instance runs, as xl does', async (t) => {
  const { a } = await twoHosts();
  await a.create(cfg('vm1', 256));
  const first = (await a.find('vm1'))!.domid;
  await a.shutdown('vm1', 1000, first);
  t.is(await a.find('vm1'), undefined);
  // A new instance under the same name (a resize's restart): the old domid is gone, so nothing stops.
  await a.create(cfg('vm1', 512));
  const second = (await a.find('vm1'))!;
  t.not(second.domid, first);
  await a.shutdown('vm1', 1000, first);
  t.like(await a.find('vm1'), { domid: second.domid, state: 'running', memMiB: 512 });
  await a.shutdown('vm1', 1000, second.domid);
  t.is(await a.find('vm1'), undefined);
});

test('a change to a simulated host that fails half-way leaves its state as it was, and a read cannot change it', async (t) => {
  const { store, a } = await twoHosts();
  await a.create(cfg('v1', 256));
  await a.writeConfigFile('web.cfg', 'memory = 256\n');
  const before = structuredClone(await store.read('a'));
  await t.throwsAsync(
    store.update('a', (s) => {
      s.domains[0]!.state = 'shutdown';
      s.domains.push({ ...s.domains[0]!, name: 'v2' });
      s.configFiles![0]!.text = 'memory = 1\n';
      s.nextDomid += 5;
      throw new HypervisorRefusal('a', 'refused half-way');
    }),
    { instanceOf: HypervisorRefusal },
  );
  t.deepEqual(await store.read('a'), before);
  const read = (await store.read('a'))!;
  t.throws(() => {
    read.domains[0]!.memMiB = 1;
  });
  t.throws(() => {
    read.configFiles![0]!.text = '';
  });
  // A change that ends well is kept, and the state it replaced is left alone.
  await store.update('a', (s) => {
    s.domains[0]!.memMiB = 128;
  });
  t.is((await store.read('a'))!.domains[0]!.memMiB, 128);
  t.is(read.domains[0]!.memMiB, 256);
});
