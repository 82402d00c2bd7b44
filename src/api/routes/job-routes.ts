// Jobs across every queue: list them with their step, read one, retry a failed one.

import type express from 'express';
import { getJob, JOB_STATES, listJobs, retryJob, type JobState } from '../../services/inspect.ts';
import { input, jobPath, jobsQuery } from '../schemas.ts';
import { ApiError, jobTimes, type RouteKit } from '../http.ts';

export function mountJobRoutes(app: express.Express, kit: RouteKit): void {
  const { rt, viewer, operator } = kit;
  app.get('/api/jobs', viewer, async (req, res) => {
    const q = input(jobsQuery, req.query, 'query');
    const states = q.state ? q.state.split(',') : undefined;
    for (const s of states ?? [])
      if (!(JOB_STATES as readonly string[]).includes(s))
        throw new ApiError(400, 'bad-parameter', `unknown job state "${s}"; use ${JOB_STATES.join(', ')}`);
    const queue = q.queue;
    const jobs = await listJobs(rt, {
      ...(states ? { states: states as JobState[] } : {}),
      limit: q.limit ?? 200,
      ...(queue ? { queue } : {}),
    });
    res.json({ jobs: jobs.map(jobTimes) });
  });
  app.get('/api/jobs/:queue/:id', viewer, async (req, res) => {
    const { queue, id } = input(jobPath, req.params, 'path');
    const j = await getJob(rt, queue, id);
    if (!j) throw new ApiError(404, 'no-such-job', `no job ${id} in queue ${queue}`);
    res.json(jobTimes(j));
  });
  app.post('/api/jobs/:queue/:id/retry', operator, async (req, res) => {
    const { queue, id } = input(jobPath, req.params, 'path');
    res.status(202).json(await retryJob(rt, queue, id));
  });
}
