// Deployment through the API: POST /api/hosts/deploy enqueues one deploy job per machine (named by boot
// MAC, looked up in the site inventory); GET /api/hosts/:name/deploy shows where a machine's deploy is.
// Per-host progress (step, bytes, rate) is in each job's progress: /api/jobs and `xsm jobs --watch`.

import express from 'express';
import { DeployRequestError, enqueueDeploy, DEPLOY_QUEUE } from '../deploy/deploy-job.ts';
import type { TransferMethod } from '../deploy/transfer.ts';
import type { XsmRuntime } from '../jobs/runtime.ts';
import type { Role } from './auth.ts';

type Fail = (status: number, code: string, message: string, hint?: string) => Error;

export function mountDeployRoutes(
  app: express.Express,
  rt: XsmRuntime,
  guard: (role: Role) => express.RequestHandler,
  fail: Fail,
  imagesDir: string,
): void {
  const json = express.json({ limit: '256kb' });
  app.post('/api/hosts/deploy', guard('operator'), json, async (req, res) => {
    const b = (req.body ?? {}) as {
      macs?: unknown;
      method?: unknown;
      image?: unknown;
      disk?: unknown;
      disks?: unknown;
    };
    if (!Array.isArray(b.macs) || !b.macs.every((m) => typeof m === 'string'))
      throw fail(400, 'bad-parameter', 'macs must be a list of boot MAC addresses');
    if (b.image !== undefined && typeof b.image !== 'string')
      throw fail(400, 'bad-parameter', 'image must be an image name');
    if (b.disk !== undefined && (typeof b.disk !== 'string' || !b.disk.startsWith('/')))
      throw fail(400, 'bad-parameter', 'disk must be an absolute device path such as /dev/sda');
    try {
      const r = await enqueueDeploy(rt, imagesDir, {
        macs: b.macs as string[],
        method: (b.method ?? 'unicast') as TransferMethod,
        image: (b.image as string | undefined) ?? 'dom0',
        ...(typeof b.disk === 'string' ? { defaultDisk: b.disk } : {}),
        ...(b.disks && typeof b.disks === 'object' ? { disks: b.disks as Record<string, string> } : {}),
      });
      res.status(202).json({ ...r, queue: DEPLOY_QUEUE });
    } catch (e) {
      if (e instanceof DeployRequestError) throw fail(422, 'bad-deploy-request', e.message);
      throw e;
    }
  });
  app.get('/api/hosts/:name/deploy', guard('viewer'), async (req, res) => {
    const name = String(req.params.name);
    const state = await rt.redis.hgetall(`${rt.config.prefix}:deploy:host:${name}`);
    if (!Object.keys(state).length) throw fail(404, 'no-deploy', `host ${name} was never deployed by XSM`);
    res.json({ host: name, ...state });
  });
}
