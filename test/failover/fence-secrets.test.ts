// Fencing reads a BMC password only through the power policy: when the file is refused, the fence fails
// (after its retries), nothing is sent to the BMC, and no VM is restarted elsewhere. With a proper file
// the same host is fenced over HTTPS, which proves the refusal is the file's doing.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { chmod, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestSite, type TestSite } from '../integration/harness.ts';
import { siteXml, type HostLine } from '../integration/fixtures.ts';
import { checkHosts, failoverJobId, type FailoverPolicy } from '../../src/services/health-check.ts';
import { startRedfishSim, type RedfishSim } from '../deploy/redfish-sim.ts';

const POLICY: FailoverPolicy = { suspectAfterMs: 400, fenceAfterMs: 300, maxDeadFraction: 0.5 };

// The lab settings this file needs: the BMC simulator listens on loopback; secrets live in a temp directory.
const dir = mkdtempSync(join(tmpdir(), 'xsm-fence-'));
const secrets = join(dir, 'secrets');
mkdirSync(secrets, { mode: 0o700 });
process.env.XSM_SECRETS_DIR = secrets;
process.env.XSM_POWER_ALLOW_LOCAL = '1';
test.after.always(() => rm(dir, { recursive: true, force: true }));

let tls: { key: string; cert: string } | undefined;
try {
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1'].concat([
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
      '-subj',
      '/CN=bmc.test',
    ]),
    { stdio: 'ignore' },
  );
  tls = { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
} catch {
  tls = undefined;
}

async function failHost(s: TestSite, host: string): Promise<{ state: string; reason: string }> {
  await s.agents.get(host)!.close();
  s.agents.delete(host);
  const until = Date.now() + 30000;
  for (;;) {
    await checkHosts(s.rt, POLICY);
    const h = await s.rt.failover.health(host);
    if (h && h.state !== 'suspect') {
      const job = await s.rt.control().getJob(failoverJobId(host, h.incident));
      const state = job ? await job.getState() : 'missing';
      if (state === 'completed' || state === 'failed') return { state, reason: job?.failedReason ?? '' };
    }
    if (Date.now() > until) throw new Error(`failover of ${host} did not finish`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function siteWithBmc(t: import('ava').ExecutionContext, mode: number): Promise<{ s: TestSite; sim: RedfishSim }> {
  const sim = await startRedfishSim('root', 'calvin', { tls: tls! });
  sim.state.power = 'On';
  const passwordFile = join(secrets, `h1-${mode.toString(8)}`);
  await writeFile(passwordFile, 'calvin\n');
  await chmod(passwordFile, mode);
  const hosts: HostLine[] = [
    {
      name: 'h1',
      memMiB: 2048,
      power: { driver: 'redfish', address: sim.url, user: 'root', passwordFile, insecureTls: true },
    },
    { name: 'h2', memMiB: 2048 },
    { name: 'h3', memMiB: 2048 },
  ];
  const s = await startTestSite(hosts);
  t.teardown(async () => {
    await s.close();
    await sim.close();
  });
  const v1 = await s.submitAndApply(
    siteXml(hosts, [
      { name: 'a', host: 'h1', mem: 512 },
      { name: 'b', host: 'h2', mem: 512 },
    ]),
  );
  await s.waitConverged(v1);
  return { s, sim };
}

test('fencing with a world-readable password file fails and sends nothing to the BMC', async (t) => {
  if (!tls) return t.pass('openssl is not installed: cannot make a certificate for the HTTPS BMC');
  const { s, sim } = await siteWithBmc(t, 0o644);
  const v1 = await s.rt.sites.currentVersion();
  const { state, reason } = await failHost(s, 'h1');
  t.is(state, 'failed');
  t.regex(
    reason,
    /fencing h1 failed \(no power driver: host h1: BMC password file .* has mode 0644 \(group read, others read\); it was not read/,
  );
  t.deepEqual(sim.state.requests, [], 'no request, so no password, reached the BMC');
  t.deepEqual(sim.state.authorizations, []);
  t.is(sim.state.power, 'On');
  t.is(await s.rt.sites.currentVersion(), v1, 'no VM was restarted elsewhere');
});

test('fencing with an owner-only password file switches the host off over HTTPS', async (t) => {
  if (!tls) return t.pass('openssl is not installed: cannot make a certificate for the HTTPS BMC');
  const { s, sim } = await siteWithBmc(t, 0o600);
  const { state } = await failHost(s, 'h1');
  t.is(state, 'completed');
  t.is(sim.state.power, 'Off');
  t.true(sim.state.authorizations.length > 0);
  t.true(sim.state.authorizations.every((a) => a === `Basic ${Buffer.from('root:calvin').toString('base64')}`));
});
