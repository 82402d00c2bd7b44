// Issue 20 benchmark, goal 2: `xsm site plan OLD NEW` as an operator runs it, a new process each time (start-up,
// reading both files, validating, planning and printing all included), on generated sites of 1k, 10k, 100k and
// 300k VMs (one host per 10 VMs, 5% of VMs moved, created, resized or removed). Wall time and peak RSS come
// from GNU time (`/usr/bin/time -f`), the operating system's accounting of the finished process, and so does
// its CPU time (user + system), which says more than wall time when other work loads the machine. Each step of
// the curve says how much it grew against its input, and is flagged when it grew more than 10% faster.
// Baseline, in the same run: the same command from another commit (`--baseline REF`, e.g. the commit before
// the planner was made linear), extracted into a temporary directory, at the sizes up to `--baseline-max`.
//
// Run: npx tsx bench/plan-cold.ts [--runs 5] [--sizes 1000,10000,100000,300000] [--baseline REF]
//      [--baseline-max 100000] [--form dist|tsx]
// `dist` (default) runs the compiled CLI as the installed package does (it builds dist/ first); `tsx` runs
// bin/xsm.js from the checkout, which compiles the sources on the fly.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { serializeSite } from '../src/site/serialize.ts';
import { median, spread, table } from './figures.ts';
import { changeSite, generateSite } from './generate.ts';

const repo = new URL('../', import.meta.url).pathname;
const { values: opt } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    sizes: { type: 'string', default: '1000,10000,100000,300000' },
    baseline: { type: 'string' },
    'baseline-max': { type: 'string', default: '100000' },
    form: { type: 'string', default: 'dist' },
  },
});
const runs = Number(opt.runs);
const sizes = opt.sizes.split(',').map(Number);
if (!existsSync('/usr/bin/time'))
  throw new Error('this benchmark needs GNU time (/usr/bin/time): apt-get install time');
if (opt.form !== 'dist' && opt.form !== 'tsx') throw new Error('--form is dist or tsx');

interface Sample {
  seconds: number;
  /** User plus system CPU time: on a machine other work loads, it moves far less than wall time does. */
  cpuSeconds: number;
  rssMiB: number;
}

/** The command that runs a checkout's CLI in the chosen form. */
function cliOf(dir: string): string[] {
  if (opt.form === 'tsx') return [join(dir, 'bin/xsm.js')];
  execFileSync('npx', ['tsc', '-p', join(dir, 'tsconfig.build.json')], { cwd: dir, stdio: 'inherit' });
  return [join(dir, 'dist/src/cli/main.js')];
}

/** A checkout of `ref` beside this one, sharing its node_modules. */
function checkout(ref: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'xsm-plan-baseline-'));
  execFileSync('sh', ['-c', `git -C "${repo}" archive "${ref}" | tar -x -C "${dir}"`]);
  symlinkSync(join(repo, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

function sites(dir: string, vms: number): [string, string] {
  const base = generateSite(vms / 10, vms);
  const [a, b] = [join(dir, `old-${vms}.xml`), join(dir, `new-${vms}.xml`)];
  writeFileSync(a, serializeSite(base));
  writeFileSync(b, serializeSite(changeSite(base, 0.05)));
  return [a, b];
}

function once(cli: string[], files: [string, string], out: string): Sample {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M %U %S', 'node', ...cli, 'site', 'plan', ...files], {
    encoding: 'utf8',
    maxBuffer: 1 << 30,
  });
  if (r.status !== 0) throw new Error(`plan exited ${r.status}: ${r.stderr.slice(-500)}`);
  writeFileSync(out, r.stdout);
  const last = r.stderr.trim().split('\n').at(-1)!.split(' ');
  return { seconds: Number(last[0]), rssMiB: Number(last[1]) / 1024, cpuSeconds: Number(last[2]) + Number(last[3]) };
}

const work = mkdtempSync(join(tmpdir(), 'xsm-plan-cold-'));
const baselineDir = opt.baseline ? checkout(opt.baseline) : undefined;
try {
  const cli = cliOf(repo);
  const baseCli = baselineDir ? cliOf(baselineDir) : undefined;
  const rows: string[][] = [];
  const medians: { vms: number; s: number; rss: number; baseS?: number; baseRss?: number }[] = [];
  for (const vms of sizes) {
    const files = sites(work, vms);
    const withBase = baseCli && vms <= Number(opt['baseline-max']);
    const ours: Sample[] = [];
    const theirs: Sample[] = [];
    mkdirSync(join(work, 'out'), { recursive: true });
    once(cli, files, join(work, 'out', 'warm')); // page cache and compile cache, as a second run would have
    for (let i = 0; i < runs; i++) {
      ours.push(once(cli, files, join(work, 'out', 'ours')));
      if (withBase) theirs.push(once(baseCli, files, join(work, 'out', 'theirs')));
    }
    if (
      withBase &&
      readFileSync(join(work, 'out', 'ours'), 'utf8') !== readFileSync(join(work, 'out', 'theirs'), 'utf8')
    )
      throw new Error(`at ${vms} VMs the plan printed differs from the baseline's`);
    const m = { vms, s: median(ours.map((x) => x.seconds)), rss: median(ours.map((x) => x.rssMiB)) };
    medians.push(
      withBase
        ? { ...m, baseS: median(theirs.map((x) => x.seconds)), baseRss: median(theirs.map((x) => x.rssMiB)) }
        : m,
    );
    rows.push(
      ((row) => {
        console.error(`done: ${row.join(' | ')}`); // progress on stderr: a long run shows its rows as they come
        return row;
      })([
        vms.toLocaleString('en-US'),
        spread(
          ours.map((x) => x.seconds),
          2,
        ),
        spread(
          ours.map((x) => x.cpuSeconds),
          2,
        ),
        spread(ours.map((x) => x.rssMiB)),
        withBase
          ? spread(
              theirs.map((x) => x.seconds),
              2,
            )
          : '—',
        withBase
          ? spread(
              theirs.map((x) => x.cpuSeconds),
              2,
            )
          : '—',
        withBase ? spread(theirs.map((x) => x.rssMiB)) : '—',
        withBase ? 'yes' : '—',
      ]),
    );
  }
  console.log(
    `xsm site plan OLD NEW, a new process per run (${opt.form === 'dist' ? 'compiled, as installed' : 'checkout via tsx'}); ` +
      `${runs} runs each, median (min–max); ${vms10(sizes)}; baseline: ${opt.baseline ?? 'none'}\n`,
  );
  console.log(
    table(
      [
        'VMs',
        'seconds',
        'CPU s (user+sys)',
        'peak RSS MiB',
        'baseline seconds',
        'baseline CPU s',
        'baseline peak RSS MiB',
        'same plan printed',
      ],
      rows,
    ),
  );
  console.log(
    '\nGrowth step by step (time and memory against input; flagged when more than 10% faster than the input grew):',
  );
  const steps: string[][] = [];
  for (let i = 1; i < medians.length; i++) {
    const [a, b] = [medians[i - 1]!, medians[i]!];
    const grow = b.vms / a.vms;
    const t = b.s / a.s;
    const r = b.rss / a.rss;
    steps.push([
      `${a.vms.toLocaleString('en-US')} -> ${b.vms.toLocaleString('en-US')}`,
      `x${grow.toFixed(1)}`,
      `x${t.toFixed(2)}${t > grow * 1.1 ? '  FASTER THAN INPUT' : ''}`,
      `x${r.toFixed(2)}${r > grow * 1.1 ? '  FASTER THAN INPUT' : ''}`,
      a.baseS && b.baseS ? `x${(b.baseS / a.baseS).toFixed(2)}` : '—',
    ]);
  }
  console.log(table(['step', 'input', 'time', 'peak RSS', 'baseline time'], steps));
  const at100k = medians.find((m) => m.vms === 100000);
  if (at100k)
    console.log(
      `\ngoal at 100,000 VMs: <= 2.5 s and <= 300 MiB: ${at100k.s.toFixed(2)} s, ${at100k.rss.toFixed(0)} MiB: ` +
        `${at100k.s <= 2.5 && at100k.rss <= 300 ? 'MET' : 'NOT MET'}`,
    );
} finally {
  rmSync(work, { recursive: true, force: true });
  if (baselineDir) rmSync(baselineDir, { recursive: true, force: true });
}

function vms10(s: number[]): string {
  return `${s.map((v) => `${(v / 10).toLocaleString('en-US')} hosts / ${v.toLocaleString('en-US')} VMs`).join(', ')}`;
}
