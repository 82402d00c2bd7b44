// GET /api/vms built in a worker thread (src/api/vm-list-thread.ts): the same bytes as the list built on the
// event loop, one build at a time, and a request never answered from a build that started before it came.
import test from 'ava';
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { VmListThread } from '../../src/api/vm-list-thread.ts';
import { vmListThreadFromEnv } from '../../src/api/server.ts';
import { redisConfigFromEnv } from '../../src/lib/redis.ts';
import { XsmRuntime } from '../../src/runtime/runtime.ts';
import { listVms } from '../../src/services/vm-list.ts';
import { hostReport as report } from '../state/observed-fixtures.ts';
import { deleteKeys, freshPrefix } from '../integration/harness.ts';

async function site(t: import('ava').ExecutionContext): Promise<{ rt: XsmRuntime; thread: VmListThread }> {
  const prefix = freshPrefix();
  const rt = new XsmRuntime({ ...redisConfigFromEnv(), prefix });
  const thread = new VmListThread(rt.config);
  t.teardown(async () => {
    await thread.close();
    await rt.close();
    await deleteKeys(prefix);
  });
  return { rt, thread };
}

test('the thread builds the same bytes as the list on the event loop, with their hash and gzip', async (t) => {
  const { rt, thread } = await site(t);
  await rt.observed.report(report('h1', ['a', 'b']));
  await rt.observed.report(
    report(
      'h2',
      Array.from({ length: 3000 }, (_, i) => `vm${i}`),
    ),
  );
  const built = await thread.build();
  const expected = Buffer.from(JSON.stringify(await listVms(rt)));
  t.true(built.body.equals(expected));
  t.is(built.hash, createHash('sha256').update(expected).digest('base64url').slice(0, 27));
  t.true(gunzipSync(built.gzip).equals(expected));
});

test('requests during a build share the next one, which reads what was written after they came', async (t) => {
  const { rt, thread } = await site(t);
  await rt.observed.report(report('h1', ['a']));
  const running = thread.build();
  await rt.observed.report(report('h1', ['a', 'late']));
  const next = thread.build();
  t.not(next, running, 'not the build already running: it may have read Redis before the write');
  t.is(thread.build(), next, 'every request arriving meanwhile shares the next build');
  const names = (b: { body: Buffer }) =>
    (JSON.parse(b.body.toString()) as { unmanaged: { name: string }[] }).unmanaged.map((u) => u.name);
  t.deepEqual(names(await next), ['a', 'late']);
  await running;
  const later = thread.build();
  t.not(later, next, 'once it is done, a later request starts another');
  await later;
});

test('a thread that cannot build says so, and the next request gets a new thread', async (t) => {
  const { rt, thread } = await site(t);
  await rt.observed.report(report('h1', ['a']));
  await thread.build();
  // The thread dies (as from running out of memory): the build it ran fails, saying the next request retries.
  const internals = thread as unknown as { worker: { terminate(): Promise<number> } | undefined };
  const dying = thread.build();
  await internals.worker!.terminate();
  await t.throwsAsync(dying, { message: /its thread stopped.*the next request retries/ });
  const again = await thread.build();
  t.deepEqual((JSON.parse(again.body.toString()) as { unmanaged: { name: string }[] }).unmanaged.length, 1);
});

test('after close, builds are refused with the reason', async (t) => {
  const { thread } = await site(t);
  await thread.close();
  await t.throwsAsync(thread.build(), { message: /shutting down/ });
});

test('XSM_VM_LIST_THREAD is 1 by default, 0 builds on the event loop, and anything else is refused by name', (t) => {
  t.true(vmListThreadFromEnv({}));
  t.true(vmListThreadFromEnv({ XSM_VM_LIST_THREAD: '1' }));
  t.false(vmListThreadFromEnv({ XSM_VM_LIST_THREAD: '0' }));
  t.throws(() => vmListThreadFromEnv({ XSM_VM_LIST_THREAD: 'no' }), { message: /XSM_VM_LIST_THREAD=no is not 0 or 1/ });
});
