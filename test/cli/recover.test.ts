// `xsm recover` against a running API on a simulated site whose agents keep site copies: --help acts on
// nothing, --dry-run says what it would restore from where, the recovery prints the version and exits 0, a
// second one is refused with exit 4, and a --wait the API timeout cannot cover is a usage error.
import test from 'ava';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSiteCopy } from '../../src/lib/site-copy.ts';
import { siteXml } from '../integration/fixtures.ts';
import { cliSite, xsm } from './with-cli.ts';

const HOSTS = [
  { name: 'h1', memMiB: 1024 },
  { name: 'h2', memMiB: 1024 },
];

test('xsm recover: dry run, recovery, a refused second run, a usage error', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'xsm-cli-recover-'));
  // The agents' disks keep version 3 of a site with nothing on it yet: the hosts run what it says.
  const xml = siteXml(HOSTS, []);
  for (const h of ['h1', 'h2']) await writeSiteCopy(join(root, h), 3, xml);
  const { s } = await cliSite(t, HOSTS, { site: { cacheDir: (h) => join(root, h) } });

  const help = await xsm(['recover', '--help']);
  t.is(help.code, 0);
  t.true(help.out.startsWith('usage: xsm recover'));
  t.is((await xsm(['recover', '--bogus'])).code, 2, 'an unknown flag is refused');
  t.is((await xsm(['recover', '--wait', '600'])).code, 2, 'a wait longer than the API timeout');
  t.is(await s.rt.sites.currentVersion(), 0, 'none of these acted');

  const dry = await xsm(['recover', '--dry-run', '--wait', '10']);
  t.is(dry.code, 0, dry.err);
  t.regex(dry.out, /^would restore version 3 \(sha256 [0-9a-f]{12}\) from h1, h2/);
  t.is(await s.rt.sites.currentVersion(), 0);

  const done = await xsm(['recover', '--wait', '10', '--json']);
  t.is(done.code, 0, done.err);
  t.like(JSON.parse(done.out), { dryRun: false, version: 3, from: ['h1', 'h2'], converged: true });
  t.is(await s.rt.sites.currentVersion(), 3);

  const again = await xsm(['recover', '--wait', '2']);
  t.is(again.code, 4);
  t.regex(again.err, /already holds version 3/);
});
