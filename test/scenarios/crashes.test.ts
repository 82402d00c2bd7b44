// crashScenarios: a host agent killed in the middle of a toolstack call, each checked against every invariant.
import test from 'ava';
import { crashScenarios } from './families.ts';
import { registerScenarios } from './runner.ts';

registerScenarios(test, crashScenarios());
