// changeScenarios run on the simulator through XSM's real path, each checked against every invariant.
import test from 'ava';
import { changeScenarios } from './families.ts';
import { registerScenarios } from './runner.ts';

registerScenarios(test, changeScenarios());
