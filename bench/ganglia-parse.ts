// Issue 5 figure: the poller parses a gmetad XML of 1,000 hosts x 40 metrics in under 200 ms.
// Baseline in the same run: 100 hosts x 40 metrics. Each size is parsed 5 times after a warm-up; the
// median is reported. Run: npx tsx bench/ganglia-parse.ts
import { parseGangliaXml } from '../src/ganglia/xml.ts';
import { gangliaXml } from './ganglia-xml.ts';

function measure(hosts: number): { hosts: number; bytes: number; ms: number; metrics: number } {
  const xml = gangliaXml(hosts, 40);
  parseGangliaXml(xml);
  const times: number[] = [];
  let metrics = 0;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const dump = parseGangliaXml(xml);
    times.push(performance.now() - t0);
    metrics = dump.clusters.reduce((n, c) => n + c.hosts.reduce((k, h) => k + Object.keys(h.metrics).length, 0), 0);
  }
  times.sort((a, b) => a - b);
  return { hosts, bytes: xml.length, ms: times[2]!, metrics };
}

const base = measure(100);
const big = measure(1000);
console.log('hosts  metrics   MiB    parse ms  ms/1k metrics');
for (const r of [base, big])
  console.log(
    `${String(r.hosts).padStart(5)} ${String(r.metrics).padStart(8)} ${(r.bytes / 1048576).toFixed(1).padStart(5)} ${r.ms.toFixed(1).padStart(10)} ${((r.ms / r.metrics) * 1000).toFixed(2).padStart(13)}`,
  );
console.log(`ratio 1000/100 hosts: time x${(big.ms / base.ms).toFixed(2)} for x10 the data`);
console.log(
  `goal < 200 ms for 1,000 hosts x 40 metrics: ${big.ms < 200 ? 'MET' : 'NOT MET'} (${big.ms.toFixed(0)} ms)`,
);
