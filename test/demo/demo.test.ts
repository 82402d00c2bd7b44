import test from 'ava';
import { execFile } from 'node:child_process';

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
