// Scenarios run on the simulator through XSM's real path, each checked against every invariant.
import test from 'ava';
import { lifecycleScenarios } from './families.ts';
import { runScenario } from './runner.ts';

for (const sc of lifecycleScenarios()) {
  test.serial(sc.name, async (t) => {
    const { trace, problems } = await runScenario(sc);
    t.deepEqual(problems, []);
    // The invariants saw the run: every scenario creates VMs, so hosts changed and jobs ran.
    t.true(
      trace.states.length > 0 && trace.jobs.length > 0,
      `${trace.states.length} states, ${trace.jobs.length} jobs`,
    );
  });
}
