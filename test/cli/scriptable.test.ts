// What a script can rely on from `xsm`: every command answers --json with one JSON document on stdout, the
// exit codes mean one thing everywhere (0 ok, 1 failed or out of sync, 2 usage, 3 unreachable, 4 refused),
// single operations follow their jobs, a hung API times out, a closed pipe ends the CLI quietly, and the
// shell completion offers exactly what the parser accepts.
import test from 'ava';
import { spawnSync, spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import { mkdtemp, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { siteXml } from '../integration/fixtures.ts';
import { commands } from '../../src/cli/main.ts';
import { cliSite, xsm } from './with-cli.ts';

const BIN = new URL('../../bin/xsm.js', import.meta.url).pathname;

/** Runs `xsm ... --json` and parses stdout, which must be exactly one JSON document. */
async function xsmJson(args: string[]): Promise<{ code: number; doc: Record<string, unknown>; err: string }> {
  const r = await xsm([...args, '--json']);
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(r.out) as Record<string, unknown>;
  } catch {
    throw new Error(`xsm ${args.join(' ')} --json printed no single JSON document:\n${r.out}\n${r.err}`);
  }
  return { code: r.code, doc, err: r.err };
}

/** A fake API whose answers the test scripts, route by route. */
async function fakeApi(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ url: string; close: () => void }> {
  const server = createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => server.closeAllConnections() ?? server.close(),
  };
}

function answer(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const HOSTS = [
  { name: 'h1', memMiB: 1024 },
  { name: 'h2', memMiB: 1024 },
];
const OPERATOR = 'scriptable-operator-token-0123';
const VIEWER = 'scriptable-viewer-token-0123456';

test.serial('every command answers --json with one document, and the exit code says how it went', async (t) => {
  const { s } = await cliSite(t, HOSTS, {
    identities: [
      { token: OPERATOR, role: 'admin', name: 'ops' },
      { token: VIEWER, role: 'viewer', name: 'eyes' },
    ],
  });
  const dir = await mkdtemp(join(tmpdir(), 'xsm-json-'));
  const file = join(dir, 'site.xml');
  const xml = siteXml(HOSTS, [
    { name: 'a', host: 'h1', mem: 256 },
    { name: 'b', host: 'h2', mem: 256 },
  ]);
  await writeFile(file, xml);
  const broken = join(dir, 'broken.xml');
  await writeFile(broken, xml.replace('<MEM>256</MEM>', '<MEM>lots</MEM>'));

  const valid = await xsmJson(['site', 'validate', file]);
  t.is(valid.code, 0);
  t.like(valid.doc, { valid: true, hosts: 2, vms: 2 });
  const invalid = await xsmJson(['site', 'validate', broken]);
  t.is(invalid.code, 1);
  t.like(invalid.doc, { valid: false });
  t.like((invalid.doc.errors as object[])[0], { file: broken, element: 'VM[name=a]/MEM' });

  const dry = await xsmJson(['apply', file, '--dry-run']);
  t.is(dry.code, 0, dry.err);
  t.deepEqual(
    (dry.doc.plan as { actions: { id: string }[] }).actions.map((a) => a.id),
    ['create:a', 'create:b'],
  );

  // apply follows its jobs: the answer carries how the run ended.
  const applied = await xsmJson(['apply', file, '--base', '0']);
  t.is(applied.code, 0, applied.err);
  t.like(applied.doc, { version: 1, base: 0, outcome: { state: 'converged' } });
  const again = await xsmJson(['apply', file, '--base', '1']);
  t.is(again.code, 0);
  t.like(again.doc, { unchanged: true, version: 1 });

  const st = await xsmJson(['status']);
  t.is(st.code, 0, st.err);
  t.like(st.doc, { inSync: true, outOfSync: [], site: { version: 1 } });
  t.is((st.doc.hosts as unknown[]).length, 2);

  // A single operation follows its jobs like apply, and says when the VM is where it was sent.
  const mig = await xsmJson(['vm', 'migrate', 'a', 'h2']);
  t.is(mig.code, 0, mig.err);
  t.like(mig.doc, { version: 2, outcome: { state: 'converged' } });
  t.deepEqual(await s.where(), { a: 'h2', b: 'h2' });
  // --no-wait returns once stored.
  const queued = await xsmJson(['vm', 'set', 'b', '--mem', '300', '--no-wait']);
  t.is(queued.code, 0, queued.err);
  t.like(queued.doc, { version: 3 });
  t.false('outcome' in queued.doc);
  await s.waitConverged(3);

  const jobs = await xsmJson(['jobs', '--state', 'completed']);
  t.is(jobs.code, 0);
  t.true((jobs.doc.jobs as { id: string }[]).some((j) => j.id === 'v2-migrate-a'));
  const got = await xsmJson(['site', 'get', '2']);
  t.like(got.doc, { version: 2 });
  t.regex(got.doc.xml as string, /<XSMConfig>/);
  const plan = await xsmJson(['site', 'plan', file]);
  t.is(plan.code, 0, plan.err);
  t.like(plan.doc, { base: 3 });
  t.regex(plan.doc.observedAt as string, /^\d{4}-\d\d-\d\dT/, 'times are ISO-8601');
  const diff = await xsmJson(['site', 'diff', file, file]);
  t.is(diff.code, 0);
  t.true('diff' in diff.doc);
  const rb = await xsmJson(['rebalance', '--dry-run']);
  t.is(rb.code, 0, rb.err);
  t.true(Array.isArray(rb.doc.moves));
  const sched = await xsmJson(['rebalance', 'schedule']);
  t.like(sched.doc, { everyMinutes: 0 });
  const health = await xsmJson(['host', 'health']);
  t.deepEqual(health.doc, { health: {} });
  const comp = await xsmJson(['completion', 'bash']);
  t.like(comp.doc, { shell: 'bash' });

  // Refusals: consent missing, a viewer acting, a VM that does not fit: exit 4 with the API's error.
  const consent = await xsmJson(['vm', 'remove', 'a']);
  t.is(consent.code, 4);
  t.like(consent.doc, { error: { code: 'consent-required' } });
  process.env.XSM_TOKEN = VIEWER;
  const viewer = await xsmJson(['vm', 'migrate', 'a', 'h1']);
  t.is(viewer.code, 4, viewer.err);
  t.like(viewer.doc, { error: { status: 403 } });
  process.env.XSM_TOKEN = OPERATOR;
  const huge = await xsmJson(['vm', 'set', 'a', '--mem', '999999']);
  t.is(huge.code, 4, huge.err);
  t.is((huge.doc.error as { status: number }).status, 422);
  // Usage errors are exit 2, and still one JSON document when --json was asked for.
  const usage = await xsmJson(['vm', 'set', 'a', '--mem', '0x200']);
  t.is(usage.code, 2);
  t.like(usage.doc, { error: { code: 'usage' } });

  // Drift: a VM destroyed behind XSM's back makes status exit 1 and name it.
  await s.hv.get('h2')!.destroy('b');
  let drifted = await xsmJson(['status']);
  for (let i = 0; i < 60 && drifted.code === 0; i++) {
    await new Promise((r) => setTimeout(r, 250));
    drifted = await xsmJson(['status']);
  }
  t.is(drifted.code, 1);
  t.like(drifted.doc, { inSync: false, outOfSync: ['b'] });
  const text = await xsm(['status']);
  t.is(text.code, 1);
  t.regex(text.err, /out of sync: b/);
});

test.serial('API failures map to exit codes 1, 3 and 4, with the error as JSON', async (t) => {
  const statusFor: Record<string, number> = { '/api/site': 409, '/api/hosts/health': 500 };
  const fake = await fakeApi((req, res) => {
    const status = statusFor[req.url ?? ''] ?? 403;
    answer(res, status, { error: { code: `c${status}`, message: `m${status}`, hint: 'do this' } });
  });
  t.teardown(fake.close);
  process.env.XSM_API = fake.url;
  const refused = await xsmJson(['site', 'get']);
  t.is(refused.code, 4);
  t.deepEqual(refused.doc, {
    error: { code: 'c409', message: 'GET /api/site: 409 m409', status: 409, hint: 'do this' },
  });
  const broken = await xsmJson(['host', 'health']);
  t.is(broken.code, 1);
  t.like(broken.doc, { error: { status: 500 } });
  const forbidden = await xsm(['host', 'power-confirm', 'h1']);
  t.is(forbidden.code, 4);
  t.regex(forbidden.err, /403 m403\n {2}hint: do this/);
});

test.serial('a hung API times out after XSM_API_TIMEOUT seconds with exit 3', async (t) => {
  const fake = await fakeApi(() => {
    /* never answers */
  });
  t.teardown(fake.close);
  process.env.XSM_API = fake.url;
  process.env.XSM_API_TIMEOUT = '1';
  t.teardown(() => delete process.env.XSM_API_TIMEOUT);
  const start = Date.now();
  const r = await xsmJson(['status']);
  t.is(r.code, 3);
  t.like(r.doc, { error: { code: 'timeout', status: 0 } });
  t.true(Date.now() - start < 5000, 'gave up after about a second');
  process.env.XSM_API_TIMEOUT = '0';
  t.regex((await xsm(['status'])).err, /XSM_API_TIMEOUT must be whole seconds from 1 to 3600/);
});

test.serial('jobs --watch exits 1 when a job it followed failed, 0 when all completed', async (t) => {
  let calls = 0;
  let fail = true;
  const job = (state: string) => ({ queue: 'host-h1', id: 'v1-create-a', state, name: 'create', version: 1 });
  const fake = await fakeApi((_req, res) => {
    calls++;
    answer(res, 200, { jobs: [job(calls === 1 ? 'active' : fail ? 'failed' : 'completed')] });
  });
  t.teardown(fake.close);
  process.env.XSM_API = fake.url;
  const failed = await xsm(['jobs', '--watch']);
  t.is(failed.code, 1);
  t.regex(failed.err, /1 job failed; retry one with: xsm job retry QUEUE ID/);
  calls = 0;
  fail = false;
  const ok = await xsmJson(['jobs', '--watch']);
  t.is(ok.code, 0);
  t.like(ok.doc, { failed: 0 });
});

test.serial('xsm jobs | head ends quietly: no EPIPE stack trace', async (t) => {
  // Far more than a pipe buffer, so xsm is still writing when head has gone.
  const jobs = Array.from({ length: 20000 }, (_, i) => ({
    queue: 'host-h1',
    id: `v1-create-vm${i}`,
    state: 'completed',
    name: 'create',
  }));
  const fake = await fakeApi((_req, res) => answer(res, 200, { jobs }));
  t.teardown(fake.close);
  const child = spawn('bash', ['-c', `node ${BIN} jobs | head -1; echo "xsm=\${PIPESTATUS[0]}" >&2`], {
    env: { ...process.env, XSM_API: fake.url },
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  await once(child, 'close');
  t.regex(out, /^completed\s+host-h1\s+v1-create-vm0/);
  t.is(out.trim().split('\n').length, 1);
  t.notRegex(err, /EPIPE|Error|at /);
  t.regex(err, /xsm=0/);
});

test('the bash completion offers commands, subcommands, options and choices the parser accepts', (t) => {
  const script = spawnSync('node', [BIN, 'completion', 'bash'], { encoding: 'utf8' });
  t.is(script.status, 0, script.stderr);
  const complete = (line: string): string[] => {
    const r = spawnSync(
      'bash',
      [
        '-c',
        `eval "$XSM_COMPLETION"; read -ra COMP_WORDS <<< "$LINE"; [[ "$LINE" == *' ' ]] && COMP_WORDS+=('');` +
          ' COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _xsm; printf "%s\\n" "${COMPREPLY[@]}"',
      ],
      { encoding: 'utf8', env: { ...process.env, XSM_COMPLETION: script.stdout, LINE: line } },
    );
    t.is(r.status, 0, r.stderr);
    return r.stdout.split('\n').filter(Boolean);
  };
  t.deepEqual(complete('xsm vm m'), ['migrate']);
  t.deepEqual(complete('xsm rebalance sch'), ['schedule']);
  t.deepEqual(complete('xsm rebalance --mode '), ['performance', 'density']);
  t.deepEqual(complete('xsm apply --pl'), ['--plan']);
  const top = complete('xsm ');
  for (const c of commands) t.true(top.includes(c.name.split(' ')[0]!), c.name);
  // Every option a command's completion offers is one its parser takes, and the other way round.
  for (const c of commands) {
    const offered = complete(`xsm ${c.name} --`).sort();
    t.deepEqual(offered, [...Object.keys(c.options).map((o) => `--${o}`), '--help', '--json'].sort(), c.name);
  }
  const zsh = spawnSync('node', [BIN, 'completion', 'zsh'], { encoding: 'utf8' });
  t.regex(zsh.stdout, /^#compdef xsm\n/);
  t.regex(zsh.stdout, /bashcompinit/);
});
