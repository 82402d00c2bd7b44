import test from 'ava';
import { runSteps, memoryJournal, type Step } from '../../src/lib/steps.ts';
import { silentLogger } from '../../src/lib/log.ts';

interface Ctx {
  calls: string[];
  failAt?: string;
}
const step = (name: string): Step<Ctx> => ({
  name,
  run: async (ctx) => {
    ctx.calls.push(name);
    if (ctx.failAt === name) throw new Error(`crash in ${name}`);
  },
});
const steps = [step('render'), step('create'), step('verify')];

test('a finished step is not run again when the workflow resumes after a crash', async (t) => {
  const journal = memoryJournal();
  const ctx: Ctx = { calls: [], failAt: 'create' };
  await t.throwsAsync(runSteps('create-vm', steps, ctx, journal, silentLogger), { message: /crash in create/ });
  t.deepEqual(journal.state.done, ['render']);
  t.is(journal.state.current, 'create');

  const again: Ctx = { calls: [] };
  await runSteps('create-vm', steps, again, journal, silentLogger);
  t.deepEqual(again.calls, ['create', 'verify']);
  t.deepEqual(journal.state.done, ['render', 'create', 'verify']);
});

test('the interrupted step is told it is resumed so it checks real state first', async (t) => {
  const seen: boolean[] = [];
  const probe: Step<Ctx> = {
    name: 'create',
    run: async (_c, rt) => {
      seen.push(rt.resumed);
    },
  };
  const journal = memoryJournal({ done: ['render'], current: 'create' });
  await runSteps('create-vm', [step('render'), probe], { calls: [] }, journal, silentLogger);
  t.deepEqual(seen, [true]);
  t.is(journal.reports.at(-1)?.step, 'done');
});

test('duplicate step names are refused', async (t) => {
  await t.throwsAsync(runSteps('x', [step('a'), step('a')], { calls: [] }, memoryJournal(), silentLogger), {
    message: /used twice/,
  });
});
