// The ipmitool driver against a real BMC implementation: OpenIPMI's ipmi_sim over IPMI 2.0 LAN (lanplus) on
// loopback, with a chassis-control hook that keeps the simulated power state (test/drivers/ipmi-sim.ts).

import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IpmiPower, type IpmiOptions } from '../../src/drivers/power/ipmi.ts';
import { LocalShell } from '../../src/drivers/shell.ts';
import { silentLogger } from '../../src/lib/log.ts';
import { memoryRuntime } from '../../src/runtime/service-runtime.ts';
import type { XsmRuntime } from '../../src/runtime/runtime.ts';
import { serializeSite } from '../../src/site/serialize.ts';
import { failoverSteps, type FailoverContext } from '../../workflows/failover-host.ts';
import { host, template, vm } from '../site/helpers.ts';
import { haveIpmiSim, startIpmiSim, type IpmiSim } from './ipmi-sim.ts';

const withSim = haveIpmiSim ? test.serial : test.serial.skip;

function driver(sim: IpmiSim, opts: Partial<IpmiOptions> = {}): IpmiPower {
  return new IpmiPower(new LocalShell(), {
    host: '127.0.0.1',
    port: sim.port,
    user: sim.user,
    password: sim.password,
    timeoutS: 1,
    retries: 1,
    pollMs: 50,
    ...opts,
  });
}

withSim('ipmitool drives ipmi_sim: status, on, off and cycle change the chassis the hook keeps', async (t) => {
  const sim = await startIpmiSim('off');
  t.teardown(() => sim.stop());
  const p = driver(sim);
  t.is(await p.status(), 'off');
  await p.on();
  t.is(await sim.power(), 'on');
  t.is(await p.status(), 'on');
  await p.cycle();
  t.is(await p.status(), 'on', 'a cycle ends on');
  await p.off();
  t.is(await sim.power(), 'off');
  t.is(await p.status(), 'off');
  await p.off(); // already off: one status query, nothing sent
  const calls = await sim.calls();
  t.deepEqual(
    calls.filter((c) => c.startsWith('set')),
    ['set power 1', 'set power 0', 'set power 1', 'set power 0'],
    'the cycle reached the chassis as off then on',
  );
});

withSim('ipmitool sets the next boot to PXE on ipmi_sim, with the password from a file', async (t) => {
  const sim = await startIpmiSim('off');
  t.teardown(() => sim.stop());
  const dir = await mkdtemp(join(tmpdir(), 'xsm-ipmi-pw-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'pw'), `${sim.password}\n`);
  const p = driver(sim, { password: undefined, passwordFile: join(dir, 'pw') });
  t.is(await sim.boot(), 'default');
  await p.bootFromNetwork();
  t.is(await sim.boot(), 'pxe');
  await p.on();
  t.is(await sim.power(), 'on');
});

withSim('a wrong password is refused by ipmi_sim and the error names the BMC; the chassis is untouched', async (t) => {
  const sim = await startIpmiSim('on');
  t.teardown(() => sim.stop());
  const p = driver(sim, { password: 'not-the-password' });
  await t.throwsAsync(p.off(), {
    message: /^ipmi 127\.0\.0\.1: ipmitool chassis power status exited 1: .*(Unable to establish|RAKP)/s,
  });
  t.is(await sim.power(), 'on');
  t.deepEqual(await sim.calls(), [], 'no chassis call was made');
});

withSim('a BMC that stops answering mid-fence fails the fence, and failover restarts nothing', async (t) => {
  const sim = await startIpmiSim('on');
  t.teardown(() => sim.stop());
  const rt = memoryRuntime();
  const ipmi = driver(sim, { offTimeoutMs: 3000 });
  // The BMC takes the power-off request, then freezes before anyone can read the chassis state back.
  const freezing: IpmiPower = Object.create(ipmi) as IpmiPower;
  freezing.status = async () => {
    const s = await ipmi.status();
    if ((await sim.calls()).includes('set power 0')) sim.freeze();
    return s;
  };
  freezing.off = async () => {
    await IpmiPower.prototype.off.call(freezing);
  };
  const ctx: FailoverContext = {
    rt: rt as unknown as XsmRuntime,
    data: { host: 'h1', incident: 1 },
    power: () => Promise.resolve(freezing),
    lastAttempt: true,
  };
  await rt.sites.submit(
    serializeSite({
      sets: [{ name: 's', vms: ['a'] }],
      hosts: [host('h1', 4096), host('h2', 4096)],
      templates: [template],
      vms: [vm('a', 'h1', 256)],
    }),
    { base: 0, author: 't', reason: 'v1' },
  );
  const fence = failoverSteps.find((s) => s.name === 'fence')!;
  const srt = { log: silentLogger, report: () => Promise.resolve(), resumed: false };
  const started = Date.now();
  await t.throwsAsync(fence.run(ctx, srt), {
    message: /^fencing h1 failed \(ipmi 127\.0\.0\.1: .*\); none of its VMs was restarted elsewhere/s,
  });
  t.true(Date.now() - started < 20_000, 'a frozen BMC fails the fence within ipmitool timeouts');
  t.true((await sim.calls()).includes('set power 0'), 'the power-off reached the chassis before the BMC froze');
  t.is((await rt.failover.health('h1'))!.state, 'fence-failed');
  t.is(await rt.sites.currentVersion(), 1, 'no version restarts its VMs');
  t.is(await rt.fence.epoch('h1'), 1, 'its epoch was raised all the same: what it had queued stays refused');
});
