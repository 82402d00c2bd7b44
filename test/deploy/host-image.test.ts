// Capture and in-place update against real rsync and a real OpenSSH server: sshd on 127.0.0.1 (its own
// host key, a test-only client key) stands for an installed Dom0 whose root file system is a directory of
// this test (a few files, fake identity files among them), and `xl` there is the simulated Xen host's.
// Proves: identity is left out of a capture and kept by an update, a dry run changes nothing, a job resumed
// after a crash does not redo finished steps, and SSH failures name the host. Needs root (sshd).

import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { LocalShell } from '../../src/drivers/shell.ts';
import { silentLogger } from '../../src/lib/log.ts';
import { memoryJournal, runSteps } from '../../src/lib/steps.ts';
import { MemoryDeployStore } from '../../src/state/deploy-store.ts';
import { ImageCatalogue } from '../../src/deploy/image-catalogue.ts';
import { packTree, sha256File, unpackImage, type ImageManifest } from '../../src/deploy/image.ts';
import { Worker, type Job } from 'bullmq';
import { processHostUpdate, processImageCapture, runHostUpdate, runImageCapture } from '../../src/jobs/host-image.ts';
import { DEPLOY_QUEUE, type HostUpdateJobData, type ImageCaptureJobData } from '../../src/runtime/queues.ts';
import { workerConnectionOptions } from '../../src/lib/redis.ts';
import { startApi } from '../../src/api/listen.ts';
import { TokenTable } from '../../src/api/auth.ts';
import { main } from '../../src/cli/main.ts';
import { startTestSite } from '../integration/harness.ts';
import { freePort, loopbackDom0Unsupported, startLoopbackDom0, type LoopbackDom0 } from '../lab/loopback-dom0.ts';
import { captureSteps } from '../../workflows/capture-image.ts';
import { bootFilesFrom, parseGrubXenArgs, parseGrubXenEntry, renderGrubXenCfg } from '../../src/deploy/bootloader.ts';
import { updateSteps } from '../../workflows/update-host.ts';
import type { HostImageEnv } from '../../workflows/host-image-env.ts';

const unsupported = loopbackDom0Unsupported();
const canRun = unsupported === undefined;
const maybe = canRun ? test.serial : test.serial.skip;
if (!canRun)
  test('host image lab', (t) => {
    t.log(`skipped: ${unsupported}`);
    t.pass();
  });

/**
 * One mtime for every planted file, in the host's tree and in the golden one: a file the image does not change
 * then has the same size and time on both sides, as on a host installed from the previous image. Written at
 * their own moments, the two copies of etc/xen/xl.conf straddled a second under CI's load and rsync's quick
 * check listed it as changed.
 */
const PLANTED_AT = new Date('2026-01-01T00:00:00Z');

/** Writes files (path -> content) under root, each with the mtime PLANTED_AT. */
async function plant(root: string, files: Record<string, string>): Promise<void> {
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), text);
    await utimes(join(root, path), PLANTED_AT, PLANTED_AT);
  }
}

/** Every file under root with its content: what "nothing changed" is compared by. */
async function snapshot(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(root, { recursive: true, withFileTypes: true })) {
    const p = join(e.parentPath, e.name);
    if (e.isFile()) out[p.slice(root.length)] = `${(await stat(p)).mtimeMs}:${await readFile(p, 'utf8')}`;
    else if (e.isDirectory()) out[p.slice(root.length) + '/'] = '';
  }
  return out;
}

const IDENTITY = {
  'etc/hostname': 'node1\n',
  'etc/ssh/ssh_host_ed25519_key': 'node1 private host key\n',
  'etc/ssh/ssh_host_ed25519_key.pub': 'ssh-ed25519 AAAA node1\n',
  'etc/machine-id': '0123456789abcdef0123456789abcdef\n',
  'var/lib/dbus/machine-id': '0123456789abcdef0123456789abcdef\n',
  'etc/xsm/host-agent.env': 'XSM_HOST=node1\n',
  'var/lib/xsm/site.xml': '<XSMConfig/>\n',
  'root/.ssh/authorized_keys': 'ssh-ed25519 AAAA deploy-worker\n',
  'etc/network/interfaces.d/xsm': 'address 10.9.0.11\n',
};
const HOST_DATA = { 'var/log/syslog': 'node1 log\n', 'tmp/scratch': 'x\n', 'srv/xen/disks/vm1.img': 'vm disk\n' };
const SYSTEM = {
  'usr/bin/tool': 'tool v1\n',
  'etc/motd': 'captured system\n',
  'etc/xen/xl.conf': 'autoballoon="off"\n',
};

let lab: LoopbackDom0 | undefined;
test.before(async () => {
  if (canRun) lab = await startLoopbackDom0();
});
test.after.always(async () => {
  await lab?.stop();
});

async function setup(t: { teardown(fn: () => Promise<void>): void }, opts: { port?: number; hostKey?: string } = {}) {
  const root = await mkdtemp(join(tmpdir(), 'xsm-dom0-root-'));
  const imagesDir = await mkdtemp(join(tmpdir(), 'xsm-images-'));
  t.teardown(async () => {
    await rm(root, { recursive: true, force: true });
    await rm(imagesDir, { recursive: true, force: true });
  });
  await plant(root, { ...IDENTITY, ...HOST_DATA, ...SYSTEM });
  const deploys = new MemoryDeployStore();
  await deploys.setFields('node1', { hostKey: opts.hostKey ?? lab!.fingerprint });
  const env: HostImageEnv = {
    deploys,
    log: silentLogger,
    imagesDir,
    local: new LocalShell(),
    ssh: { privateKey: lab!.clientKey, port: opts.port ?? lab!.port, root },
    verifyTimeoutMs: 30_000,
  };
  return { root, imagesDir, env, deploys };
}

const node1 = (name: string) => ({ host: 'node1', address: '127.0.0.1', name });

maybe('capture pulls the system into a new version and leaves the host identity and data out', async (t) => {
  const { imagesDir, env } = await setup(t);
  const r = await runImageCapture(env, node1('golden'), 'capture-1', memoryJournal());
  t.is(r.image, 'golden:1');
  const m = r.manifest!;
  t.deepEqual(m.source, { kind: 'captured', host: 'node1' });
  t.is(m.sha256, await sha256File(join(imagesDir, m.file)));
  t.is(m.bytes, (await stat(join(imagesDir, m.file))).size);
  t.deepEqual(
    (await new ImageCatalogue(imagesDir).list()).map((x) => `${x.name}:${x.version}`),
    ['golden:1'],
  );
  const tree = join(imagesDir, 'check');
  await unpackImage(env.local, join(imagesDir, m.file), tree);
  for (const [path, text] of Object.entries(SYSTEM)) t.is(await readFile(join(tree, path), 'utf8'), text, path);
  for (const path of [...Object.keys(IDENTITY), ...Object.keys(HOST_DATA)])
    t.false(
      await stat(join(tree, path)).then(
        () => true,
        () => false,
      ),
      `${path} must not be in the image`,
    );
  // The staging copy is gone once the version is registered.
  t.deepEqual(await readdir(join(imagesDir, '.staging')), []);
});

maybe('a capture resumed after a crash between steps does not pull again, and registers once', async (t) => {
  const { root, imagesDir, env } = await setup(t);
  const journal = memoryJournal();
  const ctx = { env, data: node1('golden'), jobId: 'capture-crash' };
  await runSteps('image-capture', captureSteps.slice(0, 2), ctx, journal, silentLogger);
  // The worker died as pack started: a file that appears on the host now must not reach the image.
  journal.state.current = 'pack';
  await plant(root, { 'etc/late': 'written after the pull\n' });
  const r = await runImageCapture(env, node1('golden'), 'capture-crash', journal);
  t.is(r.image, 'golden:1');
  const tree = join(imagesDir, 'check');
  await unpackImage(env.local, join(imagesDir, r.manifest!.file), tree);
  t.is(await readFile(join(tree, 'usr/bin/tool'), 'utf8'), 'tool v1\n');
  t.false(
    await stat(join(tree, 'etc/late')).then(
      () => true,
      () => false,
    ),
    'pull was redone',
  );
  // Died again after register but before it was on record: the resumed register finds its version.
  const again = memoryJournal({ done: ['reach-host', 'pull', 'pack'], current: 'register' });
  const r2 = await runImageCapture(env, node1('golden'), 'capture-crash', again);
  t.is(r2.image, 'golden:1');
  t.deepEqual(
    (await new ImageCatalogue(imagesDir).versions('golden')).map((x) => x.version),
    [1],
  );
});

/** An image version made from a "golden" tree: the next system, with identity files of its own. */
async function goldenVersion(env: HostImageEnv, extra: Record<string, string> = {}): Promise<ImageManifest> {
  const tree = await mkdtemp(join(tmpdir(), 'xsm-golden-'));
  try {
    await plant(tree, {
      'usr/bin/tool': 'tool v2, a longer file than before\n',
      'etc/xen/xl.conf': 'autoballoon="off"\n',
      'etc/new-file': 'new in v2\n',
      'etc/hostname': 'golden\n',
      'etc/ssh/ssh_host_ed25519_key': 'golden private key\n',
      'etc/machine-id': 'ffffffffffffffffffffffffffffffff\n',
      ...extra,
    });
    await mkdir(join(env.imagesDir, 'dom0'), { recursive: true });
    const packed = await packTree(env.local, tree, join(env.imagesDir, 'dom0/golden.img'));
    return await new ImageCatalogue(env.imagesDir).add('dom0', 'dom0/golden.img', {
      ...packed,
      source: { kind: 'built' },
      description: 'test',
    });
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
}

maybe('a dry run lists what the update would add, change and delete, and touches nothing', async (t) => {
  const { root, env } = await setup(t);
  const image = await goldenVersion(env);
  const before = await snapshot(root);
  const r = await runHostUpdate(
    env,
    { host: 'node1', address: '127.0.0.1', image, dryRun: true },
    'update-dry',
    memoryJournal(),
  );
  t.deepEqual(await snapshot(root), before);
  const c = r.changes!;
  const paths = (kind: string) =>
    c.listed
      .filter((x) => x.change === kind && x.kind === 'file')
      .map((x) => x.path)
      .sort();
  t.deepEqual(paths('add'), ['/etc/new-file']);
  t.deepEqual(paths('change'), ['/usr/bin/tool']);
  t.deepEqual(paths('delete'), ['/etc/motd']);
  t.is(c.bytes, 'new in v2\n'.length + 'tool v2, a longer file than before\n'.length);
  t.is((await env.deploys.field('node1', 'image')) ?? null, null);
});

maybe('an update installs the image, keeps identity and host data, verifies Xen and records N:V', async (t) => {
  const { root, env } = await setup(t);
  const image = await goldenVersion(env);
  const r = await runHostUpdate(
    env,
    { host: 'node1', address: '127.0.0.1', image, dryRun: false },
    'update-1',
    memoryJournal(),
  );
  t.is(r.image, 'dom0:1');
  t.is(await readFile(join(root, 'usr/bin/tool'), 'utf8'), 'tool v2, a longer file than before\n');
  t.is(await readFile(join(root, 'etc/new-file'), 'utf8'), 'new in v2\n');
  t.false(
    await stat(join(root, 'etc/motd')).then(
      () => true,
      () => false,
    ),
    'a file the image lacks is deleted',
  );
  for (const [path, text] of Object.entries({ ...IDENTITY, ...HOST_DATA }))
    t.is(await readFile(join(root, path), 'utf8'), text, `${path} is the host's own`);
  t.is(await env.deploys.field('node1', 'image'), 'dom0:1');
  t.is(await env.deploys.field('node1', 'imageSha256'), image.sha256);
  // A second dry run: the host is now what the image says.
  const again = await runHostUpdate(
    env,
    { host: 'node1', address: '127.0.0.1', image, dryRun: true },
    'update-dry-2',
    memoryJournal(),
  );
  t.is(again.changes!.listed.filter((x) => x.kind === 'file').length, 0);
});

maybe('an update resumed after a crash between sync and verify does not sync again', async (t) => {
  const { root, env } = await setup(t);
  const image = await goldenVersion(env);
  const data = { host: 'node1', address: '127.0.0.1', image, dryRun: false };
  const journal = memoryJournal();
  await runSteps('host-update', updateSteps.slice(0, 2), { env, data, jobId: 'update-crash' }, journal, silentLogger);
  t.is(await readFile(join(root, 'etc/new-file'), 'utf8'), 'new in v2\n');
  // The worker died as the step after the sync started; a file changed on the host since must stay as it is.
  journal.state.current = 'bootloader';
  await plant(root, { 'usr/bin/tool': 'edited on the host after the sync\n' });
  const r = await runHostUpdate(env, data, 'update-crash', journal);
  t.like(r.changes, { added: 1, changed: 1, deleted: 1, listed: [], truncated: true }, 'the counts of the first sync');
  t.is(await readFile(join(root, 'usr/bin/tool'), 'utf8'), 'edited on the host after the sync\n');
  t.deepEqual(journal.state.done, ['unpack', 'sync', 'bootloader', 'verify-xen', 'record']);
  t.is(await env.deploys.field('node1', 'image'), 'dom0:1');
});

maybe('an update to a new Xen and kernel re-renders grub.cfg so the host boots them; a dry run says so', async (t) => {
  const { root, env } = await setup(t);
  const args = { xenArgs: 'dom0=pvh dom0_mem=2048M', kernelArgs: 'root=LABEL=root ro console=hvc0' };
  const oldBoot = ['xen-4.17-amd64.gz', 'vmlinuz-6.1.0-28-amd64', 'initrd.img-6.1.0-28-amd64'];
  // The host as deploy left it: Xen and a kernel in /boot, GRUB's entry for them and its modules.
  await plant(root, {
    ...Object.fromEntries(oldBoot.map((f) => [`boot/${f}`, `${f}\n`])),
    'boot/grub/grub.cfg': renderGrubXenCfg(bootFilesFrom(oldBoot, 'node1'), args),
    'boot/grub/i386-pc/core.img': 'core matching the boot code on the disk\n',
  });
  const newBoot = ['xen-4.19-amd64.gz', 'vmlinuz-6.1.0-30-amd64', 'initrd.img-6.1.0-30-amd64'];
  const image = await goldenVersion(env, Object.fromEntries(newBoot.map((f) => [`boot/${f}`, `${f}\n`])));
  const data = { host: 'node1', address: '127.0.0.1', image, dryRun: true };
  const cfgBefore = await readFile(join(root, 'boot/grub/grub.cfg'), 'utf8');

  const dry = await runHostUpdate(env, data, 'update-boot-dry', memoryJournal());
  t.is(
    dry.bootloader,
    'grub.cfg would boot xen-4.19-amd64.gz and vmlinuz-6.1.0-30-amd64 (was xen-4.17-amd64.gz and vmlinuz-6.1.0-28-amd64)',
  );
  t.is(await readFile(join(root, 'boot/grub/grub.cfg'), 'utf8'), cfgBefore, 'the dry run leaves grub.cfg alone');

  const r = await runHostUpdate(env, { ...data, dryRun: false }, 'update-boot', memoryJournal());
  t.is(r.bootloader, dry.bootloader!.replace('would boot', 'now boots'));
  const cfg = await readFile(join(root, 'boot/grub/grub.cfg'), 'utf8');
  const entry = parseGrubXenEntry(cfg)!;
  t.deepEqual(entry, {
    xen: '/boot/xen-4.19-amd64.gz',
    modules: ['/boot/vmlinuz-6.1.0-30-amd64', '/boot/initrd.img-6.1.0-30-amd64'],
  });
  // What GRUB will load at the next boot is on the host; the old kernel went with the sync.
  for (const f of [entry.xen, ...entry.modules]) t.is(await readFile(join(root, f), 'utf8'), `${f.slice(6)}\n`);
  t.false(
    await stat(join(root, 'boot/vmlinuz-6.1.0-28-amd64')).then(
      () => true,
      () => false,
    ),
  );
  t.deepEqual(parseGrubXenArgs(cfg), args, "the host's Xen and kernel arguments are kept");
  t.is(await readFile(join(root, 'boot/grub/i386-pc/core.img'), 'utf8'), 'core matching the boot code on the disk\n');
  t.is(await env.deploys.field('node1', 'bootKernel'), 'vmlinuz-6.1.0-30-amd64');
  // The same update again: grub.cfg is already right and is not rewritten.
  const again = await runHostUpdate(env, { ...data, dryRun: false }, 'update-boot-2', memoryJournal());
  t.is(again.bootloader, 'grub.cfg already boots xen-4.19-amd64.gz and vmlinuz-6.1.0-30-amd64');
  t.is(await readFile(join(root, 'boot/grub/grub.cfg'), 'utf8'), cfg);
});

maybe('an image whose file no longer matches its manifest is refused before the host is touched', async (t) => {
  const { root, env } = await setup(t);
  const image = await goldenVersion(env);
  await writeFile(join(env.imagesDir, image.file), 'damaged');
  const before = await snapshot(root);
  const e = await t.throwsAsync(
    runHostUpdate(env, { host: 'node1', address: '127.0.0.1', image, dryRun: false }, 'update-bad', memoryJournal()),
  );
  t.regex(e.message, /^image dom0:1: .* has SHA-256 [0-9a-f]{64}, its manifest says .*; the host was not touched/);
  t.deepEqual(await snapshot(root), before);
});

maybe('an unreachable host and a host with another key fail with errors that name the host', async (t) => {
  const down = await setup(t, { port: await freePort() });
  const e1 = await t.throwsAsync(runImageCapture(down.env, node1('x'), 'c-down', memoryJournal()));
  t.regex(e1.message, /host node1 \(127\.0\.0\.1:\d+\): no SSH answer/);
  const other = await setup(t, { hostKey: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' });
  const e2 = await t.throwsAsync(runImageCapture(other.env, node1('x'), 'c-key', memoryJournal()));
  t.regex(e2.message, /host node1 .* not the SHA256:AAAA.* XSM recorded at install; nothing was sent/);
  const refused = await setup(t);
  refused.env.ssh.privateKey = Buffer.from(
    execFileSync('sh', ['-c', `ssh-keygen -q -t ed25519 -N '' -f ${refused.root}.key && cat ${refused.root}.key`]),
  );
  t.teardown(() =>
    rm(`${refused.root}.key`, { force: true }).then(() => rm(`${refused.root}.key.pub`, { force: true })),
  );
  const e4 = await t.throwsAsync(runImageCapture(refused.env, node1('x'), 'c-login', memoryJournal()));
  t.regex(e4.message, /host node1 \(127\.0\.0\.1\): SSH login failed .*Permission denied.*deploy worker's key/);
  const unknown = await setup(t);
  await unknown.deploys.forget('node1');
  const e3 = await t.throwsAsync(runImageCapture(unknown.env, node1('x'), 'c-unknown', memoryJournal()));
  t.regex(e3.message, /host node1: no SSH host key on record/);
});

maybe(
  'xsm image capture and xsm host update --dry-run run through the API, the deploy queue and a worker',
  async (t) => {
    const site = await startTestSite([], { agents: false });
    const { root, imagesDir, env } = await setup(t);
    const workerEnv: HostImageEnv = { ...env, deploys: site.rt.deploys };
    const sshdDown: HostImageEnv = { ...workerEnv, ssh: { ...workerEnv.ssh, port: await freePort() } };
    const worker = new Worker(
      DEPLOY_QUEUE,
      (job: Job) =>
        job.name === 'host-update'
          ? processHostUpdate(workerEnv, job as Job<HostUpdateJobData>)
          : // The capture's first attempt meets a host whose sshd is not up yet (nothing listens on that
            // port): a passing failure, retried with backoff by BullMQ.
            processImageCapture(job.attemptsMade === 0 ? sshdDown : workerEnv, job as Job<ImageCaptureJobData>),
      { connection: workerConnectionOptions(site.rt.config), prefix: site.rt.config.prefix },
    );
    const api = await startApi({
      rt: site.rt,
      imagesDir,
      log: silentLogger,
      tokens: new TokenTable([{ token: 'host-image-admin-0123456789', role: 'admin', name: 'adm' }]),
    });
    t.teardown(async () => {
      await api.close();
      await worker.close();
      await site.close();
    });
    await site.rt.sites.submit(
      '<XSMConfig><Hosts><Host name="node1" address="127.0.0.1" cpus="4" memory="2048"/></Hosts></XSMConfig>',
      { base: 0, author: 't', reason: 't' },
    );
    await site.rt.deploys.setFields('node1', { hostKey: lab!.fingerprint });
    process.env.XSM_API = api.url;
    process.env.XSM_TOKEN = 'host-image-admin-0123456789';
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l) };

    t.is(await main(['image', 'capture', 'node1', '--name', 'golden'], io), 0, err.join('\n'));
    t.regex(out.join('\n'), /^golden:1: [\d.]+ MiB, sha256 [0-9a-f]{64}$/m);
    const captureJob = (await site.rt.queue(DEPLOY_QUEUE).getJobs(['completed'])).find(
      (j) => j.name === 'image-capture',
    )!;
    t.is(captureJob.attemptsMade, 2, 'the first attempt failed on SSH, the retry captured');
    // The host drifts from its image: a local file, which the image would delete.
    await plant(root, { 'etc/local-only': 'made by hand\n' });
    out.length = 0;
    t.is(await main(['host', 'update', 'node1', '--image', 'golden', '--dry-run'], io), 0, err.join('\n'));
    t.regex(out.join('\n'), /^- \/etc\/local-only$/m);
    t.regex(out.join('\n'), /node1 would get golden:1: 0 added, 0 changed, 1 deleted, 0\.0 MiB to write/);
    t.is(await readFile(join(root, 'etc/local-only'), 'utf8'), 'made by hand\n', 'the dry run changed nothing');
    out.length = 0;
    t.is(await main(['host', 'update', 'node1', '--image', 'golden:1', '--json'], io), 0, err.join('\n'));
    const doc = JSON.parse(out.join('\n')) as { state: string; result: { changes: { deleted: number } } };
    t.is(doc.state, 'completed');
    t.is(doc.result.changes.deleted, 1);
    t.false(
      await stat(join(root, 'etc/local-only')).then(
        () => true,
        () => false,
      ),
    );
    t.is(await site.rt.deploys.field('node1', 'image'), 'golden:1');
  },
);
