import test from 'ava';
import { XsmRuntime } from '../../src/runtime/runtime.ts';
import { redisConfigFromEnv } from '../../src/lib/redis.ts';
import { deleteKeys, freshPrefix } from '../integration/harness.ts';
import { hostReport as report, runningDomain as dom } from './observed-fixtures.ts';

test('where a VM runs is answered from the last reports, without reading every host', async (t) => {
  const prefix = freshPrefix();
  const rt = new XsmRuntime({ ...redisConfigFromEnv(), prefix });
  t.teardown(async () => {
    await rt.close();
    await deleteKeys(prefix);
  });
  await rt.observed.report(report('h1', ['a', 'b']));
  await rt.observed.report(report('h2', ['c']));
  t.deepEqual(await rt.observed.whereIs('a'), ['h1']);
  t.deepEqual(await rt.observed.whereIs('nope'), []);
  // a migrates to h2: recorded on arrival, then h1's next report no longer has it.
  await rt.observed.recordArrival('h2', dom('a'));
  t.deepEqual(await rt.observed.whereIs('a'), ['h1', 'h2']);
  await rt.observed.report(report('h1', ['b']));
  t.deepEqual(await rt.observed.whereIs('a'), ['h2']);
  // A fenced host's domains died with it.
  await rt.observed.markFenced('h1');
  t.deepEqual(await rt.observed.whereIs('b'), []);
  t.deepEqual((await rt.observed.host('h2'))?.domains.map((d) => d.name).sort(), ['a', 'c']);
});
