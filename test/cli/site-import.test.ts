// `xsm site import` against a real API on the simulator: the file it writes is marked with its base
// version and applies as "no changes"; --json is one document; with no agent report it is refused (exit 4).
import test from 'ava';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { siteXml, type HostLine } from '../integration/fixtures.ts';
import { cliSite, xsm } from './with-cli.ts';

const TWO: HostLine[] = [
  { name: 'h1', memMiB: 1024 },
  { name: 'h2', memMiB: 1024 },
];

async function site(t: import('ava').ExecutionContext, agents: boolean) {
  const { s } = await cliSite(t, TWO, { site: { agents } });
  return s;
}

test.serial(
  'xsm site import --out writes a file that `xsm apply` takes as "no changes"; --json answers once',
  async (t) => {
    const s = await site(t, true);
    const dir = await mkdtemp(join(tmpdir(), 'xsm-cli-import-'));
    const file = join(dir, 'site.xml');
    await writeFile(
      file,
      siteXml(TWO, [
        { name: 'a', host: 'h1', mem: 256 },
        { name: 'b', host: 'h2', mem: 128, vcpus: 2 },
      ]),
    );
    t.is((await xsm(['apply', file])).code, 0);
    const out = join(dir, 'imported.xml');
    const r = await xsm(['site', 'import', '--out', out]);
    t.is(r.code, 0, r.err);
    t.is(r.out, '');
    t.regex(r.err, /wrote .*imported\.xml: 2 hosts, 2 VMs; edit it, then `xsm apply .*imported\.xml`/);
    const text = await readFile(out, 'utf8');
    t.regex(text, /^<\?xml[^>]*\?>\n<!-- xsm:base-version 1 -->\n<XSMConfig>/);
    const applied = await xsm(['apply', out]);
    t.is(applied.code, 0, applied.err);
    t.is(applied.out, "no changes (the content is version 1's); nothing was stored");
    t.is(await s.rt.sites.currentVersion(), 1);
    const json = await xsm(['site', 'import', '--json']);
    t.is(json.code, 0);
    t.like(JSON.parse(json.out), { base: 1, hosts: 2, vms: 2, notes: [] });
  },
);

test.serial('xsm site import before any agent reported is refused with exit 4 and says why', async (t) => {
  await site(t, false);
  const r = await xsm(['site', 'import']);
  t.is(r.code, 4);
  t.regex(r.err, /no host agent has reported yet: there is nothing to import/);
});
