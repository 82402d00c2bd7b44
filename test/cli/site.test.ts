import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const bin = new URL('../../bin/xsm.js', import.meta.url).pathname;
const paper = new URL('../../src/demo/paper-site.xml', import.meta.url).pathname;

function xsm(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('node', [bin, ...args], (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

test('xsm site validate exits 0 on the paper site and 1 with file:line:col errors on a bad one', async (t) => {
  const ok = await xsm('site', 'validate', paper);
  t.is(ok.code, 0);
  t.regex(ok.stdout, /valid: 4 hosts, 2 templates, 1 sets, 4 VMs/);
  const dir = await mkdtemp(join(tmpdir(), 'xsm-cli-'));
  const bad = join(dir, 'bad.xml');
  await writeFile(
    bad,
    '<XSMConfig>\n<Set name="s">\n<VM name="a b" config="c"><DOM0>h</DOM0><VCPUS>x</VCPUS><HWADDR>00:16:3e:00:00:01</HWADDR><IP>DHCP</IP><MEM>64</MEM></VM>\n</Set></XSMConfig>',
  );
  const r = await xsm('site', 'validate', bad);
  t.is(r.code, 1);
  t.regex(r.stderr, new RegExp(`${bad}:3:1: VM\\[name=a b\\]: VM name "a b" is not a safe name`));
  t.regex(r.stderr, new RegExp(`${bad}:3:\\d+: VM\\[name=a b\\]/VCPUS: VCPUS "x" is not a whole decimal number`));
  t.regex(r.stderr, /2 errors; nothing was applied/);
});

test('xsm site plan prints a table and --json; usage errors exit 2', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'xsm-cli-'));
  const { readFile } = await import('node:fs/promises');
  const changed = (await readFile(paper, 'utf8'))
    .replace('<DOM0>192.168.5.101</DOM0>', '<DOM0>192.168.5.102</DOM0>')
    .replace(/(name="vm4"[\s\S]*?)<MEM>96<\/MEM>/, '$1<MEM>128</MEM>');
  const next = join(dir, 'next.xml');
  await writeFile(next, changed);
  const table = await xsm('site', 'plan', paper, next);
  t.is(table.code, 0, table.stderr);
  t.regex(table.stdout, /migrate\s+vm1\s+192\.168\.5\.101\s+192\.168\.5\.102/);
  t.regex(table.stdout, /reconfigure\s+vm4/);
  const json = await xsm('site', 'plan', paper, next, '--json');
  const { plan } = JSON.parse(json.stdout) as { plan: { actions: { kind: string; vm: string }[] } };
  t.deepEqual(plan.actions.map((a) => `${a.kind}:${a.vm}`).sort(), ['migrate:vm1', 'reconfigure:vm4']);
  const diff = await xsm('site', 'diff', paper, next);
  t.regex(diff.stdout, /~ VM vm1: host "192\.168\.5\.101" -> "192\.168\.5\.102"/);
  // One file is planned against the running site (see test/cli/ops.test.ts); none or three is a usage error.
  const usage = await xsm('site', 'plan', paper, next, paper);
  t.is(usage.code, 2);
  t.regex(usage.stderr, /usage: xsm site plan FILE \[NEW\] \[--out PLAN\.json\] \[--json\]/);
  t.is((await xsm('frobnicate')).code, 2);
});
