// The job dashboard (bull-board) mounted at /admin/queues: its page and the queue data its page loads,
// read from XSM's BullMQ queues after a real apply.

import test from 'ava';
import { startTestSite } from '../integration/harness.ts';
import { siteXml } from '../integration/fixtures.ts';
import { startApi } from '../../src/api/listen.ts';
import { TokenTable } from '../../src/api/auth.ts';
import { silentLogger } from '../../src/lib/log.ts';

const HOSTS = [{ name: 'h1', memMiB: 1024 }];
const ADMIN = 'admin-token-0123456789';

test('an admin sees the dashboard page and, through its API, the control and host queues with the jobs an apply ran', async (t) => {
  const s = await startTestSite(HOSTS);
  const api = await startApi({
    rt: s.rt,
    tokens: new TokenTable([{ token: ADMIN, role: 'admin' }]),
    log: silentLogger,
  });
  t.teardown(async () => {
    await api.close();
    await s.close();
  });
  const version = await s.submitAndApply(siteXml(HOSTS, [{ name: 'a', host: 'h1', mem: 256 }]));
  await s.waitConverged(version);
  const get = (path: string) => fetch(api.url + path, { headers: { authorization: `Bearer ${ADMIN}` } });

  const page = await get('/admin/queues');
  t.is(page.status, 200);
  t.regex(page.headers.get('content-type') ?? '', /text\/html/);
  t.regex(await page.text(), /<html[\s\S]*XSM jobs/i);

  const res = await get('/admin/queues/api/queues?activeQueue=host-h1&status=completed');
  t.is(res.status, 200);
  const { queues } = (await res.json()) as {
    queues: { name: string; counts: Record<string, number>; jobs: { id: string; returnValue: unknown }[] }[];
  };
  t.deepEqual(
    queues.map((q) => q.name),
    ['control', 'host-h1'],
  );
  const host = queues.find((q) => q.name === 'host-h1')!;
  t.is(host.counts.completed, 1);
  t.deepEqual(
    host.jobs.map((j) => [j.id, j.returnValue]),
    [[`v${version}-create-a`, 'create-vm a done']],
  );
});
