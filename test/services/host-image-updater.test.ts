// The rolling upgrade's pieces below the job: `NAME[:VERSION]` references, and the redeploy updater on real
// Redis (the deploy job it asks for, named so a resumed upgrade finds it instead of adding another; what it
// refuses, and saying so, before anything is enqueued).
import test from 'ava';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatImageRef, installedMatches, parseImageRef } from '../../src/deploy/image-ref.ts';
import { writeManifest } from '../../src/deploy/image.ts';
import { DEPLOY_QUEUE } from '../../src/runtime/queues.ts';
import { RedeployImageUpdater } from '../../src/services/redeploy-updater.ts';
import { InPlaceImageUpdater } from '../../src/services/in-place-updater.ts';
import { planUpgrade, startUpgrade, UpgradeRequestError } from '../../src/services/upgrade-service.ts';
import { siteXml } from '../integration/fixtures.ts';
import { startTestSite } from '../integration/harness.ts';

test('image references: NAME or NAME:VERSION, refused otherwise with the place named', (t) => {
  t.deepEqual(parseImageRef('dom0', '--image'), { name: 'dom0' });
  t.deepEqual(parseImageRef('dom0-bookworm:12', '--image'), { name: 'dom0-bookworm', version: 12 });
  for (const bad of ['', 'dom0:', 'dom0:x', ':3', '../etc', 'dom0:1:2', 'dom0.json'])
    t.throws(() => parseImageRef(bad, '--image'), { message: /^--image: ".*" is not an image reference/ }, bad);
  t.is(formatImageRef({ name: 'dom0', version: 3 }), 'dom0:3');
  t.true(installedMatches('dom0:3', { name: 'dom0', version: 3 }));
  t.true(installedMatches('dom0:3', { name: 'dom0' }), 'no version: any version of the name');
  t.false(installedMatches('dom0:2', { name: 'dom0', version: 3 }));
  t.true(installedMatches('dom0', { name: 'dom0', version: 0 }), 'an unversioned image is version 0');
  t.false(installedMatches(undefined, { name: 'dom0' }));
  t.false(installedMatches('dom1:3', { name: 'dom0', version: 3 }));
});

test('the redeploy updater asks for one deploy job per host and upgrade, and refuses what it cannot do', async (t) => {
  const hosts = [
    { name: 'h1', memMiB: 1024 },
    { name: 'h2', memMiB: 1024 },
  ];
  const s = await startTestSite(hosts, { agents: false });
  const images = await mkdtemp(join(tmpdir(), 'xsm-images-'));
  t.teardown(async () => {
    await s.close();
    await rm(images, { recursive: true, force: true });
  });
  await writeFile(join(images, 'dom0.img'), 'not really an image');
  await writeManifest(images, 'dom0', 'dom0.img', 'test image');
  await s.submitAndApply(
    siteXml(hosts, []).replace('address="10.77.0.1"', 'address="10.77.0.1" mac="52:54:00:00:00:01"'),
    0,
  );
  const { site } = await s.rt.sites.load(1);
  const [h1, h2] = site.hosts;
  const updater = new RedeployImageUpdater(s.rt, { imagesDir: images, timeoutMs: 300, pollMs: 50 });

  await t.throwsAsync(updater.update(h1!, { name: 'dom0', version: 2 }, { key: 'upgrade-x-h1' }), {
    message: /h1: .*image "dom0" has no version 2.*its versions: 1/,
  });
  await t.throwsAsync(updater.update(h2!, { name: 'dom0' }, { key: 'upgrade-x-h2' }), {
    message: /h2: .*the site file gives it none.*add mac=/,
  });
  await t.throwsAsync(updater.update(h1!, { name: 'dom9' }, { key: 'upgrade-x-h1' }), {
    message: /h1: image: no image "dom9" in .*images there: dom0/,
  });
  const queue = s.rt.queue(DEPLOY_QUEUE);
  t.is(await queue.count(), 0, 'nothing enqueued for a refused update');

  // No deploy worker runs here: the job waits, the update gives up after its timeout and says where to look;
  // asked again (a resumed upgrade), it finds the same job.
  for (let i = 0; i < 2; i++)
    await t.throwsAsync(updater.update(h1!, { name: 'dom0' }, { key: 'upgrade-x-h1' }), {
      message: /h1: deploy job deploy-h1-upgrade-x-h1 did not finish in time \(still waiting\).*workers\/deploy\.ts/,
    });
  const jobs = await queue.getJobs(['waiting']);
  t.deepEqual(
    jobs.map((j) => [j.id, j.data.host, j.data.image.name]),
    [['deploy-h1-upgrade-x-h1', 'h1', 'dom0']],
  );
});

test('an upgrade plan pins a bare image name to its newest catalogue version, and refuses an unknown one', async (t) => {
  const hosts = [{ name: 'h1', memMiB: 1024 }];
  const s = await startTestSite(hosts, { agents: false });
  const images = await mkdtemp(join(tmpdir(), 'xsm-images-'));
  t.teardown(async () => {
    await s.close();
    await rm(images, { recursive: true, force: true });
  });
  await mkdir(join(images, 'dom0'));
  for (const v of ['1', '2']) {
    await writeFile(join(images, `dom0/build-${v}.img`), `version ${v}`);
    await writeManifest(images, 'dom0', `dom0/build-${v}.img`, `dom0 ${v}`);
  }
  await s.submitAndApply(siteXml(hosts, []), 0);
  const req = { author: 'ann', consent: 'none' as const, imagesDir: images, dryRun: true };
  t.is((await planUpgrade(s.rt, 'in-place', { ...req, image: 'dom0' })).image, 'dom0:2', 'the newest, by number');
  t.is((await planUpgrade(s.rt, 'in-place', { ...req, image: 'dom0:1' })).image, 'dom0:1');
  const e = await t.throwsAsync(planUpgrade(s.rt, 'in-place', { ...req, image: 'dom0:7' }));
  t.true(e instanceof UpgradeRequestError && e.status === 404 && e.code === 'no-such-image');
  t.regex(e.message, /image "dom0" has no version 7.*its versions: 1, 2/);
  // Started, the job carries the pinned version and the method its plan showed. Only looked at: the
  // control queue is paused so the harness's control worker never runs it (it would drain and wait).
  await s.rt.control().pause();
  const started = await startUpgrade(s.rt, 'in-place', { ...req, dryRun: false, image: 'dom0' });
  const job = await s.rt.control().getJob(started.id!);
  t.deepEqual(job?.data.image, { name: 'dom0', version: 2 });
  t.is(job?.data.method, 'in-place');
  t.is(await job?.getState(), 'waiting');
  await job?.remove();
});

test('the in-place updater refuses, before anything is queued, a host XSM did not install', async (t) => {
  const hosts = [{ name: 'h1', memMiB: 1024 }];
  const s = await startTestSite(hosts, { agents: false });
  const images = await mkdtemp(join(tmpdir(), 'xsm-images-'));
  t.teardown(async () => {
    await s.close();
    await rm(images, { recursive: true, force: true });
  });
  await writeFile(join(images, 'dom0.img'), 'not really an image');
  await writeManifest(images, 'dom0', 'dom0.img', 'test image');
  await s.submitAndApply(siteXml(hosts, []), 0);
  const { site } = await s.rt.sites.load(1);
  const updater = new InPlaceImageUpdater(s.rt, { imagesDir: images, timeoutMs: 300, pollMs: 50 });
  t.is(updater.method, 'in-place');
  await t.throwsAsync(updater.update(site.hosts[0]!, { name: 'dom0' }, { key: 'upgrade-y-h1' }), {
    message: /^h1: .*h1/,
  });
  t.is(await s.rt.queue(DEPLOY_QUEUE).count(), 0);
});
