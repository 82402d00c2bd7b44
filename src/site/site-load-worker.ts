// One worker thread of the site-load pool (site-load-pool.ts): parses and validates site files off the
// API's event loop. It holds no state between files; the pool replaces it if it dies.

import { parentPort } from 'node:worker_threads';
import { loadSite } from './parse.ts';

parentPort!.on('message', (task: { id: number; xml: string; file: string; keepSite: boolean }) => {
  try {
    const r = loadSite(task.xml, task.file);
    // Validation needs only the verdict: not sending the site back spares the API's thread the copy.
    const result = r.ok && !task.keepSite ? { ok: true, warnings: r.warnings } : r;
    parentPort!.postMessage({ id: task.id, result });
  } catch (e) {
    parentPort!.postMessage({ id: task.id, error: e instanceof Error ? e.message : String(e) });
  }
});
