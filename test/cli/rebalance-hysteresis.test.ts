// `xsm rebalance --act-above X --stop-below Y`: the hysteresis thresholds reach the API as given, and
// malformed or contradictory ones are refused as usage errors before any API call.
import test from 'ava';
import { main } from '../../src/cli/main.ts';
import type { ApiClient } from '../../src/cli/api-client.ts';

async function xsm(...args: string[]) {
  const calls: { method: string; path: string; body: unknown }[] = [];
  const api: ApiClient = {
    base: 'http://fake',
    async call<T>(method: string, path: string, body?: { xml: string } | { json: unknown }): Promise<T> {
      calls.push({ method, path, body: body && 'json' in body ? body.json : body });
      return { baseVersion: 3, moves: [], imbalanceBefore: 0.2, imbalanceAfter: 0.2 } as T;
    },
  };
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) }, { api: () => api });
  return { code, out: out.join('\n'), err: err.join('\n'), calls };
}

test('sends --act-above and --stop-below as actAbove and stopBelow', async (t) => {
  const r = await xsm('rebalance', '--dry-run', '--act-above', '0.3', '--stop-below', '.15');
  t.is(r.code, 0, r.err);
  t.deepEqual(r.calls, [
    { method: 'POST', path: '/api/rebalance', body: { dryRun: true, actAbove: 0.3, stopBelow: 0.15 } },
  ]);
});

test('the schedule takes the thresholds too, and only with MINUTES', async (t) => {
  const r = await xsm('rebalance', 'schedule', '15', '--act-above', '0.2');
  t.is(r.code, 0, r.err);
  t.deepEqual(r.calls[0]?.body, { everyMinutes: 15, actAbove: 0.2 });
  const bare = await xsm('rebalance', 'schedule', '--stop-below', '0.01');
  t.is(bare.code, 2);
  t.deepEqual(bare.calls, []);
});

for (const [args, message] of [
  [['--act-above', 'abc'], /--act-above must be a decimal number/],
  [['--act-above', '-1'], /--act-above/],
  [['--act-above', '1e-1'], /--act-above must be a decimal number/],
  [['--stop-below', '2.5'], /--stop-below must be from 0 to 2/],
  [['--act-above', '0.1', '--stop-below', '0.2'], /--stop-below 0.2 is above --act-above 0.1/],
  [['--stop-below', '0.5'], /--stop-below 0.5 is above --act-above 0.1/],
  [['--htools', 'x.txt', '--act-above', '0.2'], /--htools plans one snapshot once/],
] as const)
  test(`refuses ${args.join(' ')} with exit 2 and no API call`, async (t) => {
    const r = await xsm('rebalance', '--dry-run', ...args);
    t.is(r.code, 2);
    t.regex(r.err, message);
    t.deepEqual(r.calls, []);
  });

test('--help names both thresholds and acts on nothing', async (t) => {
  const r = await xsm('rebalance', '--help');
  t.is(r.code, 0);
  t.regex(r.out, /--act-above X/);
  t.regex(r.out, /--stop-below X/);
  t.deepEqual(r.calls, []);
});
