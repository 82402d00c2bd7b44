// `xsm image list|capture` and `xsm host update`: images like SystemImager's (the catalogue, capturing an
// installed Dom0 as a new version, updating one in place). Capture and update are deploy-queue jobs; these
// commands follow them to the end (unless --no-wait) and exit 1 when the job failed.

import type { ApiClient } from '../api-client.ts';
import { defineCommand, EXIT, UsageError, type CliIo } from '../command.ts';
import type { ImageManifest } from '../../deploy/image.ts';
import type { HostUpdateResult, ImageCaptureResult } from '../../jobs/host-image.ts';
import type { HostUpdateTicket, ImageJobOutcome } from '../../services/image-service.ts';

const NO_WAIT = { type: 'boolean', description: 'return once the job is enqueued; do not follow it' } as const;

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

/** Polls the image job until it ends; prints its step as it moves when on a terminal's stdout. */
async function follow<R>(
  api: ApiClient,
  io: CliIo,
  jobId: string,
  intervalMs = 1000,
): Promise<Extract<ImageJobOutcome<R>, { state: 'completed' | 'failed' }>> {
  let last = '';
  for (;;) {
    const o = await api.call<ImageJobOutcome<R> & { jobId: string }>(
      'GET',
      `/api/images/jobs/${encodeURIComponent(jobId)}`,
    );
    if (o.state === 'completed' || o.state === 'failed') return o;
    if (o.state !== last) io.err(`job ${jobId}: ${o.state}`);
    last = o.state;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export const imageList = defineCommand({
  name: 'image list',
  summary: 'the image catalogue: every version of every image, with size, SHA-256, when and where it came from',
  positionals: [],
  options: {},
  async run(_args, { io, api, result }) {
    const r = await api().call<{ imagesDir: string; images: ImageManifest[] }>('GET', '/api/images');
    if (!r.images.length) io.out(`no images in ${r.imagesDir}: build one with scripts/build-image`);
    for (const m of r.images) {
      const source = m.source?.kind === 'captured' ? `captured from ${m.source.host}` : 'built';
      io.out(
        `${`${m.name}:${m.version}`.padEnd(20)} ${mib(m.bytes).padStart(12)}  ${m.sha256.slice(0, 16)}  ${m.createdAt ?? m.builtAt}  ${source}`,
      );
    }
    result(r);
    return EXIT.ok;
  },
});

export const imageCapture = defineCommand({
  name: 'image capture',
  summary:
    "capture an installed Dom0's root file system (without its identity) as a new version of an image (a durable job)",
  positionals: [{ name: 'HOST', description: 'an installed Dom0, by its name in the site file' }],
  options: {
    name: { type: 'string', value: 'NAME', description: 'the image the capture becomes a new version of (required)' },
    'no-wait': NO_WAIT,
  },
  async run({ positionals: { HOST }, options }, { io, api, result }) {
    if (options.name === undefined)
      throw new UsageError('give --name NAME (the image the capture becomes a version of)');
    const ticket = await api().call<{ jobId: string; name: string }>('POST', '/api/images/capture', {
      json: { host: HOST, name: options.name },
    });
    io.out(`capturing ${HOST} as a new version of ${ticket.name}: job ${ticket.jobId}`);
    if (options['no-wait']) {
      result(ticket);
      return EXIT.ok;
    }
    const o = await follow<ImageCaptureResult>(api(), io, ticket.jobId);
    result({ ...ticket, ...o });
    if (o.state === 'failed') {
      io.err(`capture of ${HOST} failed: ${o.error}`);
      return EXIT.failed;
    }
    const m = o.result.manifest;
    io.out(`${o.result.image}: ${m ? `${mib(m.bytes)}, sha256 ${m.sha256}` : 'registered'}`);
    return EXIT.ok;
  },
});

function printChanges(io: CliIo, r: HostUpdateResult): void {
  const c = r.changes;
  if (!c) {
    io.out(`${r.host}: ${r.image}`);
    if (r.bootloader) io.out(r.bootloader);
    return;
  }
  const mark = { add: '+', change: '~', delete: '-' } as const;
  for (const x of c.listed) io.out(`${mark[x.change]} ${x.path}${x.kind === 'dir' ? '/' : ''}`);
  if (c.truncated) io.out('… (not every path is listed; the counts cover all)');
  io.out(
    `${r.host} ${r.dryRun ? 'would get' : 'got'} ${r.image}: ${c.added} added, ${c.changed} changed, ${c.deleted} deleted, ${mib(c.bytes)} to write`,
  );
  if (r.bootloader) io.out(r.bootloader);
}

export const hostUpdate = defineCommand({
  name: 'host update',
  summary:
    'update an installed Dom0 in place by rsync from an image version, keeping its identity; --dry-run lists what would change',
  positionals: [{ name: 'HOST', description: 'an installed Dom0, by its name in the site file' }],
  options: {
    image: {
      type: 'string',
      value: 'NAME[:VERSION]',
      description: 'the image to install (required; without :VERSION, its newest version)',
    },
    'dry-run': { type: 'boolean', description: 'list what would be added, changed and deleted; change nothing' },
    'no-wait': NO_WAIT,
  },
  async run({ positionals: { HOST }, options }, { io, api, result }) {
    if (options.image === undefined) throw new UsageError('give --image NAME[:VERSION] (xsm image list shows them)');
    const ticket = await api().call<HostUpdateTicket>('POST', `/api/hosts/${encodeURIComponent(HOST)}/update`, {
      json: { image: options.image, dryRun: options['dry-run'] },
    });
    io.out(`${ticket.dryRun ? 'previewing' : 'updating'} ${HOST} with ${ticket.image}: job ${ticket.jobId}`);
    if (options['no-wait']) {
      result(ticket);
      return EXIT.ok;
    }
    const o = await follow<HostUpdateResult>(api(), io, ticket.jobId);
    result({ ...ticket, ...o });
    if (o.state === 'failed') {
      io.err(`${ticket.dryRun ? 'dry run' : 'update'} of ${HOST} failed: ${o.error}`);
      return EXIT.failed;
    }
    printChanges(io, o.result);
    return EXIT.ok;
  },
});
