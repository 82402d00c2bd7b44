import test from 'ava';
import { closeWithin, labCleanup } from './lab-common.ts';

test('a lab cleanup undoes newest first, once when asked twice at the same time, and runs undos added later', async (t) => {
  const done: string[] = [];
  const said: string[] = [];
  const { cleanups, cleanup } = labCleanup((m) => said.push(m));
  const slow = (name: string) => async () => {
    await new Promise((r) => setTimeout(r, 20));
    done.push(name);
  };
  cleanups.push(slow('bridge'), slow('taps'), () => {
    throw new Error('qemu already gone');
  });
  cleanups.push(slow('machines'));
  // Two SIGINTs: both calls must share one run, so neither returns before every undo has run.
  await Promise.race([cleanup(), cleanup()]);
  t.deepEqual(done, ['machines', 'taps', 'bridge']);
  t.deepEqual(said, ['cleanup: qemu already gone']);
  cleanups.push(slow('second server'));
  await cleanup();
  t.deepEqual(done, ['machines', 'taps', 'bridge', 'second server']);
});

test('a lab cleanup gives up on a worker whose running job never ends, and says so; one that closes is waited for', async (t) => {
  const said: string[] = [];
  const say = (m: string) => said.push(m);
  const start = Date.now();
  await closeWithin('the deploy worker', () => new Promise<void>(() => {}), 100, say);
  t.true(Date.now() - start < 2000);
  t.deepEqual(said, ['cleanup: the deploy worker did not close within 0.1 s (a job still running); going on']);
  let closed = false;
  const slow = () => new Promise<void>((r) => setTimeout(() => r(void (closed = true)), 50));
  await closeWithin('the control worker', slow, 5000, say);
  t.true(closed);
  t.is(said.length, 1);
});
