// Issue 20 goal 4: the medians (min–max) of several scale runs, read from their own printed tables. A scale
// run takes minutes and a machine to itself, so each is its own process and leaves its output in a file:
//
//   for i in 1 2 3 4 5; do npx tsx bench/scale-run.ts --procs 8 > scale-$i.txt; done
//   npx tsx bench/scale-summary.ts scale-*.txt
//
// A run whose output lacks a figure (it stopped, or did not converge) is named and the summary refused:
// medians over the runs that happened to converge would hide the ones that did not.
import { readFileSync } from 'node:fs';
import { spread, table } from './figures.ts';

/** Each figure: its label and how to read it (one number) from one run's table. */
const FIGURES: [label: string, digits: number, read: RegExp, pick?: (match: string) => number][] = [
  ['agents started and connected, s', 1, /agents started and connected\s*\|\s*([\d.]+) s/],
  ['submit (parse, validate, plan, store), s', 1, /submit \(parse[^|]*\|\s*([\d.]+) s/],
  ['submit to converged, s', 1, /submit to converged\s*\|\s*([\d.]+) s/],
  ['actions/s', 0, /submit to converged\s*\|[^(]*\(([\d,]+) actions\/s/],
  ['Redis memory, agents idle, MiB', 1, /Redis memory, agents idle\s*\|\s*([\d.]+) MiB/],
  ['Redis memory converged, MiB', 1, /Redis memory, converged\s*\|\s*([\d.]+) MiB/],
  ['Redis memory peak, MiB', 1, /Redis memory, converged[^|]*\|[^|]*peak ([\d.]+) MiB/],
  ['Redis memory per VM, KiB', 1, /memory per VM, converged\s*\|\s*([\d.]+) KiB/],
  ['Redis commands per VM', 1, /Redis commands, submit to converged\s*\|[^(]*\(([\d.]+) per VM/],
  ['Redis commands/s, average', 0, /per VM, ([\d,]+)\/s on average/],
  ['Redis commands/s, busiest 10 s', 0, /([\d,]+)\/s in the busiest/],
  ['Redis CPU, % of one core on average', 0, /Redis CPU[^|]*\|[^(]*\((\d+)% of one core on average/],
  ['Redis CPU, % of one core in the busiest 10 s', 0, /Redis CPU[^|]*\|[^(]*\(\d+% of one core on average, (\d+)% in/],
  ['API + control peak RSS, MiB', 0, /API \+ control RSS\s*\|[^|]*peak ([\d,]+) MiB/],
  [
    'largest agent process peak RSS, MiB',
    0,
    /agent processes RSS\s*\|\s*([\d /,]+) MiB peak/,
    (m) => Math.max(...m.split('/').map(number)),
  ],
  ['agent RSS per simulated host, KiB', 1, /MiB peak \(([\d.]+) KiB per host/],
];

function number(text: string): number {
  return Number(text.replace(/,/g, '').trim());
}

const files = process.argv.slice(2);
if (!files.length || files.includes('--help') || files.includes('-h')) {
  console.log('usage: npx tsx bench/scale-summary.ts RUN-OUTPUT... (each the output of one bench/scale-run.ts)');
  process.exit(files.length ? 0 : 2);
}
const runs = files.map((file) => ({ file, text: readFileSync(file, 'utf8') }));
const rows: string[][] = [];
const missing: string[] = [];
for (const [label, digits, read, pick] of FIGURES) {
  const values = runs.map(({ file, text }) => {
    const m = read.exec(text)?.[1];
    if (m === undefined) missing.push(`${file}: no "${label}"`);
    return m === undefined ? NaN : (pick ?? number)(m);
  });
  rows.push([label, spread(values, digits), values.map((v) => v.toLocaleString('en-US')).join(' / ')]);
}
if (missing.length) {
  console.error(`not every run converged or finished; no summary:\n${missing.join('\n')}`);
  process.exit(1);
}
const again = new Set(runs.map(({ text }) => /same file again\s*\|\s*([^|]+?)\s*\|/.exec(text)?.[1] ?? 'missing'));
const loads = runs.map(({ text }) => /load average ([\d.]+) at the start, ([\d.]+) at the end/.exec(text));
console.log(`${runs.length} scale runs, medians (min–max); each run's own figure after it\n`);
console.log(table(['figure', `median (min–max)`, 'each run'], rows));
console.log(`\nthe same file again: ${[...again].join('; ')}`);
console.log(`load average at start -> end, per run: ${loads.map((l) => (l ? `${l[1]} -> ${l[2]}` : '?')).join(', ')}`);
