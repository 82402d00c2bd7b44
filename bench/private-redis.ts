// A redis-server of a benchmark's own on a free loopback port (no persistence, like the shared one's
// defaults), so other clients' commands never count in its figures; and the free port itself, which the
// benchmarks' own servers (an API process, PostgreSQL) take too.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';

/** A loopback port nothing listens on now (the kernel's pick). */
export function freePort(): Promise<number> {
  return new Promise<number>((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
  });
}

/**
 * A redis-server of the benchmark's own on a free port; its URL goes to every process through the env.
 * `extraArgs` are more redis-server options (`--maxclients 20000`).
 */
export async function privateRedis(extraArgs: string[] = []): Promise<() => void> {
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extraArgs],
    {
      stdio: 'ignore',
    },
  );
  process.env.XSM_REDIS_URL = `redis://127.0.0.1:${port}`;
  for (const until = Date.now() + 10_000; ;) {
    const probe = new Redis(process.env.XSM_REDIS_URL, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    probe.on('error', () => {}); // refused until the server listens: retried below
    try {
      await probe.connect();
      await probe.ping();
      break;
    } catch {
      if (Date.now() > until) throw new Error(`redis-server on port ${port} did not answer`);
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      probe.disconnect();
    }
  }
  return () => child.kill('SIGTERM');
}
