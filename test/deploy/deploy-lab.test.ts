// Deployment in the netns lab: real dnsmasq (DHCP + TFTP), real sshd in each machine's installer and
// installed system, real sfdisk/debugfs on the disk images, real rsync, udpcast and the chain relay.
// Needs root; skipped (with the reason) where network namespaces cannot be made.
import test from 'ava';
import { enqueueDeploy, DeployRequestError } from '../../src/services/deploy-service.ts';
import { DEPLOY_QUEUE } from '../../src/runtime/queues.ts';
import type { DeployJobData } from '../../src/runtime/queues.ts';
import type { Job } from 'bullmq';
import { readFile, stat } from 'node:fs/promises';
import { filesystemSize } from '../../src/deploy/image.ts';
import { partitionFromJson } from '../../src/deploy/layout.ts';
import { join } from 'node:path';
import { labSupported } from '../lab/netns-lab.ts';
import { macHexhyp, renderLocalBootIpxe } from '../../src/deploy/dnsmasq.ts';
import { SshShell } from '../../src/drivers/ssh/ssh-shell.ts';
import { LocalShell, runChecked } from '../../src/drivers/shell.ts';
import { parseXlInfo } from '../../src/drivers/hypervisor/xl-parse.ts';
import { startDeploySite, type DeploySite } from '../lab/deploy-site.ts';

const unsupported = labSupported();
const labTest = unsupported ? test.skip : test.serial;
if (unsupported) {
  test('deployment lab', (t) => {
    t.log(`skipped: ${unsupported}`);
    t.pass();
  });
}

async function finish(s: DeploySite, jobIds: string[], timeoutMs = 150000): Promise<Job<DeployJobData>[]> {
  const q = s.rt.queue(DEPLOY_QUEUE);
  const until = Date.now() + timeoutMs;
  for (;;) {
    const jobs = (await Promise.all(jobIds.map((id) => q.getJob(id)))) as Job<DeployJobData>[];
    const states = await Promise.all(jobs.map((j) => j.getState()));
    if (states.every((x) => x === 'completed' || x === 'failed')) return jobs;
    if (Date.now() > until)
      throw new Error(
        `deploys not finished: ${states.join(',')}; consoles: ${s.lab.nodes.map((n) => `${n.name}: ${n.power.console.join(' | ')}`).join('; ')}`,
      );
    await new Promise((r) => setTimeout(r, 300));
  }
}

labTest('4 machines deployed in parallel by multicast; the one with a broken disk fails alone', async (t) => {
  const s = await startDeploySite({ nodes: 4, sessionWaitS: 8 });
  t.teardown(() => s.close());
  const broken = s.lab.nodes[2]!;
  await s.lab.breakDisk(broken);
  s.startWorker();
  const req = await enqueueDeploy(s.rt, s.imagesDir, {
    macs: s.lab.nodes.map((n) => n.mac),
    method: 'multicast',
    image: 'dom0-lab',
    disks: Object.fromEntries(s.lab.nodes.map((n) => [n.mac, n.disk])),
  });
  const jobs = await finish(
    s,
    req.jobs.map((j) => j.jobId),
  );
  for (const [i, job] of jobs.entries()) {
    const node = s.lab.nodes[i]!;
    if (node === broken) {
      t.is(await job.getState(), 'failed');
      t.is(job.attemptsMade, 1, 'a broken disk is a permanent error: not retried');
      t.regex(
        job.failedReason,
        new RegExp(`^${node.name}: partitioning ${node.disk.replace(/[/.]/g, '\\$&')} failed: .*\\(check the disk`),
      );
      continue;
    }
    t.is(await job.getState(), 'completed', `${node.name}: ${job.failedReason ?? ''}`);
    const state = await s.rt.deploys.record(node.name);
    t.is(state.imageSha256, s.image.sha256);
    t.is(state.transferMethod, 'multicast', `${node.name} got the image in the multicast round`);
    t.is(state.powerOns, '1');
    t.regex(state.hostKey!, /^SHA256:/);
    // The host joined: its agent (started on the installed system) reports to Redis.
    const o = await s.rt.observed.host(node.name);
    t.truthy(o, `${node.name} agent reported`);
    t.is(o!.totalMemMiB, 4096);
    t.deepEqual(node.power.console.slice(-1), ['disk: booted the installed system']);
  }
  const deployed = await s.rt.deploys.deployedHosts();
  t.deepEqual(deployed.sort(), ['node1', 'node2', 'node4']);
});

labTest('the chain delivers one image to 3 machines, each writing and forwarding at once', async (t) => {
  const s = await startDeploySite({ nodes: 3, sessionWaitS: 15 });
  t.teardown(() => s.close());
  s.startWorker();
  const req = await enqueueDeploy(s.rt, s.imagesDir, {
    macs: s.lab.nodes.map((n) => n.mac),
    method: 'chain',
    image: 'dom0-lab',
    disks: Object.fromEntries(s.lab.nodes.map((n) => [n.mac, n.disk])),
  });
  const jobs = await finish(
    s,
    req.jobs.map((j) => j.jobId),
  );
  for (const job of jobs) t.is(await job.getState(), 'completed', job.failedReason);
  for (const n of s.lab.nodes) {
    const st = await s.rt.deploys.record(n.name);
    t.is(st.transferMethod, 'chain');
    t.is(st.imageSha256, s.image.sha256);
  }
});

labTest('broadcast (udp-sender --broadcast) delivers one copy to 3 machines, all verified', async (t) => {
  const s = await startDeploySite({ nodes: 3, sessionWaitS: 15 });
  t.teardown(() => s.close());
  s.startWorker();
  const req = await enqueueDeploy(s.rt, s.imagesDir, {
    macs: s.lab.nodes.map((n) => n.mac),
    method: 'broadcast',
    image: 'dom0-lab',
    disks: Object.fromEntries(s.lab.nodes.map((n) => [n.mac, n.disk])),
  });
  const jobs = await finish(
    s,
    req.jobs.map((j) => j.jobId),
  );
  for (const job of jobs) t.is(await job.getState(), 'completed', job.failedReason);
  for (const n of s.lab.nodes) {
    const st = await s.rt.deploys.record(n.name);
    t.is(st.transferMethod, 'broadcast', `${n.name} got the image in the broadcast round, not by a unicast retry`);
    t.is(st.imageSha256, s.image.sha256);
  }
  t.truthy(await s.rt.deploys.sessionSentAt(req.session), 'one udp-sender round was started for the session');
});

labTest(
  'an installed host boots Xen from its own disk with the deploy server down; a redeploy boots the installer again',
  async (t) => {
    const s = await startDeploySite({ nodes: 1 });
    t.teardown(() => s.close());
    const node = s.lab.nodes[0]!;
    s.startWorker();
    const deploy = async () => {
      const req = await enqueueDeploy(s.rt, s.imagesDir, {
        macs: [node.mac],
        method: 'unicast',
        image: 'dom0-lab',
        disks: { [node.mac]: node.disk },
      });
      const [job] = await finish(s, [req.jobs[0]!.jobId]);
      t.is(await job!.getState(), 'completed', job!.failedReason);
      return job!;
    };
    const job = await deploy();
    const script = join(s.pxe.config.tftpRoot, `${macHexhyp(node.mac)}.ipxe`);
    t.is(await readFile(script, 'utf8'), renderLocalBootIpxe(), 'the network boot entry says: boot the local disk');
    const st = await s.rt.deploys.record(node.name);
    t.is(st.bootloader, 'grub');
    t.is(st.netboot, 'local-disk');
    t.is(st.bootXen, 'xen-4.17-amd64.gz');
    // grow-root: the 24 MiB image fills its root partition (the 128 MiB disk less GPT, BIOS boot and
    // swap), and the disk file keeps its size (its tail holds the GPT's backup header).
    const local = new LocalShell();
    const root = partitionFromJson(
      (await runChecked(local, 'sfdisk', ['--json', node.disk])).stdout,
      'root',
      node.disk,
    );
    const fs = await filesystemSize(local, `${node.disk}?offset=${root.offset}`);
    t.true(root.bytes > 3 * s.image.bytes, `the root partition (${root.bytes} bytes) is larger than the image`);
    t.is(fs.blocks * fs.blockSize, Math.floor(root.bytes / fs.blockSize) * fs.blockSize);
    t.is(Number(st.rootFsBytes), fs.blocks * fs.blockSize);
    t.is((await stat(node.disk)).size, 128 * 1048576);
    t.is((await runChecked(local, 'e2fsck', ['-f', '-n', `${node.disk}?offset=${root.offset}`])).code, 0);
    const log = await s.rt.queue(DEPLOY_QUEUE).getJobLogs(job.id!);
    t.log(log.logs.filter((l) => /boot/.test(l)).join('\n'));
    t.deepEqual(node.power.console.slice(-4), [
      'iPXE: exit; BIOS: next boot device, the disk',
      'GRUB: multiboot2 /boot/xen-4.17-amd64.gz; module2 /boot/vmlinuz-6.1.0-28-amd64, /boot/initrd.img-6.1.0-28-amd64',
      `ifup: ${node.address}/24 (static)`,
      'disk: booted the installed system',
    ]);

    // The deploy server goes away (no DHCP, no TFTP, no images); the host is power-cycled.
    await s.pxe.stop();
    await s.images.stop();
    await node.power.off();
    await node.power.on();
    const info = await (async () => {
      const until = Date.now() + 60000;
      for (;;) {
        const sh = new SshShell({
          host: node.address,
          privateKey: s.env.ssh.privateKey,
          hostKeySha256: st.hostKey!,
          readyTimeoutMs: 3000,
        });
        try {
          return parseXlInfo((await runChecked(sh, 'xl', ['info'])).stdout);
        } catch (e) {
          if (Date.now() > until)
            throw new Error(`no xl info after the cycle: ${(e as Error).message}; ${node.power.console.join(' | ')}`);
          await new Promise((r) => setTimeout(r, 500));
        } finally {
          await sh.close();
        }
      }
    })();
    t.is(info.totalMemMiB, 4096, 'xl info answers with the host key the deploy made');
    t.is(node.power.console.at(-4), 'PXE: no DHCP answer; BIOS: next boot device, the disk');
    t.is(node.power.console.at(-1), 'disk: booted the installed system');

    // A redeploy switches the entry back to the installer, which runs again.
    await s.pxe.start();
    await s.images.start();
    const installs = node.power.console.filter((l) => l === 'installer: sshd up').length;
    await deploy();
    t.is(node.power.console.filter((l) => l === 'installer: sshd up').length, installs + 1);
    t.is(await readFile(script, 'utf8'), renderLocalBootIpxe());
  },
);

labTest(
  'each host gets its site-file layout; one the installer cannot make fails before its disk is touched',
  async (t) => {
    const s = await startDeploySite({
      nodes: 2,
      layouts: {
        xml: [
          '    <Layout name="sized" swap="16" root="64"/>',
          '    <Layout name="lvm" swap="8"><VolumeGroup name="vg0"/></Layout>',
        ],
        of: { node1: 'sized', node2: 'lvm' },
      },
    });
    t.teardown(() => s.close());
    s.startWorker();
    const req = await enqueueDeploy(s.rt, s.imagesDir, {
      macs: s.lab.nodes.map((n) => n.mac),
      method: 'unicast',
      image: 'dom0-lab',
      disks: Object.fromEntries(s.lab.nodes.map((n) => [n.mac, n.disk])),
    });
    const [sized, lvm] = await finish(
      s,
      req.jobs.map((j) => j.jobId),
    );
    t.is(await sized!.getState(), 'completed', sized!.failedReason);
    const { stdout } = await runChecked(new LocalShell(), 'sfdisk', ['--json', s.lab.nodes[0]!.disk]);
    const parts = (JSON.parse(stdout) as { partitiontable: { partitions: { name: string; size: number }[] } })
      .partitiontable.partitions;
    t.deepEqual(
      parts.map((p) => [p.name, (p.size * 512) / 1048576]),
      [
        ['bios', 1],
        ['swap', 16],
        ['root', 64],
      ],
    );
    t.is((await s.rt.deploys.record('node1')).layout, 'sized');
    t.is(await lvm!.getState(), 'failed');
    t.is(lvm!.attemptsMade, 1, 'permanent: not retried');
    t.regex(
      lvm!.failedReason,
      /^node2: layout lvm needs pvcreate, vgcreate, which the installer lacks; no disk was touched/,
    );
    const blank = await new LocalShell().run('sfdisk', ['--json', s.lab.nodes[1]!.disk]);
    t.not(blank.code, 0, 'node2 disk still has no partition table');
  },
);

labTest(
  'a deploy worker killed (-9) mid-image resumes at the image step, without powering the machine on again',
  async (t) => {
    // A bigger image on slow links, so the transfer is still running when the worker dies.
    const s = await startDeploySite({ nodes: 1, rateMbit: 40, payloadMiB: 40, imageMiB: 56, diskMiB: 96 });
    t.teardown(() => s.close());
    const node = s.lab.nodes[0]!;
    let worker = await s.spawnWorker();
    t.teardown(async () => {
      if (worker.exitCode === null) {
        worker.kill('SIGKILL');
        await new Promise((r) => worker.once('exit', r));
      }
    });
    const req = await enqueueDeploy(s.rt, s.imagesDir, {
      macs: [node.mac],
      method: 'unicast',
      image: 'dom0-lab',
      disks: { [node.mac]: node.disk },
    });
    const q = s.rt.queue(DEPLOY_QUEUE);
    const id = req.jobs[0]!.jobId;
    const until = Date.now() + 60000;
    for (;;) {
      const p = (await q.getJob(id))?.progress as { step?: string; bytes?: number } | undefined;
      if (p?.step === 'write-image' && (p.bytes ?? 0) > 0) break;
      if (Date.now() > until) throw new Error(`never saw the image transfer in progress: ${JSON.stringify(p)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    worker.kill('SIGKILL');
    await new Promise((r) => worker.once('exit', r));
    t.is(node.power.powerOns, 1);
    worker = await s.spawnWorker();
    const [job] = await finish(s, [id]);
    t.is(await job!.getState(), 'completed', job!.failedReason);
    t.is(node.power.powerOns, 2, 'one power-on for the installer, one reboot into Xen: none repeated');
    const st = await s.rt.deploys.record(node.name);
    t.is(st.powerOns, '1', 'the power-on step ran once');
    t.is(st.imageSha256, s.image.sha256);
    const journal = (job!.progress as { journal: { attempts: Record<string, number> } }).journal;
    t.is(journal.attempts['power-on'], 1);
    t.true(journal.attempts['write-image']! >= 2, 'the image step was started again after the kill');
  },
);

test('a deploy request naming an unknown MAC or method is refused whole, nothing enqueued', async (t) => {
  const { startTestSite } = await import('../integration/harness.ts');
  const s = await startTestSite([{ name: 'h1', memMiB: 1024 }], { agents: false });
  t.teardown(() => s.close());
  await s.rt.sites.submit(
    `<XSMConfig><Hosts><Host name="h1" address="10.9.0.11" mac="52:54:00:00:00:01" cpus="2" memory="1024"/></Hosts></XSMConfig>`,
    { base: 0, author: 't', reason: 't' },
  );
  const e1 = await t.throwsAsync(
    enqueueDeploy(s.rt, '/nonexistent', { macs: ['52:54:00:00:00:01', '52:54:00:00:00:99'], image: 'x' }),
    { instanceOf: DeployRequestError },
  );
  t.regex(
    e1!.message,
    /no host with boot MAC 52:54:00:00:00:99 in site version 1; add <Host .* mac="52:54:00:00:00:99">/,
  );
  const e2 = await t.throwsAsync(
    enqueueDeploy(s.rt, '/nonexistent', { macs: ['52:54:00:00:00:01'], image: 'x', method: 'carrier-pigeon' as never }),
    { instanceOf: DeployRequestError },
  );
  t.regex(e2!.message, /method "carrier-pigeon" is not one of unicast, multicast, broadcast, chain/);
  const e3 = await t.throwsAsync(enqueueDeploy(s.rt, '/nonexistent', { macs: ['52:54:00:00:00:01'], image: 'x' }), {
    instanceOf: DeployRequestError,
  });
  t.regex(e3!.message, /no image "x" in \/nonexistent/);
  const e4 = await t.throwsAsync(enqueueDeploy(s.rt, '/nonexistent', { macs: ['not-a-mac'], image: 'x' }), {
    instanceOf: DeployRequestError,
  });
  t.regex(e4!.message, /"not-a-mac" is not a MAC address/);
  t.is(await s.rt.queue(DEPLOY_QUEUE).count(), 0);
});
