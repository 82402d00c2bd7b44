// Deployment through the API: POST /api/hosts/deploy enqueues one deploy job per machine (named by boot
// MAC, looked up in the site inventory); GET /api/hosts/:name/deploy shows where a machine's deploy is.
// Per-host progress (step, bytes, rate) is in each job's progress: /api/jobs and `xsm jobs --watch`.
// Images: GET /api/images (the catalogue), POST /api/images/capture and POST /api/hosts/:name/update (admin
// only: a capture copies a host's files, secrets included, and an update rewrites a running Dom0's system),
// GET /api/images/jobs/:id (a capture's or update's outcome, with the dry run's list of changes).

import { deployBody, hostUpdateBody, imageCaptureBody, imageJobPath, input, namePath } from './schemas.ts';
import express from 'express';
import { DeployRequestError, enqueueDeploy } from '../services/deploy-service.ts';
import { DEPLOY_QUEUE } from '../runtime/queues.ts';
import {
  ImageRequestError,
  imageJobOutcome,
  listImages,
  requestImageCapture,
  updateHostInPlace,
} from '../services/image-service.ts';
import type { TransferMethod } from '../deploy/transfer.ts';
import type { XsmRuntime } from '../runtime/runtime.ts';
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
    const b = input(deployBody, req.body ?? {}, 'body');
    try {
      const r = await enqueueDeploy(rt, imagesDir, {
        macs: b.macs,
        method: (b.method ?? 'unicast') as TransferMethod,
        image: b.image ?? 'dom0',
        ...(b.disk !== undefined ? { defaultDisk: b.disk } : {}),
        ...(b.disks ? { disks: b.disks } : {}),
      });
      res.status(202).json({ ...r, queue: DEPLOY_QUEUE });
    } catch (e) {
      if (e instanceof DeployRequestError) throw fail(422, 'bad-deploy-request', e.message);
      throw e;
    }
  });
  mountImageRoutes(app, rt, guard, fail, imagesDir, json);
  app.get('/api/hosts/:name/deploy', guard('viewer'), async (req, res) => {
    const { name } = input(namePath, req.params, 'path');
    const state = await rt.deploys.record(name);
    if (!Object.keys(state).length) throw fail(404, 'no-deploy', `host ${name} was never deployed by XSM`);
    res.json({ host: name, ...state });
  });
}

function mountImageRoutes(
  app: express.Express,
  rt: XsmRuntime,
  guard: (role: Role) => express.RequestHandler,
  fail: Fail,
  imagesDir: string,
  json: express.RequestHandler,
): void {
  const refused = (e: unknown): never => {
    if (e instanceof ImageRequestError) throw fail(e.status, 'bad-image-request', e.message);
    throw e;
  };
  app.get('/api/images', guard('viewer'), async (_req, res) => {
    res.json({ imagesDir, images: await listImages(imagesDir) });
  });
  app.post('/api/images/capture', guard('admin'), json, async (req, res) => {
    const b = input(imageCaptureBody, req.body ?? {}, 'body');
    res.status(202).json(await requestImageCapture(rt, b).catch(refused));
  });
  app.post('/api/hosts/:name/update', guard('admin'), json, async (req, res) => {
    const { name } = input(namePath, req.params, 'path');
    const b = input(hostUpdateBody, req.body ?? {}, 'body');
    res
      .status(202)
      .json(await updateHostInPlace(rt, imagesDir, name, b.image, { dryRun: b.dryRun ?? false }).catch(refused));
  });
  app.get('/api/images/jobs/:id', guard('viewer'), async (req, res) => {
    const { id } = input(imageJobPath, req.params, 'path');
    const outcome = await imageJobOutcome(rt, id);
    if (!outcome) throw fail(404, 'no-such-job', `no image job ${id} in queue ${DEPLOY_QUEUE}`);
    res.json({ jobId: id, queue: DEPLOY_QUEUE, ...outcome });
  });
}
