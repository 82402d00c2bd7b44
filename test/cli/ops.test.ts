import test from 'ava';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { siteXml } from '../integration/fixtures.ts';
import { cliSite, xsm } from './with-cli.ts';

const HOSTS = [
  { name: 'h1', memMiB: 1024 },
  { name: 'h2', memMiB: 1024 },
];

// One site and API for the whole file: the CLI reads XSM_API and XSM_TOKEN from the environment.
test.serial('xsm apply, status, jobs, site get, vm migrate against a running API', async (t) => {
  const { s } = await cliSite(t, HOSTS);
  const dir = await mkdtemp(join(tmpdir(), 'xsm-cli-'));
  const file = join(dir, 'site.xml');
  await writeFile(
    file,
    siteXml(HOSTS, [
      { name: 'a', host: 'h1', mem: 256 },
      { name: 'b', host: 'h2', mem: 256 },
    ]),
  );

  const dry = await xsm(['apply', file, '--dry-run']);
  t.is(dry.code, 0, dry.err);
  t.regex(dry.out, /create\s+a/);
  t.is(await s.rt.sites.currentVersion(), 0);

  const applied = await xsm(['apply', file, '--reason', 'first']);
  t.is(applied.code, 0, applied.err);
  t.regex(applied.out, /version 1 stored/);
  // Piped output: one line per job step change, ending with the version applied.
  t.regex(applied.out, /completed\s+host-h1\s+v1-create-a\s+create-vm 6\/6 done/);
  t.regex(applied.out, /version 1 applied$/);
  t.deepEqual(await s.where(), { a: 'h1', b: 'h2' });

  const st = await xsm(['status']);
  t.is(st.code, 0, st.err);
  t.regex(st.out, /site version 1 \(applied 1, converged 1\) — first by cli/);
  t.regex(st.out, /a\s+h1\s+256\s+1\s+h1\s+\S+\s+yes/);

  const jobs = await xsm(['jobs', '--state', 'completed']);
  t.regex(jobs.out, /v1-create-b/);

  // site get marks the version; applying an edit of it after someone else changed the site is refused.
  const got = await xsm(['site', 'get']);
  t.regex(got.out, /<!-- xsm:base-version 1 -->/);
  const edited = join(dir, 'edited.xml');
  await writeFile(edited, got.out.replace('<MEM>256</MEM>', '<MEM>300</MEM>'));
  const mig = await xsm(['vm', 'migrate', 'a', 'h2']);
  t.is(mig.code, 0, mig.err);
  t.regex(mig.out, /version 2: migrate a from h1 to h2/);
  await s.waitConverged(2);
  t.deepEqual(await s.where(), { a: 'h2', b: 'h2' });
  const stale = await xsm(['apply', edited]);
  t.is(stale.code, 4, 'a stale base is a refusal');
  t.regex(
    stale.err,
    /409 the site file was changed meanwhile: your change is based on version 1 but the current version is 2/,
  );
  t.is(await s.rt.sites.currentVersion(), 2);

  const bad = await xsm(['vm', 'migrate', 'a', 'h9']);
  t.is(bad.code, 1);
  t.regex(bad.err, /no host named "h9"/);
});

test.serial('an unreachable API and a missing file get clear errors', async (t) => {
  // A port that was free a moment ago: nothing listens there.
  const srv = createServer().listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as AddressInfo).port;
  srv.close();
  process.env.XSM_API = `http://127.0.0.1:${port}`;
  const r = await xsm(['status']);
  t.is(r.code, 3, 'an unreachable API is exit 3');
  t.true(r.err.includes(`cannot reach the XSM API at http://127.0.0.1:${port}: ECONNREFUSED`), r.err);
  const f = await xsm(['apply', '/nonexistent/site.xml']);
  t.is(f.code, 2);
  t.regex(f.err, /cannot read \/nonexistent\/site\.xml: ENOENT/);
});
