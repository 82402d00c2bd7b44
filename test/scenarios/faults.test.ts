// faultScenarios run on the simulator through XSM's real path, each checked against every invariant.
import test from 'ava';
import { faultScenarios } from './families.ts';
import { registerScenarios } from './runner.ts';

registerScenarios(test, faultScenarios());
