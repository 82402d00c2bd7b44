// What an in-place update costs beside reimaging: a Dom0 root (a tree of FILES files, SIZE MiB in all) gets
// a new image version in which 1% of the files changed and 1% are new. The update (workflows/update-host.ts's
// sync: rsync --delete over SSH with the identity excludes) and its dry run are timed against the baseline,
// what a unicast redeploy moves: the whole image file by rsync over the same SSH. Same run, same machine,
// so the ratio holds on a loaded machine; the wall-clock figures do not. Medians of RUNS (min-max).
// Run (root: a loopback sshd stands for the Dom0): npx tsx bench/host-update.ts [--runs 5] [--files 2000] [--mib 200]

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { LocalShell } from '../src/drivers/shell.ts';
import { pinnedSsh, runRsync, updateArgs, parseItemizedChanges } from '../src/deploy/host-sync.ts';
import { packTree } from '../src/deploy/image.ts';
import { loopbackDom0Unsupported, startLoopbackDom0 } from '../test/lab/loopback-dom0.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    files: { type: 'string', default: '2000' },
    mib: { type: 'string', default: '200' },
  },
});
const RUNS = Number(values.runs);
const FILES = Number(values.files);
const MIB = Number(values.mib);

const why = loopbackDom0Unsupported();
if (why) {
  console.log(`bench/host-update: skipped: ${why}`);
  process.exit(0);
}

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const med = s[Math.floor(s.length / 2)]!;
  return `${med.toFixed(2)} s (${s[0]!.toFixed(2)}–${s[s.length - 1]!.toFixed(2)})`;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

const local = new LocalShell();
const work = await mkdtemp(join(tmpdir(), 'xsm-bench-update-'));
const dom0 = await startLoopbackDom0();
try {
  const perFile = Math.floor((MIB * 1048576) / FILES);
  const v1 = join(work, 'v1');
  for (let i = 0; i < FILES; i++) {
    const dir = join(v1, 'usr/lib', `pkg${Math.floor(i / 50)}`);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, `f${i}`), randomBytes(perFile));
  }
  await writeFile(join(v1, 'usr/lib/.keep'), '');
  const v2 = join(work, 'v2');
  execFileSync('cp', ['-a', v1, v2]);
  const touched = Math.max(1, Math.floor(FILES / 100));
  for (let i = 0; i < touched; i++) {
    const dir = join(v2, 'usr/lib', `pkg${Math.floor((i * 97) / 50) % Math.ceil(FILES / 50)}`);
    await writeFile(join(dir, `f${(i * 97) % FILES}`), randomBytes(perFile));
    await writeFile(join(dir, `new${i}`), randomBytes(perFile));
  }
  const image = join(work, 'v2.img');
  const packed = await packTree(local, v2, image);
  const host = join(work, 'host');
  const target = { host: 'bench', address: '127.0.0.1', port: dom0.port, hostKeySha256: dom0.fingerprint };
  const sshToHost = await pinnedSsh(local, { ...target, privateKey: dom0.clientKey, root: host });
  const sshToScratch = await pinnedSsh(local, { ...target, privateKey: dom0.clientKey, root: join(work, 'scratch') });
  const reset = () => execFileSync('rsync', ['-a', '--delete', `${v1}/`, `${host}/`]);

  const dry: number[] = [];
  const update: number[] = [];
  const reimage: number[] = [];
  let summary = parseItemizedChanges('');
  for (let r = 0; r < RUNS; r++) {
    reset();
    dry.push(await timed(() => runRsync(local, 'bench', updateArgs(sshToHost, v2, true))));
    update.push(
      await timed(async () => {
        summary = parseItemizedChanges(await runRsync(local, 'bench', updateArgs(sshToHost, v2, false)));
      }),
    );
    await rm(join(work, 'scratch'), { recursive: true, force: true });
    await mkdir(join(work, 'scratch'));
    reimage.push(
      await timed(() =>
        runRsync(local, 'bench', ['-e', sshToScratch.rsh, '--whole-file', image, `${sshToScratch.remoteRoot}v2.img`]),
      ),
    );
  }
  await sshToHost.close();
  await sshToScratch.close();
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(`host update vs reimage: ${FILES} files, ${MIB} MiB tree; v2 changes ${touched} and adds ${touched}`);
  console.log(`  (loopback sshd; this 2-core machine is shared with other work: wall-clock figures are loaded)`);
  console.log(
    `  image (ext4) ${((await stat(image)).size / 1048576).toFixed(0)} MiB, sha256 ${packed.sha256.slice(0, 12)}…`,
  );
  console.log(
    `  baseline: reimage (whole image by rsync over SSH)  ${stats(reimage)}  ${(packed.bytes / 1048576).toFixed(1)} MiB moved`,
  );
  console.log(
    `  update in place (rsync --delete over SSH)         ${stats(update)}  ${(summary.bytes / 1048576).toFixed(1)} MiB written; ${summary.added} added, ${summary.changed} changed, ${summary.deleted} deleted`,
  );
  console.log(`  dry run (rsync --dry-run --itemize-changes)       ${stats(dry)}`);
  console.log(
    `  ratio update/reimage ${(med(update) / med(reimage)).toFixed(2)}x time, ${(summary.bytes / packed.bytes).toFixed(3)}x bytes; dry run/reimage ${(med(dry) / med(reimage)).toFixed(2)}x`,
  );
} finally {
  await dom0.stop();
  await rm(work, { recursive: true, force: true });
}
