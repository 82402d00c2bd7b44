// The paper's Figure 5, reproduced: time to deploy N hosts (1, 2, 4, 8, 16, 32) by unicast (rsync),
// multicast and broadcast (udpcast) and a pipelined chain, in the netns lab with every link (the image server's
// included) shaped by tc to one rate. Each time is printed as a ratio of the one-host unicast time and
// of the physical limit (image bytes / link rate). Two times per run: the image phase (the slowest
// image starting to flow (first unicast pull, or the multicast/chain sender starting once the session's
// machines joined) to the last host holding a checksum-verified copy) and the whole deploy (PXE to the
// agent reporting).
// Goal: 16 hosts by multicast or chain within 1.3x of one host; unicast grows linearly.
// The default rate is 20 Mbit/s: 16 lab machines at 100 Mbit/s make this 2-core machine the bottleneck
// (kernel bridging of 16 streams plus 16 installers), and the table would measure the CPU, not the links.
// Each (method, hosts) point is run --repeat times (default 5): the table gives the median with min-max.
// Run (root): npx tsx bench/deploy-figure5.ts [--sizes 1,2,4,8,16,32] [--rate 20] [--image-mib 16]
//             [--methods unicast,multicast,broadcast,chain] [--disk-dir /dev/shm] [--repeat 5]
import { rm } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { enqueueDeploy } from '../src/services/deploy-service.ts';
import { DEPLOY_QUEUE } from '../src/runtime/queues.ts';
import type { TransferMethod } from '../src/deploy/transfer.ts';
import { labSupported } from '../test/lab/netns-lab.ts';
import { startDeploySite } from '../test/lab/deploy-site.ts';

const run = promisify(execFile);

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
}

async function main() {
  const why = labSupported();
  if (why) {
    console.log(`deploy-figure5: cannot run here: ${why}`);
    process.exit(0);
  }
  const sizes = arg('sizes', '1,2,4,8,16,32').split(',').map(Number);
  const repeat = Number(arg('repeat', '5'));
  const methods = arg('methods', 'unicast,multicast,broadcast,chain').split(',') as TransferMethod[];
  const rateMbit = Number(arg('rate', '20'));
  const payloadMiB = Number(arg('image-mib', '16'));
  const maxN = Math.max(...sizes);
  // Each lab machine's disk in RAM by default: on real hardware every machine writes its own disk, here
  // they would all share this machine's one (--disk-dir DIR to put them elsewhere).
  const diskDir = arg('disk-dir', '/dev/shm');
  // ext4 needs room beyond the payload (journal, metadata).
  const imageMiB = Math.ceil(payloadMiB * 1.1) + 16;
  const site = await startDeploySite({
    nodes: maxN,
    rateMbit,
    payloadMiB,
    imageMiB,
    diskMiB: imageMiB + 32,
    sessionWaitS: 60,
    ...(diskDir ? { diskDir } : {}),
  });
  const limitS = (site.image.bytes * 8) / (rateMbit * 1e6);
  console.log(
    `image ${(site.image.bytes / 1048576).toFixed(1)} MiB, links ${rateMbit} Mbit/s: physical limit ${limitS.toFixed(2)} s per copy; ${maxN} lab machines`,
  );
  site.startWorker();
  // Interrupted: take the lab down (namespaces, bridge, RAM disks) before leaving.
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => void site.close().finally(() => process.exit(130)));
  const runs: { method: TransferMethod; n: number; image: number; total: number; failed: number }[] = [];
  try {
    // Rounds outermost: every point gets its first run before any gets its second, so a run cut short
    // (a deadline, a crash) still covers every method and size, and a burst of load from other work
    // lands on several points' runs instead of all of one point's.
    for (let rep = 0; rep < repeat; rep++) {
      for (const method of methods)
        for (const n of sizes) {
          const nodes = site.lab.nodes.slice(0, n);
          // Fresh machines: off, blank disks, no Xen state left from the last run.
          for (const node of nodes) {
            await node.power.off();
            await rm(node.disk, { force: true, recursive: true });
            await run('truncate', ['-s', `${imageMiB + 32}M`, node.disk]);
            await rm(join(node.dir, 'xen'), { recursive: true, force: true });
          }
          const t0 = performance.now();
          const req = await enqueueDeploy(site.rt, site.imagesDir, {
            macs: nodes.map((x) => x.mac),
            method,
            image: site.image.name,
            disks: Object.fromEntries(nodes.map((x) => [x.mac, x.disk])),
          });
          const q = site.rt.queue(DEPLOY_QUEUE);
          let states: string[] = [];
          let jobs: Awaited<ReturnType<typeof q.getJob>>[] = [];
          for (;;) {
            jobs = await Promise.all(req.jobs.map((j) => q.getJob(j.jobId)));
            states = await Promise.all(jobs.map((j) => j!.getState()));
            if (states.every((s) => s === 'completed' || s === 'failed')) break;
            await new Promise((r) => setTimeout(r, 200));
          }
          const total = (performance.now() - t0) / 1000;
          // Image phase: from the moment the image starts flowing (the first unicast pull, or the session's
          // sender starting once its machines are there) to the last host holding a verified copy.
          const st = await Promise.all(
            nodes.map(async (x) => {
              const r = await site.rt.deploys.record(x.name);
              return [r.imageStartedAt, r.imageDoneAt];
            }),
          );
          const done = Math.max(...st.map((v) => Number(v[1])).filter(Number.isFinite));
          const sentAt = (await site.rt.deploys.sessionSentAt(req.session)) ?? 0;
          const from =
            method === 'unicast' || !sentAt ? Math.min(...st.map((v) => Number(v[0])).filter(Number.isFinite)) : sentAt;
          const image = (done - from) / 1000;
          if (process.env.XSM_BENCH_DETAIL) {
            for (const [i, v] of st.entries())
              console.log(
                `    ${nodes[i]!.name}: image from +${((Number(v[0]) - from) / 1000).toFixed(2)} s to +${((Number(v[1]) - from) / 1000).toFixed(2)} s`,
              );
          }
          const failed = states.filter((s) => s === 'failed').length;
          runs.push({ method, n, image, total, failed });
          // Why each failed (timeouts at scale are this machine's CPU; anything else is a finding).
          // A completed job keeps the reason of an attempt that failed before its retry succeeded.
          for (const [i, j] of jobs.entries())
            if (j?.failedReason)
              console.log(
                `    ${j.data.host}: ${states[i] === 'failed' ? 'FAILED' : 'an attempt failed, the retry completed'}: ${j.failedReason}`,
              );
          console.log(
            `  round ${rep + 1}: ${method} x${n}: image ${image.toFixed(2)} s, deploy ${total.toFixed(2)} s${failed ? `, ${failed} FAILED` : ''} (load ${loadavg()[0]!.toFixed(1)})`,
          );
          for (const x of nodes) await site.rt.deploys.forget(x.name);
        }
    }
  } finally {
    await site.close();
  }
  const results = summarize(runs);
  const base = results.find((r) => r.method === 'unicast' && r.n === 1) ?? results[0]!;
  const rows = [
    [
      'method',
      'hosts',
      `image s (min-max of ${repeat})`,
      'x 1-host unicast',
      'x limit',
      'x own 1-host',
      'deploy s (min-max)',
      'x 1-host unicast',
      'x limit',
      'x own 1-host',
    ],
  ];
  for (const r of results) {
    const own1 = results.find((x) => x.method === r.method && x.n === 1) ?? r;
    rows.push([
      r.method,
      String(r.n),
      `${r.image.toFixed(2)} (${r.imageMin.toFixed(2)}-${r.imageMax.toFixed(2)})`,
      (r.image / base.image).toFixed(2),
      (r.image / limitS).toFixed(2),
      (r.image / own1.image).toFixed(2),
      `${r.total.toFixed(2)} (${r.totalMin.toFixed(2)}-${r.totalMax.toFixed(2)})`,
      (r.total / base.total).toFixed(2),
      (r.total / limitS).toFixed(2),
      (r.total / own1.total).toFixed(2) + (r.failed ? ` (${r.failed} failed)` : ''),
    ]);
  }
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((x) => x[i]!.length)));
  console.log('');
  for (const r of rows) console.log(r.map((c, i) => c.padStart(w[i]!)).join('  '));
  console.log(
    `machine: ${cpus().length} cores, load average ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')} at the end (shared with other work while measuring)`,
  );
  for (const m of ['multicast', 'broadcast', 'chain'] as const) {
    const one = results.find((r) => r.method === m && r.n === 1);
    const big = results.filter((r) => r.method === m).sort((a, b) => b.n - a.n)[0];
    if (one && big && big.n > 1)
      console.log(
        `goal (${m}, ${big.n} hosts within 1.3x of one host): image phase ${(big.image / one.image).toFixed(2)}x, whole deploy ${(big.total / one.total).toFixed(2)}x -> ${big.image / one.image <= 1.3 ? 'MET' : 'NOT MET'} on the image phase`,
      );
  }
}

interface Point {
  method: TransferMethod;
  n: number;
  image: number;
  imageMin: number;
  imageMax: number;
  total: number;
  totalMin: number;
  totalMax: number;
  failed: number;
}

function median(xs: number[]): number {
  const v = [...xs].sort((a, b) => a - b);
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

/** One row per (method, hosts): medians of the runs with their min and max. */
function summarize(runs: { method: TransferMethod; n: number; image: number; total: number; failed: number }[]) {
  const out: Point[] = [];
  for (const r of runs) {
    if (out.some((p) => p.method === r.method && p.n === r.n)) continue;
    const same = runs.filter((x) => x.method === r.method && x.n === r.n);
    const im = same.map((x) => x.image);
    const tot = same.map((x) => x.total);
    out.push({
      method: r.method,
      n: r.n,
      image: median(im),
      imageMin: Math.min(...im),
      imageMax: Math.max(...im),
      total: median(tot),
      totalMin: Math.min(...tot),
      totalMax: Math.max(...tot),
      failed: same.reduce((a, x) => a + x.failed, 0),
    });
  }
  return out;
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
