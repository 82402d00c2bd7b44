import test from 'ava';
import { mkdtemp, writeFile, readFile, rm } from 'node:fs/promises';
import { spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { LocalShell, type Shell } from '../../src/drivers/shell.ts';
import { IpmiPower } from '../../src/drivers/power/ipmi.ts';
import { RedfishPower } from '../../src/drivers/power/redfish.ts';
import { QmpPower, QmpClient } from '../../src/drivers/power/qmp.ts';
import { ManualPower, confirmManualPower } from '../../src/drivers/power/manual.ts';
import { RedisManualPowerStore } from '../../src/state/manual-power-store.ts';
import { connectRedis, redisConfigFromEnv } from '../../src/lib/redis.ts';
import { startRedfishSim } from './redfish-sim.ts';

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));

/** A Shell whose PATH finds the fake ipmitool first. */
function fakePathShell(dir: string): Shell {
  const local = new LocalShell();
  return {
    where: 'local',
    run: (p, a, o) =>
      local.run(p, a, { ...o, env: { ...o?.env, PATH: `${fixtures}:${process.env.PATH}`, FAKE_IPMI_DIR: dir } }),
  };
}

// The ipmitool driver's behaviour against a BMC is tested on ipmi_sim (test/drivers/ipmi-sim.test.ts); this fake
// stays for what a real BMC cannot show: that the password never reaches ipmitool's command line (-P).
test('ipmitool: never passes the password with -P and asks for status before acting', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'xsm-ipmi-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'password'), 's3cret');
  await writeFile(join(dir, 'pw'), 's3cret\n');
  const p = new IpmiPower(fakePathShell(dir), {
    host: '10.0.0.201',
    user: 'admin',
    passwordFile: join(dir, 'pw'),
    pollMs: 10,
  });
  t.is(await p.status(), 'off');
  await p.bootFromNetwork();
  await p.on();
  t.is(await p.status(), 'on');
  await p.on(); // already on: only a status query
  await p.off();
  t.is(await p.status(), 'off');
  t.is((await readFile(join(dir, 'bootdev'), 'utf8')).trim(), 'pxe');
  t.deepEqual((await readFile(join(dir, 'calls'), 'utf8')).trim().split('\n'), [
    'chassis power status',
    'chassis bootdev pxe',
    'chassis power status',
    'chassis power on',
    'chassis power status',
    'chassis power status',
    'chassis power status',
    'chassis power off',
    'chassis power status',
    'chassis power status',
  ]);
});

test('redfish: discovers the system, uses the advertised Reset target and PATCHes the boot override with If-Match', async (t) => {
  const sim = await startRedfishSim('root', 'calvin');
  t.teardown(() => sim.close());
  const p = new RedfishPower({ baseUrl: sim.url, user: 'root', password: 'calvin', pollMs: 10 });
  t.is(await p.status(), 'off');
  await p.bootFromNetwork();
  t.is(sim.state.boot.BootSourceOverrideTarget, 'Pxe');
  t.is(sim.state.boot.BootSourceOverrideEnabled, 'Once');
  await p.on();
  t.is(sim.state.power, 'On');
  await p.off();
  t.is(sim.state.power, 'Off');
  t.true(sim.state.requests.includes('PATCH /redfish/v1/Systems/System.Embedded.1 If-Match:W/"1"'));
  t.true(sim.state.requests.includes('POST /redfish/v1/Systems/System.Embedded.1/Actions/Custom/ComputerSystem.Reset'));
  const wrong = new RedfishPower({ baseUrl: sim.url, user: 'root', password: 'nope' });
  await t.throwsAsync(wrong.status(), {
    message: /redfish http:\/\/127\.0\.0\.1:\d+: GET \/redfish\/v1\/ answered 401/,
  });
});

const qemu = spawnSync('qemu-system-x86_64', ['--version']).status === 0;
(qemu ? test : test.skip)('qmp: a real QEMU (-S, no kernel) is powered on, off and set to network boot', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'xsm-qmp-'));
  const sock = join(dir, 'qmp.sock');
  const vm = spawn(
    'qemu-system-x86_64',
    [
      '-machine',
      'pc',
      '-accel',
      'tcg',
      '-m',
      '16',
      '-nodefaults',
      '-display',
      'none',
      '-S',
      '-no-shutdown',
      '-qmp',
      `unix:${sock},server=on,wait=off`,
    ],
    { stdio: 'ignore' },
  );
  t.teardown(async () => {
    vm.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });
  // QEMU binds the socket a moment before it listens on it (a connect in between is refused, as CI saw
  // once under load): wait until a QMP session opens, not just until the file exists.
  for (let i = 0; i < 200; i++) {
    const ready = await QmpClient.open(sock, 2000).then(
      (c) => (c.close(), true),
      () => false,
    );
    if (ready) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const p = new QmpPower(sock);
  t.is(await p.runState(), 'prelaunch');
  t.is(await p.status(), 'off');
  await p.bootFromNetwork();
  await p.on();
  t.is(await p.runState(), 'running');
  await p.off();
  t.is(await p.runState(), 'paused');
  await p.on();
  t.is(await p.status(), 'on');
  // Errors come back as QmpError matched by id, even with events arriving in between.
  const c = await QmpClient.open(sock);
  await t.throwsAsync(c.execute('no-such-command'), { message: /CommandNotFound/ });
  c.close();
});

test('manual: on() waits for the operator confirmation stored in Redis', async (t) => {
  const redis = connectRedis(redisConfigFromEnv());
  const prefix = `xsm-test-${randomBytes(4).toString('hex')}`;
  t.teardown(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  });
  const requests = new RedisManualPowerStore(redis, prefix);
  const p = new ManualPower(requests, 'xen01', { pollMs: 20, timeoutMs: 5000 });
  const pending = p.on();
  // Wait for the request to be written (not a fixed delay: the suite runs under load).
  for (let i = 0; i < 200 && !(await requests.pending('xen01')); i++) await new Promise((r) => setTimeout(r, 10));
  t.is(await p.status(), 'unknown');
  t.true(await confirmManualPower(requests, 'xen01'));
  await pending;
  t.is(await p.status(), 'on');
  const slow = new ManualPower(requests, 'xen02', { pollMs: 20, timeoutMs: 100 });
  await t.throwsAsync(slow.off(), { message: /manual xen02: nobody confirmed "off"/ });
});
