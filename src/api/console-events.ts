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

interface Subscriber {
  res: express.Response;
  /** The last progress this subscriber was sent. */
  last: string;
  /** Ticks since it was last sent anything. */
  idle: number;
}

/**
 * The event stream: a `progress` event at once and on every change. One reading every `everyMs` serves every
 * open console of this process (the reading lists every queue: doing it once per viewer would multiply the
 * load on Redis by the number of open pages); it runs only while someone is subscribed.
 */
export function consoleEvents(rt: XsmRuntime, everyMs = 1000): express.RequestHandler {
  const subscribers = new Set<Subscriber>();
  let latest = '';
  let reading = false;
  let timer: NodeJS.Timeout | undefined;
  const send = (s: Subscriber, payload: string) => {
    if (payload !== s.last) {
      s.last = payload;
      s.idle = 0;
      s.res.write(`event: progress\ndata: ${payload}\n\n`);
    } else if (++s.idle * everyMs >= 15_000) {
      s.idle = 0;
      s.res.write(': idle\n\n');
    }
  };
  const tick = async () => {
    reading = true;
    timer = undefined;
    try {
      latest = JSON.stringify(await consoleProgress(rt));
      for (const s of subscribers) send(s, latest);
    } catch (e) {
      const trouble = `event: trouble\ndata: ${JSON.stringify({ message: (e as Error).message })}\n\n`;
      for (const s of subscribers) s.res.write(trouble);
    }
    reading = false;
    if (subscribers.size) timer = setTimeout(() => void tick(), everyMs);
  };
  return (req, res) => {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      // A proxy in front (nginx) must pass events on as they come.
      'x-accel-buffering': 'no',
    });
    res.write('retry: 3000\n\n');
    const s: Subscriber = { res, last: '', idle: 0 };
    subscribers.add(s);
    req.on('close', () => {
      subscribers.delete(s);
      if (!subscribers.size && timer) {
        clearTimeout(timer);
        timer = undefined;
      }
    });
    if (reading) return; // the reading under way sends it the progress
    if (timer) {
      // Readings are running for others: the newest one now, the next ones with everyone.
      if (latest) send(s, latest);
      return;
    }
    void tick();
  };
}
