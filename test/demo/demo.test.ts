import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { redisConfigFromEnv } from '../../src/lib/redis.ts';

const root = new URL('../../', import.meta.url).pathname;

test('the quick-start demo applies the paper site, then migrates vm1 and reconfigures vm4, and exits 0', async (t) => {
  const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'src/demo/demo.ts'],
      { cwd: root, timeout: 90000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /== version 1: the paper site/);
  t.regex(r.stdout, /migrate\s+vm1\s+192\.168\.5\.101\s+192\.168\.5\.102/);
  // Final placement table: vm1 now on .102 beside vm2, vm4 with 2 vCPUs.
  const final = r.stdout.slice(r.stdout.lastIndexOf('where each VM runs now'));
  t.regex(final, /vm1\s+192\.168\.5\.102\s+\d+\s+running\s+96\s+4/);
  t.regex(final, /vm4\s+192\.168\.5\.104\s+\d+\s+running\s+96\s+2/);
});

test('the demo serves on --port with --token, and SIGTERM ends it with its Redis keys removed', async (t) => {
  // A port free a moment ago.
  const probe = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const port = (probe.address() as { port: number }).port;
  probe.close();
  const token = 'demo-test-token-0123456789';
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/demo/demo.ts', '--serve', '--port', String(port), '--token', token],
    { cwd: root },
  );
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  const exited = once(child, 'exit');
  const until = Date.now() + 90000;
  while (!stdout.includes('serving until') && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  t.regex(stdout, new RegExp(`console: open http://127\\.0\\.0\\.1:${port}/admin/login`));
  const health = await fetch(`http://127.0.0.1:${port}/api/site`, { headers: { authorization: `Bearer ${token}` } });
  t.is(health.status, 200, 'the given token is the admin token');
  const prefix = /Redis prefix (\S+)/.exec(stdout)![1]!;
  const redis = new Redis(redisConfigFromEnv().url);
  t.teardown(() => redis.quit());
  t.true((await redis.keys(`${prefix}:*`)).length > 0, 'the demo has state in Redis while it serves');
  child.kill('SIGTERM');
  const [code] = (await exited) as [number | null];
  t.is(code, 0);
  t.deepEqual(await redis.keys(`${prefix}:*`), [], 'SIGTERM removed every key, as Ctrl-C does');
});

test('the demo refuses an unknown option with exit 2 and --help acts on nothing', async (t) => {
  const run = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', 'src/demo/demo.ts', ...args],
        { cwd: root },
        (err, stdout, stderr) =>
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
      );
    });
  const bad = await run(['--serv']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /Unknown option '--serv'/);
  const help = await run(['--help']);
  t.is(help.code, 0);
  t.regex(help.stdout, /^usage: npm run demo -- \[--serve\] \[--port N\] \[--token TOKEN\]/);
  t.notRegex(help.stdout, /Redis prefix/);
});
