// The agents' versioned, hashed site copies and the choice a recovery makes from them (issue 20 goal 6).
import test from 'ava';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CopiesDisagreeError,
  SITE_COPY_FILE,
  newestCopy,
  readSiteCopy,
  sha256,
  writeSiteCopy,
  type HostCopy,
} from '../../src/lib/site-copy.ts';
import { siteXml } from '../integration/fixtures.ts';
import { startTestSite } from '../integration/harness.ts';

const copy = (host: string, version: number, xml: string): HostCopy => ({
  host,
  copy: { version, sha256: sha256(xml), xml },
});

test('a copy is written with its version and SHA-256 and read back whole', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'xsm-copy-'));
  t.is(await readSiteCopy(dir), undefined, 'no copy yet');
  await writeSiteCopy(dir, 7, '<XSMConfig/>');
  t.deepEqual(await readSiteCopy(dir), { version: 7, sha256: sha256('<XSMConfig/>'), xml: '<XSMConfig/>' });
});

test('a damaged copy is refused, naming its file and version', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'xsm-copy-'));
  await writeSiteCopy(dir, 3, '<XSMConfig/>');
  const file = join(dir, SITE_COPY_FILE);
  await writeFile(file, (await readFile(file, 'utf8')).replace('XSMConfig', 'XSMConfog'));
  const e = await t.throwsAsync(readSiteCopy(dir));
  t.regex(e.message, new RegExp(`${file}: the XML does not match its SHA-256 \\(damaged copy of version 3\\)`));
  await writeFile(file, '{');
  t.regex((await t.throwsAsync(readSiteCopy(dir))).message, /not JSON/);
});

test('the newest version wins, with the hosts that hold it', (t) => {
  const r = newestCopy([copy('h1', 4, 'a'), copy('h2', 5, 'b'), copy('h3', 5, 'b')])!;
  t.is(r.copy.version, 5);
  t.is(r.copy.xml, 'b');
  t.deepEqual(r.hosts, ['h2', 'h3']);
  t.deepEqual(
    r.older.map((c) => c.host),
    ['h1'],
  );
  t.is(newestCopy([]), undefined);
});

test('copies of the newest version that differ are refused, naming the hosts and the version', (t) => {
  const e = t.throws(() =>
    newestCopy([copy('h1', 5, 'a'), copy('h2', 5, 'b'), copy('h3', 4, 'c'), copy('h4', 5, 'a')]),
  );
  t.true(e instanceof CopiesDisagreeError);
  t.regex(e!.message, /copies of version 5, the newest any host has, are different files/);
  t.regex(e!.message, /h1, h4 \(sha256 [0-9a-f]{12}\) vs h2 \(sha256 [0-9a-f]{12}\)/);
  t.notRegex(e!.message, /h3/);
});

test('the host agent keeps the newest applied version as a hashed copy, and never goes back to an older one', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'xsm-agent-copy-'));
  const hosts = [{ name: 'h1', memMiB: 2048 }];
  const s = await startTestSite(hosts, { agents: false });
  t.teardown(() => s.close());
  // An older copy is on disk from before; and another, newer one the agent must keep.
  await writeSiteCopy(dir, 1000, '<XSMConfig/>');
  const { startHostAgent } = await import('../../workers/host-agent-lib.ts');
  const { silentLogger } = await import('../../src/lib/log.ts');
  const agent = startHostAgent({ rt: s.rt, hv: s.hv.get('h1')!, log: silentLogger, heartbeatMs: 100, cacheDir: dir });
  t.teardown(() => agent.close());
  const v = await s.submitAndApply(siteXml(hosts, [{ name: 'vm1', host: 'h1', mem: 256 }]));
  await s.waitConverged(v);
  await new Promise((r) => setTimeout(r, 400));
  t.is((await readSiteCopy(dir))!.version, 1000, 'a newer copy is not overwritten by an older version');

  const dir2 = await mkdtemp(join(tmpdir(), 'xsm-agent-copy-'));
  const agent2 = startHostAgent({ rt: s.rt, hv: s.hv.get('h1')!, log: silentLogger, heartbeatMs: 100, cacheDir: dir2 });
  t.teardown(() => agent2.close());
  const until = Date.now() + 5000;
  while (!(await readSiteCopy(dir2)) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  const c = (await readSiteCopy(dir2))!;
  t.is(c.version, v);
  t.is(c.xml, (await s.rt.sites.get(v))!.xml);
  t.is(c.sha256, sha256(c.xml));
});
