// stallScenarios: a job's lock lapses while its worker still runs it (BullMQ's stalled-job check hands it
// over), each checked against every invariant and against the log of toolstack calls it must produce.
import test from 'ava';
import { stallScenarios } from './families.ts';
import { registerScenarios } from './runner.ts';

registerScenarios(test, stallScenarios());
