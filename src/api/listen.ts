// Starting and stopping the API server, shared by workers/api.ts, the demo and the tests.

import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApiApp, type ApiOptions } from './server.ts';

export interface RunningApi {
  url: string;
  server: Server;
  close(): Promise<void>;
}

/** Listens on `bind:port` (port 0 picks a free one). Loopback by default: exposing the API is a choice. */
export async function startApi(opts: ApiOptions & { port?: number; bind?: string }): Promise<RunningApi> {
  const app = createApiApp(opts);
  const bind = opts.bind ?? '127.0.0.1';
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(opts.port ?? 0, bind, (err?: Error) => (err ? reject(err) : resolve(s)));
    s.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  const host = bind.includes(':') ? `[${bind}]` : bind;
  return {
    url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`,
    server,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
      // The site-file parser threads.
      await (app.locals.close as (() => Promise<void>) | undefined)?.();
    },
  };
}
