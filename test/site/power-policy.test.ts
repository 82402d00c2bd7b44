// Where a site file's <Power> may point: BMC addresses per driver, the secrets directory, the QMP directory.
// Each refusal is a located site-file error, so the admin who wrote it knows which line to fix.
import test from 'ava';
import { loadSite } from '../../src/site/parse.ts';
import { formatIssue, type LoadResult } from '../../src/site/model.ts';
import { serializeSite } from '../../src/site/serialize.ts';
import { localAddressKind, powerPolicyFromEnv, type PowerPolicy } from '../../src/site/power-policy.ts';

const POLICY: PowerPolicy = { secretsDir: '/etc/xsm/secrets', qmpDir: '/run/xsm/qmp', allowLocal: false };
const LAB: PowerPolicy = { ...POLICY, allowLocal: true };

/** A one-host site whose <Power> is on line 3, column 7. */
function withPower(power: string): string {
  return [
    '<XSMConfig>',
    '  <Hosts><Host name="xen01" address="10.0.0.1" cpus="4" memory="1024">',
    `      ${power}`,
    '  </Host></Hosts>',
    '</XSMConfig>',
  ].join('\n');
}

function errors(r: LoadResult): string[] {
  return r.ok ? [] : r.errors.map(formatIssue);
}

const redfish = (address: string, extra = '') =>
  withPower(`<Power driver="redfish" address="${address}" user="root" passwordFile="/etc/xsm/secrets/xen01"${extra}/>`);
const ipmi = (address: string) =>
  withPower(`<Power driver="ipmi" address="${address}" user="admin" passwordFile="/etc/xsm/secrets/xen01"/>`);

test('redfish to 127.0.0.1 is refused at its place without the lab setting, and accepted with it', (t) => {
  t.deepEqual(errors(loadSite(redfish('https://127.0.0.1:8443'), 's.xml', { power: POLICY })), [
    's.xml:3:7: Host[name=xen01]/Power@address: Redfish host 127.0.0.1 is a loopback address; a BMC must be a remote host (XSM_POWER_ALLOW_LOCAL=1 allows this in a lab only)',
  ]);
  t.true(loadSite(redfish('https://127.0.0.1:8443'), 's.xml', { power: LAB }).ok);
});

test('every local kind of BMC address is refused for ipmi and redfish', (t) => {
  const cases: [string, string][] = [
    ['127.1.2.3', 'loopback'],
    ['localhost', 'loopback'],
    ['::1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['169.254.169.254', 'link-local'],
    ['fe80::1', 'link-local'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['ff02::1', 'multicast'],
  ];
  for (const [address, kind] of cases) {
    t.is(localAddressKind(address), kind, address);
    for (const xml of [ipmi(address), redfish(address)]) {
      const e = errors(loadSite(xml, 's.xml', { power: POLICY }));
      t.is(e.length, 1, `${address}: ${e.join('; ')}`);
      t.regex(e[0] ?? '', new RegExp(`is an? ${kind} address`), address);
    }
  }
  for (const remote of ['10.0.0.201', 'bmc1.example.org', '2001:db8::1'])
    t.true(loadSite(ipmi(remote), 's.xml', { power: POLICY }).ok, remote);
});

test('redfish needs https: http, credentials in the URL, a path or another scheme are refused', (t) => {
  const refused: [string, RegExp][] = [
    ['http://10.0.0.201', /uses http, which would send the BMC password in clear; use https/],
    ['https://root:calvin@10.0.0.201', /must not carry credentials/],
    ['https://10.0.0.201/redfish/v1', /must be https:\/\/HOST\[:PORT\]/],
    ['https://10.0.0.201/?x=1', /must be https:\/\/HOST\[:PORT\]/],
    ['ftp://10.0.0.201', /must be an https URL or a host name/],
  ];
  for (const [address, message] of refused) {
    const e = errors(loadSite(redfish(address), 's.xml', { power: POLICY }));
    t.is(e.length, 1, address);
    t.regex(e[0] ?? '', message, address);
    t.true(e[0]!.startsWith('s.xml:3:7: Host[name=xen01]/Power@address: '), e[0]);
  }
  for (const ok of ['10.0.0.201', 'bmc1.example.org', 'https://10.0.0.201:8443', 'https://[2001:db8::1]/'])
    t.true(loadSite(redfish(ok), 's.xml', { power: POLICY }).ok, ok);
});

test('ipmi takes a host name or IP: a scheme, port or path is refused', (t) => {
  for (const address of ['https://10.0.0.201', '10.0.0.201:623', '10.0.0.201/x', '-oProxyCommand=x']) {
    const e = errors(loadSite(ipmi(address), 's.xml', { power: POLICY }));
    t.is(e.length, 1, address);
    t.regex(e[0] ?? '', /Power@address: IPMI address .* is neither an IP address nor a host name/, address);
  }
});

test('passwordFile must be inside the secrets directory: /proc/self/environ and ../ tricks are refused', (t) => {
  const file = (path: string) =>
    withPower(`<Power driver="ipmi" address="10.0.0.201" user="admin" passwordFile="${path}"/>`);
  t.deepEqual(errors(loadSite(file('/proc/self/environ'), 's.xml', { power: POLICY })), [
    's.xml:3:7: Host[name=xen01]/Power@passwordFile: passwordFile /proc/self/environ is outside the secrets directory /etc/xsm/secrets; put BMC passwords there (chmod 600; XSM_SECRETS_DIR sets the directory)',
  ]);
  for (const path of ['/etc/xsm/secrets', '/etc/xsm/secrets-other/x', '/etc/xsm/secrets/../../shadow'])
    t.is(errors(loadSite(file(path), 's.xml', { power: POLICY })).length, 1, path);
  t.true(loadSite(file('/etc/xsm/secrets/bmc/xen01.pass'), 's.xml', { power: POLICY }).ok);
});

test('a QMP socket must be inside the QMP directory', (t) => {
  const qmp = (path: string) => withPower(`<Power driver="qmp" address="${path}"/>`);
  t.deepEqual(errors(loadSite(qmp('/var/run/docker.sock'), 's.xml', { power: POLICY })), [
    's.xml:3:7: Host[name=xen01]/Power@address: QMP socket /var/run/docker.sock is outside the QMP directory /run/xsm/qmp (XSM_QMP_DIR sets it)',
  ]);
  t.true(loadSite(qmp('/run/xsm/qmp/node1.qmp'), 's.xml', { power: POLICY }).ok);
});

test('insecureTls is a redfish opt-out that round-trips; on another driver it is an error', (t) => {
  const r = loadSite(redfish('10.0.0.201', ' insecureTls="true"'), 's.xml', { power: POLICY });
  if (!r.ok) return t.fail(errors(r).join('; '));
  t.true(r.site.hosts[0]!.power!.insecureTls);
  const again = loadSite(serializeSite(r.site), 'again.xml', { power: POLICY });
  t.true(again.ok && again.site.hosts[0]!.power!.insecureTls);
  const onIpmi = withPower(
    '<Power driver="ipmi" address="10.0.0.201" user="a" passwordFile="/etc/xsm/secrets/p" insecureTls="true"/>',
  );
  t.deepEqual(errors(loadSite(onIpmi, 's.xml', { power: POLICY })), [
    's.xml:3:7: Host[name=xen01]/Power@insecureTls: insecureTls applies to the redfish driver only, not ipmi',
  ]);
});

test('a stored version is loaded without the environment-dependent checks (they run again at use)', (t) => {
  t.true(loadSite(redfish('https://127.0.0.1'), 'site v3', { power: false }).ok);
});

test('the policy comes from the environment and malformed settings are refused', (t) => {
  t.deepEqual(powerPolicyFromEnv({}), POLICY);
  t.deepEqual(powerPolicyFromEnv({ XSM_SECRETS_DIR: '/srv/s/', XSM_QMP_DIR: '/tmp/q', XSM_POWER_ALLOW_LOCAL: '1' }), {
    secretsDir: '/srv/s',
    qmpDir: '/tmp/q',
    allowLocal: true,
  });
  t.throws(() => powerPolicyFromEnv({ XSM_SECRETS_DIR: 'relative' }), { message: /must be an absolute directory/ });
  t.throws(() => powerPolicyFromEnv({ XSM_POWER_ALLOW_LOCAL: 'yes' }), { message: /must be 1 \(lab only\) or 0/ });
});
