// Live job progress for the site console, as server-sent events: GET /admin/site/events sends a `progress`
// event whenever what the console shows of the jobs changes (the current version, how far it converged,
// its apply's state, running, waiting, failed and lately finished jobs with their step). BullMQ's own
// events are per queue and hosts come and go, so the stream reads the queues on a short timer, the same
// reading `xsm jobs --watch` does, and sends only changes (a comment keeps idle connections open).

import type express from 'express';
import { listJobs, type JobView } from '../services/inspect.ts';
import { convergedVersion } from '../services/site-service.ts';
import type { XsmRuntime } from '../runtime/runtime.ts';
import { iso, jobTimes } from './http.ts';

/** One job as the console lists it: ISO times, no journal. */
type ConsoleJob = ReturnType<typeof jobTimes>;

export interface ConsoleProgress {
  version: number;
  converged: number;
  /** The current version's apply: applying, converged, partially-failed, superseded; absent before it runs. */
  apply?: { state: string; at: string; summary?: string };
  /** Active and waiting jobs, newest first. */
  running: ConsoleJob[];
  /** Failed jobs, newest first: the console's banner shows those it can still act on. */
  failed: ConsoleJob[];
  /** The last few completed jobs, newest first. */
  finished: ConsoleJob[];
}

/** What the console's job panel and banners show, read once. */
export async function consoleProgress(rt: XsmRuntime): Promise<ConsoleProgress> {
  const version = await rt.sites.currentVersion();
  const [converged, apply, running, failed, finished] = await Promise.all([
    convergedVersion(rt),
    version ? rt.applies.status(version) : Promise.resolve(undefined),
    listJobs(rt, { states: ['active', 'waiting', 'waiting-children', 'delayed', 'prioritized'], limit: 50 }),
    listJobs(rt, { states: ['failed'], limit: 20 }),
    listJobs(rt, { states: ['completed'], limit: 8 }),
  ]);
  const out = (jobs: JobView[]) => jobs.map(jobTimes);
  return {
    version,
    converged,
    ...(apply
      ? { apply: { state: apply.state, at: iso(apply.at), ...(apply.summary ? { summary: apply.summary } : {}) } }
      : {}),
    running: out(running),
    failed: out(failed),
    finished: out(finished),
  };
}

/** The event stream: a `progress` event at once and on every change, read every `everyMs`. */
export function consoleEvents(rt: XsmRuntime, everyMs = 1000): express.RequestHandler {
  return (req, res) => {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      // A proxy in front (nginx) must pass events on as they come.
      'x-accel-buffering': 'no',
    });
    res.write('retry: 3000\n\n');
    let last = '';
    let idle = 0;
    let timer: NodeJS.Timeout | undefined;
    let closed = false;
    req.on('close', () => {
      closed = true;
      clearTimeout(timer);
    });
    const tick = async () => {
      try {
        const now = JSON.stringify(await consoleProgress(rt));
        if (closed) return;
        if (now !== last) {
          last = now;
          idle = 0;
          res.write(`event: progress\ndata: ${now}\n\n`);
        } else if (++idle * everyMs >= 15_000) {
          idle = 0;
          res.write(': idle\n\n');
        }
      } catch (e) {
        if (closed) return;
        res.write(`event: trouble\ndata: ${JSON.stringify({ message: (e as Error).message })}\n\n`);
      }
      if (!closed) timer = setTimeout(() => void tick(), everyMs);
    };
    void tick();
  };
}
