// The benchmarks' wait for an apply (bench/await-converged.ts): it must stop with the failed action and its
// reason once the apply ends partially failed, not poll a converged version that will never come.
import test from 'ava';
import { startTestSite } from './harness.ts';
import { siteXml, type HostLine } from './fixtures.ts';
import { ApplyFailedError, awaitConverged } from '../../bench/await-converged.ts';

const ONE: HostLine[] = [{ name: 'h1', memMiB: 1024 }];

test('waiting for an apply whose create fails stops at once, naming the action, its host and why', async (t) => {
  const s = await startTestSite(ONE);
  t.teardown(() => s.close());
  // Something outside XSM takes most of h1's memory: the planned VM d cannot start there.
  await s.hv.get('h1')!.create({ name: 'intruder', text: 'name = "intruder"\nmemory = 800\nvcpus = 1\n' });
  const version = await s.submitAndApply(siteXml(ONE, [{ name: 'd', host: 'h1', mem: 512 }]));
  const started = Date.now();
  const err = await t.throwsAsync(
    Promise.race([
      awaitConverged(s.rt, version, 20),
      new Promise((_, reject) => setTimeout(() => reject(new Error('still waiting after 15 s')), 15_000)),
    ]),
    { instanceOf: ApplyFailedError },
  );
  t.regex(err.message, new RegExp(`apply of version ${version} ended partially-failed`));
  t.regex(err.message, /create:d failed on h1: plan is stale: h1 has \d+ MiB free but d needs 512 MiB/);
  t.true(Date.now() - started < 15_000);
});

test('waiting for an apply that converges returns', async (t) => {
  const s = await startTestSite(ONE);
  t.teardown(() => s.close());
  const version = await s.submitAndApply(siteXml(ONE, [{ name: 'd', host: 'h1', mem: 512 }]));
  await t.notThrowsAsync(awaitConverged(s.rt, version, 20));
  t.is(await s.rt.applies.convergedVersion(), version);
});
