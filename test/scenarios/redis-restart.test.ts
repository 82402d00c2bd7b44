// redisRestartScenarios: Redis stopped and started again under a running apply, each checked against every
// invariant.
import test from 'ava';
import { redisRestartScenarios } from './families.ts';
import { registerScenarios } from './runner.ts';

registerScenarios(test, redisRestartScenarios());
// A worker whose close hung after an outage is left behind by the supervisor (logged), and BullMQ's timers
// in it keep this process alive after the last test: ava would wait for it forever. Every test here has
// reported by then, so end the process once the hooks have run.
test.after.always(() => {
  setTimeout(() => process.exit(0), 3000);
});
