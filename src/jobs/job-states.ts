// The states a BullMQ job can be in, as the API, the CLI and the metrics name them. A module of its own,
// with no imports, so the CLI can validate `--state` without loading BullMQ (which costs a cold `xsm`
// process about 0.2 s).

export const JOB_STATES = [
  'active',
  'waiting',
  'waiting-children',
  'delayed',
  'prioritized',
  'failed',
  'completed',
] as const;
export type JobState = (typeof JOB_STATES)[number];
