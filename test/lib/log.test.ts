import test from 'ava';
import { createLogger } from '../../src/lib/log.ts';

test('a child logger writes its parent fields and its own, at or above the level, as one JSON line', (t) => {
  const lines: string[] = [];
  const log = createLogger({ component: 'agent' }, 'info', (l) => lines.push(l));
  const job = log.child({ host: 'h1', job: 'v1-create-a' });
  const step = job.child({ step: 'xl-create', host: 'h2' });
  step.debug('not written');
  step.info('step started', { attempt: 1 });
  job.warn('step failed', { error: 'xl: busy' });
  log.error('plain');
  const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  t.is(parsed.length, 3);
  t.like(parsed[0], {
    level: 'info',
    msg: 'step started',
    component: 'agent',
    host: 'h2',
    job: 'v1-create-a',
    step: 'xl-create',
    attempt: 1,
  });
  t.like(parsed[1], { level: 'warn', msg: 'step failed', host: 'h1', error: 'xl: busy' });
  t.false('step' in parsed[1]!, "a child's fields stay out of its parent's lines");
  t.deepEqual(Object.keys(parsed[2]!), ['t', 'level', 'msg', 'component']);
  t.regex(parsed[2]!.t as string, /^\d{4}-\d\d-\d\dT/);
});
