// The package as users get it: `npm pack` builds dist/ (prepack) and packs only what runs; installed into an
// empty directory, its `xsm` bin runs the compiled CLI on plain Node, without the sources or a TS loader.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = new URL('../..', import.meta.url).pathname;
const PAPER = new URL('../site/fixtures/paper-site.xml', import.meta.url).pathname;

test('the packed tarball installs into an empty directory and its xsm runs from there', async (t) => {
  t.timeout(300_000);
  const dir = await mkdtemp(join(tmpdir(), 'xsm-pack-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const { stdout: packed } = await run('npm', ['pack', '--json', '--pack-destination', dir], {
    cwd: ROOT,
    maxBuffer: 64 << 20,
  });
  const [info] = JSON.parse(packed.slice(packed.indexOf('['))) as { filename: string; files: { path: string }[] }[];
  const files = info!.files.map((f) => f.path);
  t.true(files.includes('bin/xsm.js'));
  t.true(files.includes('dist/src/cli/main.js'));
  t.false(
    files.some((f) => /^(src|test|bench|scripts)\//.test(f) || f.endsWith('.ts')),
    'only what runs: no sources, tests or benchmarks',
  );

  const app = join(dir, 'app');
  await run('mkdir', ['-p', app]);
  await writeFile(join(app, 'package.json'), '{"name":"app","private":true}\n');
  // The dependencies come from npm's cache when `npm ci` filled it (as CI does), else from the registry.
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(dir, info!.filename)], {
    cwd: app,
    maxBuffer: 64 << 20,
  });
  t.false((await readdir(join(app, 'node_modules', 'xen-site-manager'))).includes('src'));
  const xsm = join(app, 'node_modules', '.bin', 'xsm');
  const version = await run(xsm, ['--version'], { cwd: app });
  const pkg = (await import(join(ROOT, 'package.json'), { with: { type: 'json' } })) as {
    default: { version: string };
  };
  t.is(version.stdout.trim(), `xsm ${pkg.default.version}`);
  const valid = await run(xsm, ['site', 'validate', PAPER, '--json'], { cwd: app });
  t.like(JSON.parse(valid.stdout), { valid: true, vms: 4 });
  const refused = await run(xsm, ['site', 'validate', '/nonexistent.xml'], { cwd: app }).catch(
    (e: { code: number; stderr: string }) => e,
  );
  t.is((refused as { code: number }).code, 1);
});
