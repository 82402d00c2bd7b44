// XSM's rebalancer against Ganeti's hbal (Debian ganeti-htools) on the same htools snapshots: generated
// clusters of 20, 100 and 500 hosts and skewed ones (mixed host sizes, empty hosts, a few huge VMs). Both
// answers are scored by hcheck, hbal's own judge (HCHECK_INIT_GROUP_0_SCORE of the placement after the
// moves), with XSM's former measure as a column. Both are timed as cold processes (hbal; the compiled
// `xsm rebalance --dry-run --htools`), and XSM's planner also in-process: medians of N runs (min-max).
// Goal per snapshot: XSM's hcheck score <= hbal's, no more moves, >= 10x faster as a process.
// Moves are the live migrations each plan carries out, counted on hbal's own measure: its "Solution
// length", one step per migration (every step on these snapshots is `a=fa:NODE`, one failover-to-any of
// an `ext` instance), against the number of moves in XSM's plan (each VM at most once, straight to its
// final host). hbal may move a VM twice; a migration is what an operator pays for, so both are counted.
// The VMs whose final host differs are printed beside, for both. hbal runs with its defaults,
// `hbal -t FILE -U UTIL`, until it stops by itself or the time limit (default 1500 s) ends it.
// Run: npm run build && npx tsx bench/rebalance-hbal.ts [--runs N] [--hbal-timeout S] [--hbal-from DIR] [names...]
// --hbal-from DIR: use hbal runs recorded as DIR/NAME/hbal.out and DIR/NAME/hbal.time (`/usr/bin/time -f
// "%e %U %S"`: wall, user, sys seconds) instead of running hbal again; for the big snapshots, where one hbal
// run takes longer than the whole benchmark. The table says which rows come from a recorded run.
// (needs hbal and hcheck: apt-get install ganeti-htools)
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { balance, imbalanceOf, type BalanceHost, type BalanceVm } from '../src/rebalance/balance.ts';
import { parseHtools, writeHtools } from '../src/rebalance/htools.ts';
import { rng } from './generate.ts';

const HOST_MEM = 65536;
const DOM0_MEM = 1024;
const HOST_CPUS = 32;

export function generateCluster(hostCount: number, seed: number): { hosts: BalanceHost[]; vms: BalanceVm[] } {
  const r = rng(seed);
  const hosts: BalanceHost[] = Array.from({ length: hostCount }, (_, i) => ({
    name: `node${String(i).padStart(3, '0')}`,
    cpus: HOST_CPUS,
    memMiB: HOST_MEM - DOM0_MEM,
  }));
  const used = new Map(hosts.map((h) => [h.name, 0]));
  const vms: BalanceVm[] = [];
  // About 8 VMs a host on average, three times as likely on the first quarter of the hosts: the
  // imbalance a site accumulates when new VMs land where there was room at the time.
  for (let i = 0; vms.length < hostCount * 8 && i < hostCount * 40; i++) {
    const hot = r(4) === 0;
    const h = hosts[hot || r(3) === 0 ? r(Math.max(1, Math.floor(hostCount / 4))) : r(hostCount)]!;
    const memMiB = [1024, 2048, 4096, 8192][r(4)]!;
    if (used.get(h.name)! + memMiB > h.memMiB) continue;
    used.set(h.name, used.get(h.name)! + memMiB);
    const vcpus = [1, 2, 4][r(3)]!;
    vms.push({
      name: `vm${String(vms.length).padStart(5, '0')}`,
      host: h.name,
      memMiB,
      vcpus,
      cpuLoad: Math.round(vcpus * (5 + r(86))) / 100,
    });
  }
  return { hosts, vms };
}

/**
 * A skewed cluster: hosts of three sizes (8 CPUs/32 GiB, 16/64, 48/256), the second half empty (just
 * racked), VMs packed on the first half, a few of them huge (32-64 GiB).
 */
export function skewedCluster(hostCount: number, seed: number): { hosts: BalanceHost[]; vms: BalanceVm[] } {
  const r = rng(seed);
  const sizes = [
    { cpus: 8, mem: 32768 },
    { cpus: 16, mem: 65536 },
    { cpus: 48, mem: 262144 },
  ];
  const hosts: BalanceHost[] = Array.from({ length: hostCount }, (_, i) => {
    const s = sizes[i % 3]!;
    return { name: `node${String(i).padStart(3, '0')}`, cpus: s.cpus, memMiB: s.mem - DOM0_MEM, totalMemMiB: s.mem };
  });
  const used = new Map(hosts.map((h) => [h.name, 0]));
  const vcpusOn = new Map(hosts.map((h) => [h.name, 0]));
  const vms: BalanceVm[] = [];
  const half = Math.max(1, Math.floor(hostCount / 2));
  for (let i = 0; vms.length < hostCount * 6 && i < hostCount * 60; i++) {
    const h = hosts[r(half)]!;
    const huge = r(40) === 0;
    const memMiB = huge ? [32768, 49152, 65536][r(3)]! : [1024, 2048, 4096, 8192][r(4)]!;
    const vcpus = huge ? 8 : [1, 2, 4][r(3)]!;
    if (used.get(h.name)! + memMiB > h.memMiB || vcpus > h.cpus || vcpusOn.get(h.name)! + vcpus > 4 * h.cpus) continue;
    used.set(h.name, used.get(h.name)! + memMiB);
    vcpusOn.set(h.name, vcpusOn.get(h.name)! + vcpus);
    vms.push({
      name: `vm${String(vms.length).padStart(5, '0')}`,
      host: h.name,
      memMiB,
      vcpus,
      cpuLoad: Math.round(vcpus * (5 + r(86))) / 100,
    });
  }
  return { hosts, vms };
}

/** The snapshot in hbal's text format (-t) and its utilisation file (-U). */
export function htoolsFiles(hosts: BalanceHost[], vms: BalanceVm[]): { text: string; util: string } {
  const used = new Map<string, number>();
  for (const v of vms) used.set(v.host, (used.get(v.host) ?? 0) + v.memMiB);
  const gid = '00000000-0000-0000-0000-000000000001';
  // node: name|t_mem|n_mem|f_mem|t_disk|f_disk|t_cpu|offline|group|spindles
  const nodes = hosts.map((h) => {
    const total = h.totalMemMiB ?? h.memMiB + DOM0_MEM;
    const free = h.memMiB - (used.get(h.name) ?? 0);
    return `${h.name}|${total}|${total - h.memMiB}|${free}|4000000|4000000|${h.cpus}|N|${gid}|1`;
  });
  // instance: name|mem|disk|vcpus|status|auto_balance|pnode|snode|disk_template|tags|spindle_use
  // Shared storage ("ext"): any node can take any instance by live migration, as with XSM's Xen hosts.
  const insts = vms.map(
    (v) => `${v.name}|${v.memMiB}|10240|${v.vcpus}|running|${v.pinned ? 'N' : 'Y'}|${v.host}||ext||1`,
  );
  return {
    text: `default|${gid}|preferred|\n\n${nodes.join('\n')}\n\n${insts.join('\n')}\n\n`,
    util: vms.map((v) => `${v.name} ${v.cpuLoad} 0 0 0`).join('\n') + '\n',
  };
}

/** hbal's moves as it prints them ("  12. vm00211 node005 => node048  8.2037 a=fa:node048"). */
function movesFrom(stdout: string): [string, string][] {
  return [...stdout.matchAll(/^\s*\d+\.\s+(\S+)\s+\S+\s+=>\s+(\S+)(.*)$/gm)].map((m) => {
    // The table counts one migration per step: true of `a=fa:NODE` (failover to any node), not of the
    // multi-operation steps hbal prints for DRBD instances (e.g. `a=f r:NODE f`).
    if (!/\sa=fa:\S+\s*$/.test(m[3]!)) throw new Error(`hbal step is not one failover-to-any: ${m[0].trim()}`);
    return [m[1]!, m[2]!];
  });
}

/** hcheck's score of the snapshot with `moves` applied. */
function hcheckScore(dir: string, text: string, moves: [string, string][]): number {
  const file = join(dir, 'scored.txt');
  writeFileSync(file, writeHtools(text, new Map(moves)));
  const out = execFileSync(
    'hcheck',
    ['-t', file, '-U', join(dir, 'util.txt'), '--machine-readable', '--no-simulation'],
    {
      encoding: 'utf8',
    },
  );
  const m = /HCHECK_INIT_GROUP_0_SCORE=([\d.]+)/.exec(out);
  if (!m) throw new Error(`hcheck gave no score:\n${out}`);
  return Number(m[1]);
}

interface Timed<T> {
  value: T;
  ms: number;
}
function timed<T>(fn: () => T): Timed<T> {
  const t0 = performance.now();
  const value = fn();
  return { value, ms: performance.now() - t0 };
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const spread = (xs: number[], digits = 0) =>
  `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)})`;

function runHbal(dir: string, timeoutMs: number): { moves: [string, string][]; finished: boolean } {
  try {
    const out = execFileSync('hbal', ['-t', join(dir, 'cluster.txt'), '-U', join(dir, 'util.txt')], {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
      timeout: timeoutMs,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return { moves: movesFrom(out), finished: true };
  } catch (e) {
    // hbal searches exhaustively and can take very long on large clusters: score the moves it had
    // printed when the time limit struck, and say so in the table.
    return { moves: movesFrom(String((e as { stdout?: string }).stdout ?? '')), finished: false };
  }
}

/** An hbal run recorded earlier (see --hbal-from), with the limit it ran under. */
function recordedHbal(dir: string): Timed<{ moves: [string, string][]; finished: boolean }> | undefined {
  if (!existsSync(join(dir, 'hbal.out')) || !existsSync(join(dir, 'hbal.time'))) return undefined;
  const out = readFileSync(join(dir, 'hbal.out'), 'utf8');
  const wall = Number(readFileSync(join(dir, 'hbal.time'), 'utf8').trim().split('\n').at(-1)!.split(' ')[0]);
  // hbal ends its output with the solution's length when it finished; a killed hbal does not.
  return { value: { moves: movesFrom(out), finished: /^Solution length=/m.test(out) }, ms: wall * 1000 };
}

/** How many VMs end on another host than the one they started on. */
function relocated(start: ReadonlyMap<string, string>, moves: readonly [string, string][]): number {
  const last = new Map(moves);
  return [...last].filter(([vm, host]) => start.get(vm) !== host).length;
}

const CLI = join(import.meta.dirname, '..', 'dist', 'src', 'cli', 'entry.js');

function runXsmProcess(dir: string): [string, string][] {
  const out = execFileSync(
    process.execPath,
    [
      CLI,
      'rebalance',
      '--dry-run',
      '--htools',
      join(dir, 'cluster.txt'),
      '--htools-util',
      join(dir, 'util.txt'),
      '--json',
    ],
    { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  const r = JSON.parse(out) as { moves: { vm: string; to: string }[] };
  return r.moves.map((m) => [m.vm, m.to]);
}

const SNAPSHOTS: Record<string, () => { hosts: BalanceHost[]; vms: BalanceVm[] }> = {
  gen20: () => generateCluster(20, 62),
  gen100: () => generateCluster(100, 142),
  gen500: () => generateCluster(500, 542),
  skew40: () => skewedCluster(40, 7),
  skew120: () => skewedCluster(120, 11),
};

function main() {
  const args = process.argv.slice(2);
  const opt = (name: string, dflt: number) => {
    const i = args.indexOf(name);
    if (i < 0) return dflt;
    const v = Number(args[i + 1]);
    args.splice(i, 2);
    return v;
  };
  const runs = opt('--runs', 5);
  const hbalTimeoutMs = opt('--hbal-timeout', 1500) * 1000;
  const fromAt = args.indexOf('--hbal-from');
  const hbalFrom = fromAt < 0 ? undefined : args.splice(fromAt, 2)[1];
  const names = args.length ? args : Object.keys(SNAPSHOTS);
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  const rows: string[][] = [
    [
      'snapshot',
      'hosts/VMs',
      'hcheck before',
      'XSM hcheck',
      'hbal hcheck',
      'XSM migrations (VMs moved)',
      'hbal migrations (VMs moved)',
      'XSM old measure',
      'hbal old measure',
      'XSM process ms',
      'XSM planner ms',
      'hbal process ms',
      'x faster',
      'goal',
    ],
  ];
  console.log(
    `load average at the start: ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')} (${new Date().toISOString()})\n`,
  );
  console.log(`| ${rows[0]!.join(' | ')} |`);
  console.log(`| ${rows[0]!.map(() => '---').join(' | ')} |`);
  for (const name of names) {
    const { hosts, vms } = SNAPSHOTS[name]!();
    const dir = mkdtempSync(join(tmpdir(), 'xsm-hbal-'));
    try {
      const files = htoolsFiles(hosts, vms);
      writeFileSync(join(dir, 'cluster.txt'), files.text);
      writeFileSync(join(dir, 'util.txt'), files.util);
      const cluster = parseHtools(readFileSync(join(dir, 'cluster.txt'), 'utf8'), 'cluster.txt', files.util);
      const planner: Timed<ReturnType<typeof balance>>[] = [];
      const proc: Timed<[string, string][]>[] = [];
      const hb: Timed<{ moves: [string, string][]; finished: boolean }>[] = [];
      for (let i = 0; i < runs; i++) {
        planner.push(timed(() => balance(cluster.hosts, cluster.vms, { maxVcpuRatio: cluster.maxVcpuRatio })));
        proc.push(timed(() => runXsmProcess(dir)));
        // An hbal that hit the time limit once will again: one run is enough to say so.
        const recorded = hbalFrom === undefined ? undefined : recordedHbal(join(hbalFrom, name));
        if (recorded) {
          if (hb.length === 0) hb.push(recorded);
        } else if (hb.length === 0 || hb[0]!.value.finished) hb.push(timed(() => runHbal(dir, hbalTimeoutMs)));
      }
      const fromRecord = hbalFrom !== undefined && recordedHbal(join(hbalFrom, name)) !== undefined;
      const start = new Map(vms.map((v) => [v.name, v.host]));
      const xsmMoves = proc[0]!.value;
      const hbal = hb[0]!.value;
      const before = hcheckScore(dir, files.text, []);
      const xsmScore = hcheckScore(dir, files.text, xsmMoves);
      const hbalScore = hcheckScore(dir, files.text, hbal.moves);
      const placed = (moves: [string, string][]) => {
        const at = new Map(moves);
        return vms.map((v) => ({ ...v, host: at.get(v.name) ?? v.host }));
      };
      const procMs = proc.map((p) => p.ms);
      const hbalMs = hb.map((p) => p.ms);
      const faster = median(hbalMs) / median(procMs);
      const xsmMoved = relocated(start, xsmMoves);
      const hbalMoved = relocated(start, hbal.moves);
      const hbalRuns = `${hb.length} run${hb.length === 1 ? '' : 's'}${fromRecord ? ', recorded' : ''}`;
      // One migration per hbal step (a=fa: failover to any node) and per move of XSM's plan.
      const xsmMigrations = xsmMoves.length;
      const hbalMigrations = hbal.moves.length;
      const met = xsmScore <= hbalScore + 1e-8 && xsmMigrations <= hbalMigrations && faster >= 10 ? 'MET' : 'NOT MET';
      rows.push([
        name,
        `${hosts.length}/${vms.length}`,
        before.toFixed(4),
        xsmScore.toFixed(4),
        hbalScore.toFixed(4) + (hbal.finished ? '' : ' (stopped)'),
        `${xsmMigrations} (${xsmMoved})`,
        `${hbalMigrations} (${hbalMoved})`,
        imbalanceOf(hosts, placed(xsmMoves)).imbalance.toFixed(4),
        imbalanceOf(hosts, placed(hbal.moves)).imbalance.toFixed(4),
        spread(procMs),
        spread(planner.map((p) => p.ms)),
        hbal.finished
          ? `${spread(hbalMs)} (${hbalRuns})`
          : `>${(median(hbalMs) / 1000).toFixed(0)} s (stopped by the limit, ${hbalRuns})`,
        hbal.finished ? faster.toFixed(0) : `>${faster.toFixed(0)}`,
        hbal.finished ? met : `${met} (hbal unfinished)`,
      ]);
      console.log(`| ${rows.at(-1)!.join(' | ')} |`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  console.log(
    `\nload average at the end: ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')} (${new Date().toISOString()})`,
  );
  console.log(
    `${runs} runs each, medians (min-max). hcheck: Ganeti's cluster score, lower is better. old measure: XSM's former std dev of CPU use + memory use.`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) main();
