// The `xsm` process starts cold at every command, so what it loads is what operators wait for. BullMQ (with
// its 170 modules, semver, cron-parser and msgpackr) took about 0.2 s of the 0.3 s an `xsm --help` cost.
// Commands that talk to the API or read a file never need it: this checks that loading the CLI, its help
// and an offline command leave BullMQ unloaded, so a new top-level import that pulls it in fails here.
import test from 'ava';
import { execFile } from 'node:child_process';

const main = new URL('../../src/cli/main.ts', import.meta.url).href;
const paper = new URL('../../src/demo/paper-site.xml', import.meta.url).pathname;

/** Runs `xsm ARGS` in a fresh Node through main(), then lists the BullMQ modules that process loaded. */
function bullmqModulesAfter(args: string[]): Promise<{ code: number; loaded: string[]; stderr: string }> {
  const script = `
    import { createRequire } from 'node:module';
    const { main } = await import(${JSON.stringify(main)});
    const quiet = { out: () => {}, err: () => {} };
    const code = await main(${JSON.stringify(args)}, quiet);
    const loaded = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('/node_modules/bullmq/'));
    process.stdout.write(JSON.stringify({ code, loaded }));
  `;
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      // Port 1 on loopback: a command that gets as far as calling the API is refused, never served.
      { env: { ...process.env, XSM_API: 'http://127.0.0.1:1' } },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${err.message}\n${stderr}`));
        else resolve({ ...(JSON.parse(stdout) as { code: number; loaded: string[] }), stderr });
      },
    );
  });
}

for (const args of [['--help'], ['jobs', '--help'], ['site', 'validate', paper], ['hosts', 'upgrade', '--help']]) {
  test(`xsm ${args.join(' ').replace(paper, 'paper-site.xml')} does not load BullMQ`, async (t) => {
    const r = await bullmqModulesAfter(args);
    t.is(r.code, 0, r.stderr);
    t.deepEqual(r.loaded, []);
  });
}

test('the check can fail: a command that does need the queues (hosts upgrade with an image) loads BullMQ', async (t) => {
  // `hosts upgrade --image` parses the image reference with the catalogue's parser, whose errors are BullMQ's
  // unrecoverable ones; it fails after that (no API here), which is fine: what it loaded is what is checked.
  const r = await bullmqModulesAfter(['hosts', 'upgrade', '--image', 'dom0:1', '--json']);
  t.true(r.loaded.length > 0);
});
