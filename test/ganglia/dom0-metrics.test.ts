import test from 'ava';
import { MemorySimStore, SimulatedXenHost, provisionSimHost } from '../../src/drivers/hypervisor/simulated.ts';
import type { GmetricSpec } from '../../src/ganglia/gmetric.ts';
import { vmMetricsPublisher } from '../../src/ganglia/vm-metrics.ts';

test("Domain-0 is published like a guest, as dom0_* metrics on the Dom0's own Ganglia host", async (t) => {
  const store = new MemorySimStore();
  await provisionSimHost(store, { name: 'xen01', totalMemMiB: 4096, dom0MemMiB: 768, nrCpus: 4 });
  const hv = new SimulatedXenHost(store, 'xen01', { createMs: 0 });
  await hv.create({ name: 'web1', text: 'name = "web1"\nmemory = 256\nvcpus = 1\n' });
  const sent: GmetricSpec[][] = [];
  const sender = { send: (m: GmetricSpec[]) => Promise.resolve(void sent.push(m)), close: () => {} };
  const publish = vmMetricsPublisher(hv, sender as never, '10.0.0.1');
  const first = await publish(1000);
  const dom0 = first.filter((m) => m.name.startsWith('dom0_'));
  t.deepEqual(dom0.map((m) => m.name).sort(), [
    'dom0_cpu_time',
    'dom0_mem_max',
    'dom0_mem_used',
    'dom0_state',
    'dom0_vcpus_avail',
    'dom0_vcpus_online',
  ]);
  t.true(dom0.every((m) => m.spoof === '10.0.0.1:xen01' && m.group === 'xen_dom0'));
  t.is(dom0.find((m) => m.name === 'dom0_mem_used')!.value, 768);
  t.is(first.find((m) => m.name === 'vm_count')!.value, 1, 'Domain-0 is not counted as a VM');
  t.false(
    first.some((m) => m.spoof === 'Domain-0:Domain-0'),
    'nor spoofed as a VM host of its own',
  );
  // The second sample gives its CPU use, from the CPU-time delta.
  const second = await publish(3000);
  t.truthy(second.find((m) => m.name === 'dom0_cpu_pct'));
  t.is(sent.length, 2);
});
