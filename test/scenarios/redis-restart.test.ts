// redisRestartScenarios: Redis stopped and started again under a running apply, each checked against every
// invariant.
import test from 'ava';
import { redisRestartScenarios } from './families.ts';
import { registerScenarios } from './runner.ts';

registerScenarios(test, redisRestartScenarios());
