// The deploy queue's one job: deploying a bare machine as a Dom0, step by step (workflows/deploy-host.ts).

import type { Job } from 'bullmq';
import { jobJournal, runSteps } from '../lib/steps.ts';
import type { DeployJobData } from '../runtime/queues.ts';
import { deploySteps, type DeployEnv } from '../../workflows/deploy-host.ts';

export async function processDeploy(env: DeployEnv, job: Job<DeployJobData>): Promise<string> {
  await runSteps(
    'deploy-host',
    deploySteps,
    { env, data: job.data, attemptsMade: job.attemptsMade },
    jobJournal(job),
    env.log.child({ host: job.data.host, job: job.id }),
  );
  return `${job.data.host} deployed (${job.data.image.name})`;
}
