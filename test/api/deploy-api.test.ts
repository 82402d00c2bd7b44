import test from 'ava';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestSite } from '../integration/harness.ts';
import { startApi } from '../../src/api/listen.ts';
import { TokenTable } from '../../src/api/auth.ts';
import { silentLogger } from '../../src/lib/log.ts';
import { writeManifest } from '../../src/deploy/image.ts';
import { DEPLOY_QUEUE } from '../../src/runtime/queues.ts';
import { main } from '../../src/cli/main.ts';

test.serial('POST /api/hosts/deploy enqueues one job per known MAC; unknown MACs are refused whole', async (t) => {
  const s = await startTestSite([], { agents: false });
  const imagesDir = await mkdtemp(join(tmpdir(), 'xsm-images-'));
  await writeFile(join(imagesDir, 'dom0.img'), Buffer.alloc(4096, 7));
  const manifest = await writeManifest(imagesDir, 'dom0', 'dom0.img', 'test');
  const api = await startApi({
    rt: s.rt,
    imagesDir,
    log: silentLogger,
    tokens: new TokenTable([
      { token: 'deploy-op-token-0123456789', role: 'operator', name: 'op' },
      { token: 'deploy-view-token-0123456789', role: 'viewer', name: 'v' },
    ]),
  });
  t.teardown(async () => {
    await api.close();
    await s.close();
  });
  await s.rt.sites.submit(
    `<XSMConfig><Hosts>
      <Host name="r1" address="10.9.0.11" mac="52:54:00:00:00:01" cpus="8" memory="8192"/>
      <Host name="r2" address="10.9.0.12" mac="52:54:00:00:00:02" cpus="8" memory="8192"/>
    </Hosts></XSMConfig>`,
    { base: 0, author: 't', reason: 't' },
  );
  const call = async (token: string, body: unknown) => {
    const r = await fetch(`${api.url}/api/hosts/deploy`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: r.status, body: (await r.json()) as any };
  };
  t.is((await call('deploy-view-token-0123456789', { macs: ['52:54:00:00:00:01'] })).status, 403);
  const unknown = await call('deploy-op-token-0123456789', {
    macs: ['52:54:00:00:00:01', '52-54-00-00-00-09'],
    image: 'dom0',
  });
  t.is(unknown.status, 422);
  t.regex(unknown.body.error.message, /no host with boot MAC 52:54:00:00:00:09/);
  t.is(await s.rt.queue(DEPLOY_QUEUE).count(), 0, 'nothing half-enqueued');
  const ok = await call('deploy-op-token-0123456789', {
    macs: ['52:54:00:00:00:01', '52:54:00:00:00:02'],
    image: 'dom0',
    method: 'chain',
    disk: '/dev/nvme0n1',
  });
  t.is(ok.status, 202);
  t.deepEqual(
    ok.body.jobs.map((j: { host: string }) => j.host),
    ['r1', 'r2'],
  );
  const job = await s.rt.queue(DEPLOY_QUEUE).getJob(ok.body.jobs[0].jobId);
  t.like(job!.data, {
    host: 'r1',
    address: '10.9.0.11',
    disk: '/dev/nvme0n1',
    method: 'chain',
    sessionSize: 2,
    expectMemMiB: 8192,
  });
  t.is(job!.data.image.sha256, manifest.sha256);

  // The CLI speaks the same endpoint.
  process.env.XSM_API = api.url;
  process.env.XSM_TOKEN = 'deploy-op-token-0123456789';
  const out: string[] = [];
  const err: string[] = [];
  t.is(
    await main(['host', 'deploy', '52:54:00:00:00:02', '--image', 'dom0'], {
      out: (l) => out.push(l),
      err: (l) => err.push(l),
    }),
    0,
    err.join('\n'),
  );
  t.regex(out.join('\n'), /^r2 \(52:54:00:00:00:02\): job deploy-r2-/);
  t.is(
    await main(['host', 'deploy', '52:54:00:00:00:02', '--method', 'smoke-signals'], {
      out: (l) => out.push(l),
      err: (l) => err.push(l),
    }),
    2,
  );
});
