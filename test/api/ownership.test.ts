// The paper's <Owner> means something: an operator changes only the Sets it owns (by name or group) and
// nothing outside Sets; every change and refusal is in the audit log with who, what and how it ended.
import test from 'ava';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestSite } from '../integration/harness.ts';
import { startApi } from '../../src/api/listen.ts';
import { TokenTable, tokensFromEnv } from '../../src/api/auth.ts';
import { createHash } from 'node:crypto';
import { silentLogger } from '../../src/lib/log.ts';
import { AuditStore } from '../../src/state/audit-store.ts';
import { main } from '../../src/cli/main.ts';
import { browserLogin } from './with-api.ts';

const HOSTS = [
  { name: 'h1', memMiB: 2048 },
  { name: 'h2', memMiB: 2048 },
];
const T = {
  admin: 'owner-test-admin-token-0001',
  alice: 'owner-test-alice-token-0002',
  bob: 'owner-test-bob-token-00000003',
  carol: 'owner-test-carol-token-00004',
};

function site(opts: { webOwner?: string } = {}): string {
  const vm = (name: string, host: string, i: number) =>
    `    <VM name="${name}" config="tiny"><DOM0>${host}</DOM0><VCPUS>1</VCPUS><HWADDR>00:16:3e:00:00:0${i}</HWADDR><IP>DHCP</IP><MEM>128</MEM></VM>`;
  return `<XSMConfig>
  <Hosts>
    <Host name="h1" address="10.77.0.1" cpus="8" memory="2048"/>
    <Host name="h2" address="10.77.0.2" cpus="8" memory="2048"/>
  </Hosts>
  <Templates>
    <Template name="tiny" type="pvh" maxmem="2048" maxvcpus="4"><Kernel>/srv/xen/kernels/vmlinuz</Kernel><Disk target="/srv/xen/disks/{vm}.img" vdev="xvda"/><Bridge>xenbr0</Bridge></Template>
  </Templates>
  <Set name="web">
    <Owner>${opts.webOwner ?? 'alice'}</Owner>
${vm('web1', 'h1', 1)}
  </Set>
  <Set name="db">
    <Owner>dba</Owner>
${vm('db1', 'h1', 2)}
  </Set>
  <Set name="shared">
${vm('tool1', 'h2', 3)}
  </Set>
</XSMConfig>
`;
}

test('operators change only the Sets they own, nothing outside Sets; each attempt is audited', async (t) => {
  const s = await startTestSite(HOSTS);
  const tokens = new TokenTable([
    { token: T.admin, role: 'admin', name: 'ada' },
    { token: T.alice, role: 'operator', name: 'alice' },
    { token: T.bob, role: 'operator', name: 'bob', groups: ['dba'] },
    { token: T.carol, role: 'operator', name: 'carol' },
  ]);
  const api = await startApi({ rt: s.rt, tokens, log: silentLogger });
  t.teardown(async () => {
    await api.close();
    await s.close();
  });
  const call = async (who: keyof typeof T, method: string, path: string, body?: { xml?: string; json?: unknown }) => {
    const headers: Record<string, string> = { authorization: `Bearer ${T[who]}` };
    if (body?.xml !== undefined) headers['content-type'] = 'application/xml';
    if (body?.json !== undefined) headers['content-type'] = 'application/json';
    const r = await fetch(api.url + path, {
      method,
      headers,
      ...(body ? { body: body.xml ?? JSON.stringify(body.json) } : {}),
    });
    return { status: r.status, body: (await r.json()) as Record<string, any> };
  };

  // Hosts and templates are the admin's: an operator cannot lay down the first site.
  const first = await call('alice', 'POST', '/api/site?base=0', { xml: site() });
  t.is(first.status, 403);
  t.regex(first.body.error.message, /Host\[name=h1\] \(added\).*Template\[name=tiny\] \(added\)/);
  t.is(await s.rt.sites.currentVersion(), 0, 'nothing stored');
  t.is((await call('admin', 'POST', '/api/site?base=0', { xml: site() })).status, 201);
  await s.waitConverged(1);

  // alice owns web: she may move its VM.
  const own = await call('alice', 'POST', '/api/vms/web1/migrate', { json: { to: 'h2' } });
  t.is(own.status, 202, JSON.stringify(own.body));
  await s.waitConverged(own.body.version);
  // db belongs to the dba group: alice is refused, naming the Set and its owner; bob (in dba) may.
  const foreign = await call('alice', 'POST', '/api/vms/db1/migrate', { json: { to: 'h2' } });
  t.is(foreign.status, 403);
  t.regex(foreign.body.error.message, /Set\[name=db\] \(changed, owner dba\)/);
  t.deepEqual(foreign.body.error.details.changes, [{ element: 'Set[name=db]', change: 'changed', owner: 'dba' }]);
  const version = await s.rt.sites.currentVersion();
  const bobs = await call('bob', 'POST', '/api/vms/db1/migrate', { json: { to: 'h2' } });
  t.is(bobs.status, 202);
  await s.waitConverged(bobs.body.version);
  t.is(await s.rt.sites.currentVersion(), version + 1, "alice's refusal stored nothing; bob's change did");
  // A Set without an Owner is every operator's.
  t.is((await call('carol', 'POST', '/api/vms/tool1/reconfigure', { json: { memMiB: 160 } })).status, 202);
  const now = await s.rt.sites.currentVersion();
  // A file that changes a host is refused even in Sets one owns; handing web to carol is refused too.
  const xmlNow = (await s.rt.sites.get(now))!.xml;
  const hostChange = await call('alice', 'POST', `/api/site?base=${now}`, {
    xml: xmlNow.replace('memory="2048"', 'memory="4096"'),
  });
  t.is(hostChange.status, 403);
  t.regex(hostChange.body.error.message, /Host\[name=h1\] \(changed\)/);
  const giveAway = await call('alice', 'POST', `/api/site?base=${now}`, {
    xml: xmlNow.replace('<Owner>alice</Owner>', '<Owner>carol</Owner>'),
  });
  t.is(giveAway.status, 403);
  t.regex(giveAway.body.error.message, /Set\[name=web\] \(changed, owner carol\)/);
  t.is(await s.rt.sites.currentVersion(), now, 'nothing stored by either refusal');

  // The audit log: who, what, outcome, Sets, resulting version; refusals included; filters work.
  const log = async (query: string) =>
    (await call('carol', 'GET', `/api/audit?${query}`)).body.entries as Record<string, any>[];
  const alices = await log('user=alice');
  t.deepEqual(
    alices.map((e) => [e.kind, e.outcome, e.status]),
    [
      ['submit', 'refused', 403],
      ['submit', 'refused', 403],
      ['edit', 'refused', 403],
      ['edit', 'ok', 202],
      ['submit', 'refused', 403],
    ],
    'newest first',
  );
  t.like(alices[3], { what: 'POST /api/vms/web1/migrate', sets: ['web'], role: 'operator', version: 2 });
  t.regex(alices[3]!.from, /127\.0\.0\.1/);
  t.regex(alices[3]!.time, /^\d{4}-\d\d-\d\dT/);
  const dbChanges = await log('set=db&kind=edit');
  t.deepEqual(
    dbChanges.map((e) => e.user),
    ['bob'],
    'only stored changes name the Sets they touched',
  );
  t.is((await log('user=ada')).length, 1);
  t.is((await log('limit=2')).length, 2);
  t.is((await call('carol', 'GET', '/api/audit?since=yesterday')).status, 400);

  // Logins, failed ones included, are audited too.
  const login = async (token: string) => browserLogin(api.url, token);
  t.is((await login(T.carol)).status, 303);
  t.is((await login('wrong-token-wrong-token')).status, 403);
  const logins = await log('kind=login');
  t.deepEqual(
    logins.map((e) => [e.user, e.outcome]),
    [
      ['anonymous', 'refused'],
      ['carol', 'ok'],
    ],
  );

  // xsm audit prints the same, as a table or --json.
  process.env.XSM_API = api.url;
  process.env.XSM_TOKEN = T.carol;
  const out: string[] = [];
  t.is(await main(['audit', '--user', 'bob', '--json'], { out: (l) => out.push(l), err: () => {} }), 0);
  t.like(JSON.parse(out.join('\n')), { entries: [{ user: 'bob', kind: 'edit', sets: ['db'] }] });
});

test('tokens carry identities and groups; the tokens file may hold only hashes and is re-read', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'xsm-tokens-'));
  const file = join(dir, 'tokens');
  const secret = 'a-token-only-its-owner-knows-0123';
  const hash = createHash('sha256').update(secret).digest('hex');
  await writeFile(file, `# token role name groups\nsha256:${hash} operator dana web-team,dba\n`);
  const tokens = tokensFromEnv({ XSM_TOKENS_FILE: file });
  t.deepEqual(tokens.lookup(secret), { name: 'dana', role: 'operator', groups: ['web-team', 'dba'] });
  t.is(tokens.lookup(`sha256:${hash}`), undefined, 'the hash itself is not a token');
  // Re-reading (what SIGHUP does) revokes a token that left the file.
  await writeFile(file, `${'b'.repeat(32)} viewer vic\n`);
  tokens.replaceWith(tokensFromEnv({ XSM_TOKENS_FILE: file }));
  t.is(tokens.lookup(secret), undefined);
  t.like(tokens.lookup('b'.repeat(32)), { name: 'vic', role: 'viewer' });
  t.like(tokensFromEnv({ XSM_TOKENS: `${'c'.repeat(20)}:operator:olga:web+db` }).lookup('c'.repeat(20)), {
    name: 'olga',
    groups: ['web', 'db'],
  });
  t.throws(() => tokensFromEnv({ XSM_TOKENS: `${'c'.repeat(20)}:operator:system:rebalance:x` }), {
    message: /expected token:role\[:name\[:group\+group\]\]/,
  });
  await writeFile(file, `${'d'.repeat(20)} operator bad/name\n`);
  t.throws(() => tokensFromEnv({ XSM_TOKENS_FILE: file }), { message: /name "bad\/name" must be/ });
});

test('the audit store keeps entries newest first and filters by user, Set, kind and time', async (t) => {
  const s = await startTestSite([]);
  t.teardown(() => s.close());
  const store = new AuditStore(s.rt.redis, s.rt.config.prefix);
  const base = { role: 'operator', from: '127.0.0.1', what: 'x', outcome: 'ok' };
  await store.append({ ...base, user: 'u1', kind: 'submit', sets: ['a'] });
  const mid = Date.now();
  await new Promise((r) => setTimeout(r, 5));
  await store.append({ ...base, user: 'u2', kind: 'edit', sets: ['a', 'b'], version: 7, consent: true });
  const all = await store.query();
  t.deepEqual(
    all.map((e) => e.user),
    ['u2', 'u1'],
  );
  t.like(all[0], { version: 7, consent: true, sets: ['a', 'b'] });
  t.deepEqual(
    (await store.query({ set: 'b' })).map((e) => e.user),
    ['u2'],
  );
  t.deepEqual(
    (await store.query({ until: mid })).map((e) => e.user),
    ['u1'],
  );
  t.deepEqual(
    (await store.query({ since: mid + 1 })).map((e) => e.user),
    ['u2'],
  );
});

test("an operator's rebalance moves only VMs of Sets it owns, and the version is its own", async (t) => {
  const s = await startTestSite([
    { name: 'h1', memMiB: 4096, cpus: 4 },
    { name: 'h2', memMiB: 4096, cpus: 4 },
  ]);
  const tokens = new TokenTable([
    { token: T.admin, role: 'admin', name: 'ada' },
    { token: T.alice, role: 'operator', name: 'alice' },
  ]);
  const api = await startApi({ rt: s.rt, tokens, log: silentLogger });
  t.teardown(async () => {
    await api.close();
    await s.close();
  });
  const vm = (name: string, i: number) =>
    `    <VM name="${name}" config="tiny"><DOM0>h1</DOM0><VCPUS>1</VCPUS><HWADDR>00:16:3e:00:01:0${i}</HWADDR><IP>DHCP</IP><MEM>512</MEM></VM>`;
  const xml = `<XSMConfig>
  <Hosts>
    <Host name="h1" address="10.77.0.1" cpus="4" memory="4096"/>
    <Host name="h2" address="10.77.0.2" cpus="4" memory="4096"/>
  </Hosts>
  <Templates>
    <Template name="tiny" type="pvh" maxmem="2048" maxvcpus="4"><Kernel>/srv/xen/kernels/vmlinuz</Kernel><Disk target="/srv/xen/disks/{vm}.img" vdev="xvda"/><Bridge>xenbr0</Bridge></Template>
  </Templates>
  <Set name="web"><Owner>alice</Owner>
${[1, 2, 3].map((i) => vm(`web${i}`, i)).join('\n')}
  </Set>
  <Set name="db"><Owner>dba</Owner>
${[4, 5, 6].map((i) => vm(`db${i}`, i)).join('\n')}
  </Set>
</XSMConfig>`;
  const post = async (token: string, path: string, body: string, type: string) => {
    const r = await fetch(api.url + path, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': type },
      body,
    });
    return { status: r.status, body: (await r.json()) as Record<string, any> };
  };
  t.is((await post(T.admin, '/api/site?base=0', xml, 'application/xml')).status, 201);
  await s.waitConverged(1);
  const dry = await post(T.admin, '/api/rebalance', JSON.stringify({ dryRun: true }), 'application/json');
  t.true(
    dry.body.moves.some((m: { vm: string }) => m.vm.startsWith('db')),
    'an admin would move db VMs too',
  );
  const r = await post(T.alice, '/api/rebalance', '{}', 'application/json');
  t.is(r.status, 202, JSON.stringify(r.body));
  t.true(r.body.moves.length > 0);
  t.true(
    r.body.moves.every((m: { vm: string }) => m.vm.startsWith('web')),
    `alice moved only web VMs: ${JSON.stringify(r.body.moves)}`,
  );
  t.is((await s.rt.sites.get(r.body.version))!.author, 'alice');
  await s.waitConverged(r.body.version);
  const [entry] = await new AuditStore(s.rt.redis, s.rt.config.prefix).query({ user: 'alice', kind: 'rebalance' });
  t.like(entry, { outcome: 'ok', sets: ['web'], version: r.body.version });
});
