// The CLI side of the plan contract: `xsm apply` prints the stored plan and says "no changes" when there
// are none; disruptive plans need consent (a terminal question, or --yes); a saved plan runs only as
// saved; an apply that partly failed exits 1 naming what did not run; the paper site's resize beyond its
// hosts' observed room is refused before anything is stored.
import test from 'ava';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestSite } from '../integration/harness.ts';
import { siteXml, type HostLine } from '../integration/fixtures.ts';
import { cliSite, xsm } from './with-cli.ts';

const TWO: HostLine[] = [
  { name: 'h1', memMiB: 1024 },
  { name: 'h2', memMiB: 1024 },
];

async function site(t: import('ava').ExecutionContext, hosts: HostLine[]): Promise<{ s: TestSite; dir: string }> {
  const { s } = await cliSite(t, hosts);
  return { s, dir: await mkdtemp(join(tmpdir(), 'xsm-cli-plan-')) };
}

test.serial('xsm apply of identical content prints "no changes", stores nothing and exits 0', async (t) => {
  const { s, dir } = await site(t, TWO);
  const file = join(dir, 'site.xml');
  await writeFile(file, siteXml(TWO, [{ name: 'a', host: 'h1', mem: 256 }]));
  const first = await xsm(['apply', file]);
  t.is(first.code, 0, first.err);
  t.regex(first.out, /version 1 stored \(based on 0\); plan [0-9a-f]{12}:/);
  const again = await xsm(['apply', file]);
  t.is(again.code, 0, again.err);
  t.is(again.out, "no changes (the content is version 1's); nothing was stored");
  t.is(await s.rt.sites.currentVersion(), 1);
});

test.serial(
  'a plan that stops running VMs needs consent: asked on a terminal, refused without, --yes gives it',
  async (t) => {
    const { s, dir } = await site(t, TWO);
    const file = join(dir, 'site.xml');
    await writeFile(
      file,
      siteXml(TWO, [
        { name: 'a', host: 'h1', mem: 256 },
        { name: 'b', host: 'h2', mem: 256 },
      ]),
    );
    t.is((await xsm(['apply', file])).code, 0);
    await writeFile(file, siteXml(TWO, [{ name: 'a', host: 'h1', mem: 256 }]));
    // Not a terminal and no --yes: refused, nothing stored.
    const refused = await xsm(['apply', file]);
    t.is(refused.code, 4, 'consent not given is a refusal');
    t.regex(refused.err, /1 action stops running VMs:\n {2}remove:b: b is shut down and destroyed on h2/);
    t.regex(refused.err, /nothing was stored: these stop running VMs; re-run with --yes to allow it/);
    t.is(await s.rt.sites.currentVersion(), 1);
    // On a terminal the operator is asked; "n" stores nothing, "y" goes ahead.
    const no = await xsm(['apply', file], 'n');
    t.is(no.code, 4, 'consent refused on the terminal is a refusal');
    t.is(no.asked[0], '1 action stops running VMs:\n  remove:b: b is shut down and destroyed on h2\nProceed? [y/N] ');
    t.is(await s.rt.sites.currentVersion(), 1);
    const yes = await xsm(['apply', file], 'y');
    t.is(yes.code, 0, yes.err);
    t.regex(yes.out, /remove\s+b\s+h2.*STOPS VM/);
    t.deepEqual(await s.where(), { a: 'h1' });
    // Single edits likewise: --yes instead of a terminal.
    t.is((await xsm(['vm', 'remove', 'a'])).code, 4);
    const removed = await xsm(['vm', 'remove', 'a', '--yes']);
    t.is(removed.code, 0, removed.err);
    t.regex(removed.out, /version 3: remove a from h1; plan [0-9a-f]{12}:/);
  },
);

test.serial(
  'xsm site plan FILE --out saves the plan; xsm apply --plan runs exactly it, or refuses when it went stale',
  async (t) => {
    const { s, dir } = await site(t, TWO);
    const file = join(dir, 'site.xml');
    await writeFile(file, siteXml(TWO, [{ name: 'a', host: 'h1', mem: 256 }]));
    t.is((await xsm(['apply', file])).code, 0);
    const next = join(dir, 'next.xml');
    await writeFile(next, siteXml(TWO, [{ name: 'a', host: 'h2', mem: 256 }]));
    const planFile = join(dir, 'plan.json');
    const planned = await xsm(['site', 'plan', next, '--out', planFile]);
    t.is(planned.code, 0, planned.err);
    t.regex(planned.out, /plan [0-9a-f]{12} against version 1/);
    t.regex(planned.out, /migrate\s+a\s+h1\s+h2/);
    const saved = JSON.parse(await readFile(planFile, 'utf8')) as { planHash: string; base: number; xml: string };
    t.is(saved.base, 1);
    t.is(saved.xml, await readFile(next, 'utf8'), 'the saved plan carries the file it was made from');
    // Something else moves the site on first: the saved plan is stale and says how.
    const stale = join(dir, 'other.xml');
    await writeFile(stale, siteXml(TWO, [{ name: 'a', host: 'h1', mem: 300 }]));
    t.is((await xsm(['apply', stale])).code, 0);
    const refused = await xsm(['apply', '--plan', planFile]);
    t.is(refused.code, 4, 'a stale plan is a refusal');
    t.regex(refused.err, /plan is stale: base version moved from 1 to 2/);
    t.is(await s.rt.sites.currentVersion(), 2);
    // Planned again on version 2 (the resize is undone by the new file too): the new plan runs as saved.
    t.is((await xsm(['site', 'plan', next, '--out', planFile])).code, 0);
    const ran = await xsm(['apply', '--plan', planFile]);
    t.is(ran.code, 0, ran.err);
    const again = JSON.parse(await readFile(planFile, 'utf8')) as { planHash: string };
    t.regex(ran.out, new RegExp(`version 3 stored \\(based on 2\\); plan ${again.planHash.slice(0, 12)}:`));
    t.is((await s.rt.sites.plan(3))!.planHash, again.planHash);
    t.deepEqual(await s.where(), { a: 'h2' });
  },
);

test.serial('an apply that partly failed exits 1 and names what failed and what did not run', async (t) => {
  const THREE: HostLine[] = [...TWO, { name: 'h3', memMiB: 1024 }];
  const { s, dir } = await site(t, THREE);
  const file = join(dir, 'site.xml');
  await writeFile(
    file,
    siteXml(THREE, [
      { name: 'x', host: 'h1', mem: 768 },
      { name: 'y', host: 'h3', mem: 512 },
    ]),
  );
  t.is((await xsm(['apply', file])).code, 0);
  // A guest XSM does not know takes most of h2: x cannot move there, so y cannot take x's room on h1.
  await s.hv.get('h2')!.create({ name: 'intruder', text: 'name = "intruder"\nmemory = 600\nvcpus = 1\n' });
  // Checked on h1 against what h2's agent reports: wait for its report (else Xen's refusal says it instead).
  for (const until = Date.now() + 10000; Date.now() < until; await new Promise((r) => setTimeout(r, 50)))
    if ((await s.rt.observed.host('h2'))?.domains.some((d) => d.name === 'intruder')) break;
  await writeFile(
    file,
    siteXml(THREE, [
      { name: 'x', host: 'h2', mem: 768 },
      { name: 'y', host: 'h1', mem: 512 },
    ]),
  );
  const r = await xsm(['apply', file]);
  t.is(r.code, 1);
  t.regex(r.out, /migrate\s+y\s+h3\s+h1\s+512 MiB live\s+migrate:x/, 'the plan shows what y waits for');
  t.regex(
    r.err,
    /version 2 partially applied: 0 of 2 actions done, 1 failed \(migrate:x\), 1 did not run because an action they depend on failed \(migrate:y\)/,
  );
  t.regex(
    r.err,
    /migrate:x failed: plan is stale: h2 has 424 MiB free but x needs 768 MiB.*\(retry: xsm job retry host-h1 v2-migrate-x\)/,
  );
  t.regex(r.err, /migrate:y did not run: migrate:x failed: plan is stale/);
  t.deepEqual(await s.where(), { x: 'h1', y: 'h3', intruder: 'h2' });
});

test.serial('xsm vm set vm3 --mem 9999 on the paper site is refused before anything is stored', async (t) => {
  const PAPER = ['192.168.5.101', '192.168.5.102', '192.168.5.103', '192.168.5.104'].map((name) => ({
    name,
    memMiB: 1536,
    cpus: 4,
  }));
  const { s, dir } = await site(t, PAPER);
  const file = join(dir, 'paper.xml');
  await writeFile(file, await readFile(new URL('../../src/demo/paper-site.xml', import.meta.url), 'utf8'));
  t.is((await xsm(['apply', file])).code, 0);
  const r = await xsm(['vm', 'set', 'vm3', '--mem', '9999']);
  t.is(r.code, 4, 'a VM that does not fit is refused by the API');
  t.regex(
    r.err,
    /422 cannot order the plan: vm3 to grow from 96 to 9999 MiB needs 9903 MiB but host 192\.168\.5\.103 has 1440 MiB free of 1536 \(as its agent reports\) \(8463 MiB missing\)/,
  );
  t.is(await s.rt.sites.currentVersion(), 1);
  t.like(await s.hv.get('192.168.5.103')!.find('vm3'), { state: 'running', memMiB: 96 });
});
