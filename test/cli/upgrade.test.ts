// `xsm hosts upgrade` against a running API on a simulated site (the control worker's updater reboots
// simulated Dom0s): --help acts on nothing, a bad flag or image is refused before anything starts,
// --dry-run prints the hosts in order with their drains and starts nothing (exit 4 when refused), an
// upgrade is followed to its end (exit 0), a failed one exits 1 saying where, and --json prints one document.
import test from 'ava';
import { siteXml } from '../integration/fixtures.ts';
import { cliSite, xsm } from './with-cli.ts';

const HOSTS = [
  { name: 'h1', memMiB: 1024 },
  { name: 'h2', memMiB: 1024 },
  { name: 'h3', memMiB: 1024 },
];

test.serial('xsm hosts upgrade against a running API', async (t) => {
  t.timeout(120_000);
  const { s } = await cliSite(t, HOSTS);
  await s.submitAndApply(
    siteXml(HOSTS, [
      { name: 'a', host: 'h1', mem: 256 },
      { name: 'b', host: 'h2', mem: 256 },
      { name: 'p', host: 'h3', mem: 256, pinned: true },
    ]),
    0,
  );
  await s.waitConverged(1);

  const help = await xsm(['hosts', 'upgrade', '--help']);
  t.is(help.code, 0);
  t.regex(help.out, /^usage: xsm hosts upgrade/);
  t.is((await xsm(['hosts', 'upgrade', '--image', 'dom0', '--hots', 'h1'])).code, 2);
  t.is((await xsm(['hosts', 'upgrade', '--hosts', 'h1'])).code, 2, '--image is required');
  const bad = await xsm(['hosts', 'upgrade', '--image', 'dom0:x']);
  t.is(bad.code, 2, 'a malformed image reference is refused before anything is sent');
  t.regex(bad.err, /--image: "dom0:x" is not an image reference/);
  t.is(await s.rt.sites.currentVersion(), 1, '--help and bad input act on nothing');

  // h3's VM is pinned: the plan says so and the upgrade would be refused.
  const refused = await xsm(['hosts', 'upgrade', '--image', 'dom0:2', '--dry-run']);
  t.is(refused.code, 4, refused.err);
  t.regex(refused.out, /h3: cannot move p: pinned to h3/);
  const dry = await xsm(['hosts', 'upgrade', '--image', 'dom0:2', '--hosts', 'h2,h1', '--dry-run', '--json']);
  t.is(dry.code, 0, dry.err);
  const plan = JSON.parse(dry.out) as { plan: { hosts: { host: string; moves: { vm: string }[] }[] } };
  t.deepEqual(
    plan.plan.hosts.map((h) => [h.host, h.moves.map((m) => m.vm)]),
    [
      ['h2', ['b']],
      ['h1', ['a']],
    ],
  );
  t.is(await s.rt.sites.currentVersion(), 1, 'a dry run starts nothing');

  const ok = await xsm(['hosts', 'upgrade', '--image', 'dom0:2', '--hosts', 'h1,h2']);
  t.is(ok.code, 0, ok.err);
  t.regex(ok.out, /rolling upgrade to dom0:2 finished: done: h1, h2/);
  t.deepEqual(await s.where(), { a: 'h1', b: 'h2', p: 'h3' });

  s.updater.failures.set('h1', 'bad disk');
  const failed = await xsm(['hosts', 'upgrade', '--image', 'dom0:3', '--hosts', 'h1,h2', '--json']);
  t.is(failed.code, 1);
  const view = JSON.parse(failed.out) as { id: string; state: string; hosts: { host: string; state: string }[] };
  t.is(view.state, 'failed');
  t.deepEqual(
    view.hosts.map((h) => h.state),
    ['failed', 'not-started'],
  );
  const status = await xsm(['hosts', 'upgrade-status', view.id]);
  t.is(status.code, 1);
  t.regex(status.out, /FAILED: h1 at update: h1: update to dom0:3 failed: bad disk/);
});
