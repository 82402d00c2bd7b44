import test from 'ava';
import { labCleanup } from './lab-common.ts';

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
