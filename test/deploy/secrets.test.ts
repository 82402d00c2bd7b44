// powerFor opens a BMC secret only when it is what the policy promises (inside the secrets directory after
// symlinks, a regular file, owner-only), sends it only to a remote BMC over verified TLS unless the host
// opts out, and talks QMP only on sockets inside the QMP directory. A refused secret is never sent.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MemoryManualPowerStore } from '../../src/state/manual-power-store.ts';
import { powerFor } from '../../src/drivers/power/select.ts';
import { RedfishPower } from '../../src/drivers/power/redfish.ts';
import { LocalShell, type Shell } from '../../src/drivers/shell.ts';
import type { PowerSpec } from '../../src/site/model.ts';
import type { PowerPolicy } from '../../src/site/power-policy.ts';
import { startRedfishSim } from './redfish-sim.ts';

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));

interface Lab {
  dir: string;
  secrets: string;
  qmp: string;
  policy: PowerPolicy;
}

async function lab(t: { teardown(fn: () => Promise<void>): void }, allowLocal = false): Promise<Lab> {
  const dir = await mkdtemp(join(tmpdir(), 'xsm-secrets-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const secrets = join(dir, 'secrets');
  const qmp = join(dir, 'qmp');
  await mkdir(secrets, { mode: 0o700 });
  await mkdir(qmp, { mode: 0o700 });
  return { dir, secrets, qmp, policy: { secretsDir: secrets, qmpDir: qmp, allowLocal } };
}

async function secret(path: string, content: string, mode: number): Promise<string> {
  await writeFile(path, content);
  await chmod(path, mode);
  return path;
}

function deps(policy: PowerPolicy, shell: Shell = new LocalShell()) {
  return { shell, manual: new MemoryManualPowerStore(), policy };
}

/** A Shell whose PATH finds the fake ipmitool first. */
function fakeIpmi(dir: string): Shell {
  const local = new LocalShell();
  return {
    where: 'local',
    run: (p, a, o) =>
      local.run(p, a, { ...o, env: { ...o?.env, PATH: `${fixtures}:${process.env.PATH}`, FAKE_IPMI_DIR: dir } }),
  };
}

function selfSignedCert(dir: string): { key: string; cert: string } | undefined {
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=bmc.test',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
      ],
      { stdio: 'ignore' },
    );
  } catch {
    return undefined;
  }
  return {
    key: readFileSync(join(dir, 'key.pem'), 'utf8'),
    cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
  };
}

test('passwordFile=/proc/self/environ is refused at use and never read', async (t) => {
  const l = await lab(t);
  const spec: PowerSpec = { driver: 'ipmi', address: '10.0.0.201', user: 'admin', passwordFile: '/proc/self/environ' };
  await t.throwsAsync(powerFor('xen01', spec, deps(l.policy)), {
    message: new RegExp(
      `BMC password file /proc/self/environ resolves to /proc/\\d+/environ, outside the secrets directory ${l.secrets}; it was not read`,
    ),
  });
});

test('a symlink from the secrets directory to a file outside it is refused', async (t) => {
  const l = await lab(t);
  const outside = await secret(join(l.dir, 'elsewhere'), 'stolen', 0o600);
  await symlink(outside, join(l.secrets, 'xen01'));
  const spec: PowerSpec = {
    driver: 'redfish',
    address: '10.0.0.201',
    user: 'root',
    passwordFile: join(l.secrets, 'xen01'),
  };
  await t.throwsAsync(powerFor('xen01', spec, deps(l.policy)), {
    message: `host xen01: BMC password file ${join(l.secrets, 'xen01')} resolves to ${outside}, outside the secrets directory ${l.secrets}; it was not read (keep BMC passwords as regular files in ${l.secrets} (no links out of it))`,
  });
  // A link that stays inside the directory is fine.
  await secret(join(l.secrets, 'real'), 'pw', 0o600);
  await symlink(join(l.secrets, 'real'), join(l.secrets, 'alias'));
  const ok = await powerFor('xen01', { ...spec, passwordFile: join(l.secrets, 'alias') }, deps(l.policy));
  t.is(ok.describe, 'redfish https://10.0.0.201');
});

test('a secret readable by group or others is refused, naming the bits; a directory is refused', async (t) => {
  const l = await lab(t);
  const spec = (file: string): PowerSpec => ({ driver: 'ipmi', address: '10.0.0.201', user: 'a', passwordFile: file });
  const world = await secret(join(l.secrets, 'world'), 'pw', 0o644);
  await t.throwsAsync(powerFor('xen01', spec(world), deps(l.policy)), {
    message: `host xen01: BMC password file ${world} has mode 0644 (group read, others read); it was not read (chmod 600 ${world})`,
  });
  const group = await secret(join(l.secrets, 'group'), 'pw', 0o620);
  await t.throwsAsync(powerFor('xen01', spec(group), deps(l.policy)), { message: /mode 0620 \(group write\)/ });
  const sub = join(l.secrets, 'sub');
  await mkdir(sub, { mode: 0o700 });
  await t.throwsAsync(powerFor('xen01', spec(sub), deps(l.policy)), { message: /is not a regular file/ });
  const redfish: PowerSpec = { ...spec(world), driver: 'redfish' };
  await t.throwsAsync(powerFor('xen01', redfish, deps(l.policy)), { message: /has mode 0644/ });
});

test('ipmitool gets the checked real path of the password file', async (t) => {
  const l = await lab(t);
  await secret(join(l.secrets, 'real'), 's3cret\n', 0o400);
  await symlink('real', join(l.secrets, 'xen01'));
  const fake = join(l.dir, 'fake-ipmi');
  await mkdir(fake);
  await writeFile(join(fake, 'password'), 's3cret');
  const p = await powerFor(
    'xen01',
    { driver: 'ipmi', address: '10.0.0.201', user: 'admin', passwordFile: join(l.secrets, 'xen01') },
    deps(l.policy, fakeIpmi(fake)),
  );
  t.is(await p.status(), 'off');
  t.regex(await readFile(join(fake, 'calls'), 'utf8'), /chassis power status/);
});

test('redfish to 127.0.0.1 is refused without the lab setting, before the password file is opened', async (t) => {
  const l = await lab(t);
  const spec: PowerSpec = {
    driver: 'redfish',
    address: 'https://127.0.0.1:8443',
    user: 'root',
    passwordFile: join(l.secrets, 'missing'),
  };
  await t.throwsAsync(powerFor('xen01', spec, deps(l.policy)), {
    message: /host xen01: Redfish host 127\.0\.0\.1 is a loopback address; a BMC must be a remote host/,
  });
  await t.throwsAsync(powerFor('xen01', { ...spec, address: 'http://10.0.0.201' }, deps(l.policy)), {
    message: /uses http, which would send the BMC password in clear/,
  });
});

test('redfish verifies the BMC certificate unless the host opts out; a refused handshake sends no password', async (t) => {
  const l = await lab(t, true);
  const tls = selfSignedCert(l.dir);
  if (!tls) return t.pass('openssl is not installed: cannot make a certificate for the HTTPS BMC');
  const sim = await startRedfishSim('root', 'calvin', { tls });
  t.teardown(() => sim.close());
  const spec: PowerSpec = {
    driver: 'redfish',
    address: sim.url,
    user: 'root',
    passwordFile: await secret(join(l.secrets, 'bmc'), 'calvin\n', 0o600),
  };
  const verified = await powerFor('xen01', spec, deps(l.policy));
  await t.throwsAsync(verified.status(), { message: /self-signed certificate/ });
  t.deepEqual(sim.state.requests, [], 'nothing reached the BMC');
  const optedOut = await powerFor('xen01', { ...spec, insecureTls: true }, deps(l.policy));
  t.is(await optedOut.status(), 'off');
  await optedOut.on();
  t.is(sim.state.power, 'On');
  t.true(sim.state.authorizations.every((a) => a === `Basic ${Buffer.from('root:calvin').toString('base64')}`));
});

test('a BMC name that resolves to a loopback address is refused before connecting', async (t) => {
  const sim = await startRedfishSim('root', 'calvin');
  t.teardown(() => sim.close());
  const port = new URL(sim.url).port;
  const guarded = new RedfishPower({
    baseUrl: `http://localhost:${port}`,
    user: 'root',
    password: 'calvin',
    refuseAddress: (ip) => (ip === '127.0.0.1' || ip === '::1' ? `resolves to ${ip}, a loopback address` : undefined),
  });
  await t.throwsAsync(guarded.status(), { message: /localhost: resolves to (127\.0\.0\.1|::1), a loopback address/ });
  const literal = new RedfishPower({
    ...{ baseUrl: sim.url, user: 'root', password: 'calvin' },
    refuseAddress: () => 'no',
  });
  await t.throwsAsync(literal.status(), { message: /no/ });
  t.deepEqual(sim.state.requests, []);
});

test('a QMP socket reached through a symlink out of the QMP directory is refused at every connection', async (t) => {
  const l = await lab(t);
  const outside = join(l.dir, 'other.sock');
  const server = createServer((c) => c.end()).listen(outside);
  await once(server, 'listening');
  t.teardown(async () => {
    server.close();
  });
  await symlink(outside, join(l.qmp, 'node1.qmp'));
  const p = await powerFor('node1', { driver: 'qmp', address: join(l.qmp, 'node1.qmp') }, deps(l.policy));
  await t.throwsAsync(p.status(), {
    message: `host node1: QMP socket ${join(l.qmp, 'node1.qmp')} resolves to ${outside}, outside the QMP directory ${l.qmp} (give the machine's QMP socket in ${l.qmp} (XSM_QMP_DIR))`,
  });
  await t.throwsAsync(powerFor('node1', { driver: 'qmp', address: outside }, deps(l.policy)), {
    message: /QMP socket .* is outside the QMP directory/,
  });
});
