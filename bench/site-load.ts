// Site loader benchmark: XML text to a validated Site for 1,000 hosts / 10,000 VMs, with its phases
// (pre-scan, well-formedness check, parse, validate), against a baseline ten times smaller in the same run.
// Run: npx tsx bench/site-load.ts
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { loadSite } from '../src/site/parse.ts';
import { serializeSite } from '../src/site/serialize.ts';
import { scanElements } from '../src/site/xml-scan.ts';
import { formatTable } from '../src/site/plan-format.ts';
import { generateSite } from './generate.ts';

function best(fn: () => void, reps = 5): number {
  let min = Infinity;
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    fn();
    min = Math.min(min, performance.now() - t);
  }
  return min;
}

function run(label: string, hosts: number, vms: number): string[] {
  const xml = serializeSite(generateSite(hosts, vms));
  const r = loadSite(xml, 'bench.xml');
  if (!r.ok) throw new Error(r.errors[0]!.message);
  const scan = best(() => scanElements(xml));
  const check = best(() => XMLValidator.validate(xml));
  const parser = new XMLParser({ ignoreAttributes: false, processEntities: false, parseTagValue: false });
  const parse = best(() => parser.parse(xml));
  const total = best(() => loadSite(xml, 'bench.xml'));
  return [
    label,
    (xml.length / 2 ** 20).toFixed(1),
    scan.toFixed(1),
    check.toFixed(1),
    parse.toFixed(1),
    total.toFixed(1),
  ];
}

run('warm-up', 100, 1000);
const rows = [run('baseline 100 hosts / 1,000 VMs', 100, 1000), run('1,000 hosts / 10,000 VMs', 1000, 10000)];
const ratio = (Number(rows[1]![5]) / Number(rows[0]![5])).toFixed(1);
process.stdout.write(
  formatTable(['run', 'XML MiB', 'scan ms', 'XMLValidator ms', 'XMLParser ms', 'loadSite total ms (best of 5)'], rows) +
    '\n',
);
process.stdout.write(
  `x baseline: ${ratio} (10x the input)\ngoal: loadSite < 400 ms for 1,000 hosts / 10,000 VMs: ${Number(rows[1]![5]) < 400 ? 'MET' : 'NOT MET'}\n`,
);
