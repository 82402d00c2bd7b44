// `xsm host drain` / `undrain --return` against a running API on a simulated site: --help acts on nothing,
// --dry-run prints the pre-check and stores nothing (exit 4 when refused), a drain and a return follow
// their jobs to the end, and --json prints one document.
import test from 'ava';
import { siteXml } from '../integration/fixtures.ts';
import { cliSite, xsm } from './with-cli.ts';

const HOSTS = [
  { name: 'h1', memMiB: 1024 },
  { name: 'h2', memMiB: 1024 },
  { name: 'h3', memMiB: 1024 },
];

test.serial('xsm host drain and undrain --return against a running API', async (t) => {
  const { s } = await cliSite(t, HOSTS);
  await s.submitAndApply(
    siteXml(HOSTS, [
      { name: 'a', host: 'h1', mem: 256 },
      { name: 'b', host: 'h1', mem: 256 },
      { name: 'p', host: 'h2', mem: 256, pinned: true },
    ]),
    0,
  );
  await s.waitConverged(1);

  const help = await xsm(['host', 'drain', 'h1', '--help']);
  t.is(help.code, 0);
  t.regex(help.out, /^usage: xsm host drain HOST/);
  t.is((await xsm(['host', 'undrain', 'h1', '--retrun'])).code, 2);
  t.is(await s.rt.sites.currentVersion(), 1, '--help and a bad flag act on nothing');

  const refused = await xsm(['host', 'drain', 'h2', '--dry-run']);
  t.is(refused.code, 4, refused.err);
  t.regex(refused.out, /cannot move p: pinned to h2/);
  t.is(await s.rt.sites.currentVersion(), 1);
  const no = await xsm(['host', 'drain', 'h2']);
  t.is(no.code, 4);
  t.regex(no.err, /cannot drain h2: p: pinned to h2; nothing was stored/);

  const d = await xsm(['host', 'drain', 'h1', '--reason', 'firmware']);
  t.is(d.code, 0, d.err);
  t.regex(d.out, /version 2: drain h1: /);
  t.regex(d.out, /version 2 applied/);
  const placed = await s.rt.sites.load(2);
  t.true(placed.site.hosts.find((h) => h.name === 'h1')!.maintenance);
  t.deepEqual(
    placed.site.vms.filter((v) => v.host === 'h1'),
    [],
  );

  const u = await xsm(['host', 'undrain', 'h1', '--return', '--json']);
  t.is(u.code, 0, u.err);
  const doc = JSON.parse(u.out) as { version: number; moves: { vm: string; to: string }[]; outcome: { state: string } };
  t.is(doc.version, 3);
  t.deepEqual(doc.moves.map((m) => `${m.vm}->${m.to}`).sort(), ['a->h1', 'b->h1']);
  t.is(doc.outcome.state, 'converged');
});
