// The image routes and commands: the catalogue for viewers, capture and in-place update for admins only,
// refusals (host not in the site file, host not installed by XSM, unknown image or version) that enqueue
// nothing and say what exists. The jobs themselves run against real rsync + sshd in
// test/deploy/host-image.test.ts.

import test from 'ava';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestSite } from '../integration/harness.ts';
import { startApi } from '../../src/api/listen.ts';
import { TokenTable } from '../../src/api/auth.ts';
import { silentLogger } from '../../src/lib/log.ts';
import { writeManifest } from '../../src/deploy/image.ts';
import { DEPLOY_QUEUE, type HostUpdateJobData, type ImageCaptureJobData } from '../../src/runtime/queues.ts';
import { main } from '../../src/cli/main.ts';

const ADMIN = 'image-admin-token-0123456789';
const OPERATOR = 'image-op-token-0123456789';
const VIEWER = 'image-view-token-0123456789';

test.serial(
  'image routes: catalogue for viewers, capture and update for admins, refusals enqueue nothing',
  async (t) => {
    const s = await startTestSite([], { agents: false });
    const imagesDir = await mkdtemp(join(tmpdir(), 'xsm-images-'));
    await mkdir(join(imagesDir, 'dom0'));
    for (const v of ['a', 'b']) {
      await writeFile(join(imagesDir, 'dom0', `${v}.img`), Buffer.alloc(4096, v.charCodeAt(0)));
      await writeManifest(imagesDir, 'dom0', `dom0/${v}.img`, `build ${v}`);
    }
    const api = await startApi({
      rt: s.rt,
      imagesDir,
      log: silentLogger,
      tokens: new TokenTable([
        { token: ADMIN, role: 'admin', name: 'adm' },
        { token: OPERATOR, role: 'operator', name: 'op' },
        { token: VIEWER, role: 'viewer', name: 'v' },
      ]),
    });
    t.teardown(async () => {
      await api.close();
      await s.close();
      await rm(imagesDir, { recursive: true, force: true });
    });
    await s.rt.sites.submit(
      `<XSMConfig><Hosts>
      <Host name="r1" address="10.9.0.11" mac="52:54:00:00:00:01" cpus="8" memory="8192"/>
      <Host name="r2" address="10.9.0.12" mac="52:54:00:00:00:02" cpus="8" memory="8192"/>
    </Hosts></XSMConfig>`,
      { base: 0, author: 't', reason: 't' },
    );
    await s.rt.deploys.setFields('r1', { hostKey: 'SHA256:' + 'A'.repeat(43) });
    const call = async (token: string, method: string, path: string, body?: unknown) => {
      const r = await fetch(`${api.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      return { status: r.status, body: (await r.json()) as any };
    };

    const list = await call(VIEWER, 'GET', '/api/images');
    t.is(list.status, 200);
    t.deepEqual(
      list.body.images.map((m: { name: string; version: number }) => `${m.name}:${m.version}`),
      ['dom0:1', 'dom0:2'],
    );

    t.is((await call(OPERATOR, 'POST', '/api/images/capture', { host: 'r1', name: 'golden' })).status, 403);
    t.is((await call(OPERATOR, 'POST', '/api/hosts/r1/update', { image: 'dom0' })).status, 403);
    const notInSite = await call(ADMIN, 'POST', '/api/images/capture', { host: 'r9', name: 'golden' });
    t.is(notInSite.status, 404);
    t.regex(notInSite.body.error.message, /host r9 is not in the site file/);
    const notInstalled = await call(ADMIN, 'POST', '/api/hosts/r2/update', { image: 'dom0' });
    t.is(notInstalled.status, 409);
    t.regex(notInstalled.body.error.message, /host r2 was not installed by XSM.*xsm host deploy/);
    const noVersion = await call(ADMIN, 'POST', '/api/hosts/r1/update', { image: 'dom0:5' });
    t.is(noVersion.status, 422);
    t.regex(noVersion.body.error.message, /image "dom0" has no version 5 \(its versions: 1, 2\)/);
    const noImage = await call(ADMIN, 'POST', '/api/hosts/r1/update', { image: 'golden' });
    t.regex(noImage.body.error.message, /no image "golden" .*images there: dom0/);
    // Deploy names images the same way.
    const deployOld = await call(OPERATOR, 'POST', '/api/hosts/deploy', {
      macs: ['52:54:00:00:00:02'],
      image: 'dom0:7',
    });
    t.is(deployOld.status, 422);
    t.regex(deployOld.body.error.message, /image "dom0" has no version 7 \(its versions: 1, 2\)/);
    t.is(await s.rt.queue(DEPLOY_QUEUE).count(), 0, 'nothing enqueued by a refusal');
    const deployV1 = await call(OPERATOR, 'POST', '/api/hosts/deploy', {
      macs: ['52:54:00:00:00:02'],
      image: 'dom0:1',
    });
    t.is(deployV1.status, 202);
    const djob = await s.rt.queue(DEPLOY_QUEUE).getJob(deployV1.body.jobs[0].jobId);
    t.like(djob!.data.image, { name: 'dom0', version: 1, file: 'dom0/a.img' });
    await djob!.remove();

    const capture = await call(ADMIN, 'POST', '/api/images/capture', { host: 'r1', name: 'golden' });
    t.is(capture.status, 202);
    const cjob = await s.rt.queue(DEPLOY_QUEUE).getJob(capture.body.jobId);
    t.is(cjob!.name, 'image-capture');
    t.deepEqual(cjob!.data as ImageCaptureJobData, { host: 'r1', address: '10.9.0.11', name: 'golden' });

    const update = await call(ADMIN, 'POST', '/api/hosts/r1/update', { image: 'dom0', dryRun: true });
    t.is(update.status, 202);
    t.like(update.body, { host: 'r1', image: 'dom0:2', dryRun: true });
    const ujob = await s.rt.queue(DEPLOY_QUEUE).getJob(update.body.jobId);
    const data = ujob!.data as HostUpdateJobData;
    t.like(data, { host: 'r1', address: '10.9.0.11', dryRun: true, expectMemMiB: 8192 });
    t.like(data.image, { name: 'dom0', version: 2, file: 'dom0/b.img' });
    const outcome = await call(VIEWER, 'GET', `/api/images/jobs/${update.body.jobId}`);
    t.is(outcome.status, 200);
    t.is(outcome.body.state, 'waiting');

    // Every capture and update request is audited, refusals included.
    const audited = await s.rt.audit.query({ limit: 100 });
    t.deepEqual(
      audited
        .filter((e) => e.kind === 'image-capture')
        .map((e) => e.status)
        .sort(),
      [202, 403, 404],
    );
    t.true(audited.some((e) => e.kind === 'host-update' && e.user === 'adm' && e.status === 422));

    // The CLI speaks the same routes.
    process.env.XSM_API = api.url;
    process.env.XSM_TOKEN = ADMIN;
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l) };
    t.is(await main(['image', 'list'], io), 0, err.join('\n'));
    t.regex(out.join('\n'), /^dom0:1 .* built$/m);
    t.is(await main(['host', 'update', 'r1', '--image', 'dom0:9'], io), 4);
    t.regex(err.join('\n'), /has no version 9 \(its versions: 1, 2\)/);
    t.is(await main(['host', 'update', 'r1', '--image', 'dom0:1', '--dry-run', '--no-wait'], io), 0, err.join('\n'));
    t.regex(out.join('\n'), /previewing r1 with dom0:1: job host-update-preview-r1-/);
    t.is(await main(['host', 'update', 'r1'], io), 2, 'no --image is a usage error');
    t.is(await main(['image', 'capture', 'r1'], io), 2, 'no --name is a usage error');
  },
);
