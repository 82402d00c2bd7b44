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

const rollback = {
  armedAfter: 'stop',
  steps: [step('restart-old')],
  outcome: (cause: string) => new Error(`rolled back: ${cause}`),
  failed: (cause: string, error: string) => new Error(`down: ${cause}; ${error}`),
};
const restartSteps = [step('check'), step('stop'), step('create'), step('verify')];

test('a final failure after the armed step runs the rollback steps, journaled, and fails with what they did', async (t) => {
  const journal = memoryJournal();
  const ctx: Ctx = { calls: [], failAt: 'create' };
  await t.throwsAsync(
    runSteps('restart', restartSteps, ctx, journal, silentLogger, { rollback, isFinal: () => true }),
    { message: 'rolled back: crash in create' },
  );
  t.deepEqual(ctx.calls, ['check', 'stop', 'create', 'restart-old']);
  t.deepEqual(journal.state.done, ['check', 'stop', 'rollback:restart-old']);
  // Retried later, it does not go forward again: the rollback is on record, the outcome stays.
  const again: Ctx = { calls: [] };
  await t.throwsAsync(runSteps('restart', restartSteps, again, journal, silentLogger, { rollback }), {
    message: 'rolled back: crash in create',
  });
  t.deepEqual(again.calls, []);
});

test('a failure that will be retried, or one before the armed step, is not rolled back', async (t) => {
  const transient = memoryJournal();
  await t.throwsAsync(
    runSteps('restart', restartSteps, { calls: [], failAt: 'create' }, transient, silentLogger, {
      rollback,
      isFinal: () => false,
    }),
    { message: 'crash in create' },
  );
  t.is(transient.state.rollback, undefined);
  const early = memoryJournal();
  const ctx: Ctx = { calls: [], failAt: 'check' };
  await t.throwsAsync(runSteps('restart', restartSteps, ctx, early, silentLogger, { rollback, isFinal: () => true }), {
    message: 'crash in check',
  });
  t.deepEqual(ctx.calls, ['check'], 'nothing was stopped, so nothing is undone');
});

test('a rollback interrupted by a crash resumes at its own step, and a rollback that fails for good says so', async (t) => {
  const journal = memoryJournal({
    done: ['check', 'stop'],
    rollback: { cause: 'no memory' },
    current: 'rollback:restart-old',
  });
  const seen: boolean[] = [];
  const probe = {
    ...rollback,
    steps: [{ name: 'restart-old', run: async (_c: Ctx, rt: { resumed: boolean }) => void seen.push(rt.resumed) }],
  };
  await t.throwsAsync(runSteps('restart', restartSteps, { calls: [] }, journal, silentLogger, { rollback: probe }), {
    message: 'rolled back: no memory',
  });
  t.deepEqual(seen, [true]);
  const failing = memoryJournal({ done: ['check', 'stop'], rollback: { cause: 'no memory' } });
  await t.throwsAsync(
    runSteps('restart', restartSteps, { calls: [], failAt: 'restart-old' }, failing, silentLogger, {
      rollback,
      isFinal: () => true,
    }),
    { message: 'down: no memory; crash in restart-old' },
  );
});

/** Makes steps that record their names in `ran` as they run, " (resumed)" when the journal said so. */
function recordingStep(ran: string[]) {
  return (name: string, pure = false) => ({
    name,
    ...(pure ? { pure: true } : {}),
    run: async (_c: unknown, rt: { resumed: boolean }) => {
      ran.push(`${name}${rt.resumed ? ' (resumed)' : ''}`);
    },
  });
}

test('a pure step is written with its neighbours, and a crash anywhere resumes exactly', async (t) => {
  const ran: string[] = [];
  const step = recordingStep(ran);
  const steps = [step('check'), step('render', true), step('create'), step('wait', true), step('verify')];
  const journal = memoryJournal();
  await runSteps('w', steps, {}, journal, silentLogger);
  t.deepEqual(journal.state.done, ['check', 'render', 'create', 'wait', 'verify']);
  t.deepEqual(
    journal.reports.map((r) => r.step),
    ['check', 'create', 'verify', 'done'],
    'four writes for five steps: none before render or wait',
  );
  // Died inside `create`: on record as running, the pure step before it as done.
  ran.length = 0;
  await runSteps('w', steps, {}, memoryJournal({ done: ['check', 'render'], current: 'create' }), silentLogger);
  t.deepEqual(ran, ['create (resumed)', 'wait', 'verify']);
  // Died inside `wait` (pure): `create` is on record as running, so it is resumed (it finds its effect) first.
  ran.length = 0;
  const j = memoryJournal({ done: ['check', 'render'], current: 'create' });
  await runSteps('w', steps, {}, j, silentLogger);
  t.deepEqual(ran, ['create (resumed)', 'wait', 'verify']);
  t.deepEqual(j.state.done, ['check', 'render', 'create', 'wait', 'verify']);
  // Died inside `render` (pure): nothing acted since `check`, which is checked again.
  ran.length = 0;
  await runSteps('w', steps, {}, memoryJournal({ done: [], current: 'check' }), silentLogger);
  t.deepEqual(ran, ['check (resumed)', 'render', 'create', 'wait', 'verify']);
});

test('a pure first step is not written before it runs, and a crash inside it runs it again from the start', async (t) => {
  const ran: string[] = [];
  const step = recordingStep(ran);
  const steps = [step('check', true), step('render', true), step('create'), step('verify')];
  const journal = memoryJournal();
  await runSteps('w', steps, {}, journal, silentLogger);
  t.deepEqual(
    journal.reports.map((r) => r.step),
    ['create', 'verify', 'done'],
    'nothing written before the pure check and render; create starts on record with both done',
  );
  t.deepEqual(journal.state.done, ['check', 'render', 'create', 'verify']);
  // Died inside `check` or `render`: nothing was written, so the job starts over, and nothing had acted.
  ran.length = 0;
  const j = memoryJournal();
  await runSteps('w', steps, {}, j, silentLogger);
  t.deepEqual(ran, ['check', 'render', 'create', 'verify']);
  // Died inside `create`: the pure steps before it are on record as done and not run again.
  ran.length = 0;
  await runSteps('w', steps, {}, memoryJournal({ done: ['check', 'render'], current: 'create' }), silentLogger);
  t.deepEqual(ran, ['create (resumed)', 'verify']);
});

test('a job that fails in a pure step shows that step, with the steps before it done', async (t) => {
  const steps = [
    { name: 'check', pure: true, run: async () => {} },
    {
      name: 'render',
      pure: true,
      run: async () => {
        throw new Error('no template');
      },
    },
    { name: 'create', run: async () => {} },
  ];
  const journal = memoryJournal();
  await t.throwsAsync(runSteps('w', steps, {}, journal, silentLogger), { message: 'no template' });
  t.deepEqual(
    journal.reports.map((r) => r.step),
    ['render'],
  );
  t.deepEqual(journal.state.done, ['check']);
  t.is(journal.state.current, 'render');
});

test('a step pure for some jobs is written only for the jobs it acts for, and resumes exactly for both', async (t) => {
  const ran: string[] = [];
  const disks: Step<{ disks: number }> = {
    name: 'disks',
    pure: (ctx) => ctx.disks === 0,
    run: async (ctx) => void ran.push(`disks x${ctx.disks}`),
  };
  const plain = (name: string, pure = false): Step<{ disks: number }> => ({
    name,
    ...(pure ? { pure: true } : {}),
    run: async () => void ran.push(name),
  });
  const steps = [plain('check', true), disks, plain('create'), plain('verify', true)];
  const none = memoryJournal();
  await runSteps('w', steps, { disks: 0 }, none, silentLogger);
  t.deepEqual(
    none.reports.map((r) => r.step),
    ['create', 'done'],
    'no disks to make: written before create and at the end only',
  );
  t.deepEqual(none.state.done, ['check', 'disks', 'create', 'verify']);
  const two = memoryJournal();
  await runSteps('w', steps, { disks: 2 }, two, silentLogger);
  t.deepEqual(
    two.reports.map((r) => r.step),
    ['disks', 'create', 'done'],
    'disks to make: on record as running before it acts',
  );
  // Died inside `disks` while making them: resumed there, the pure check not run again.
  ran.length = 0;
  await runSteps('w', steps, { disks: 2 }, memoryJournal({ done: ['check'], current: 'disks' }), silentLogger);
  t.deepEqual(ran, ['disks x2', 'create', 'verify']);
  // Died inside `verify` (pure): create is on record as running, so it is resumed (it finds its effect) first.
  ran.length = 0;
  await runSteps(
    'w',
    steps,
    { disks: 0 },
    memoryJournal({ done: ['check', 'disks'], current: 'create' }),
    silentLogger,
  );
  t.deepEqual(ran, ['create', 'verify']);
});
