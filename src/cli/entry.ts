// The `xsm` process: bin/xsm.js (and `node dist/src/cli/main.js`) start here. It loads only what the
// command line needs: the offline Ganeti planner (`xsm rebalance --dry-run --htools FILE`), which operators
// run beside hbal and which is benchmarked against it as a cold process, loads one command module and the
// planner, not the other commands and what they import. Everything else goes through main.ts.

import type { CliIo } from './command.ts';

const io: CliIo = { out: (l) => process.stdout.write(l + '\n'), err: (l) => process.stderr.write(l + '\n') };

/** `xsm rebalance ... --htools FILE ...` (not `rebalance schedule`): the one command, with its related help. */
function isOfflineRebalance(argv: readonly string[]): boolean {
  return argv[0] === 'rebalance' && argv[1] !== 'schedule' && argv.includes('--htools');
}

async function run(argv: string[]): Promise<number> {
  if (isOfflineRebalance(argv)) {
    const [{ rebalance, rebalanceSchedule }, { runCommand }] = await Promise.all([
      import('./commands/monitor.ts'),
      import('./run-command.ts'),
    ]);
    return runCommand(rebalance, argv.slice(1), io, {}, [rebalanceSchedule]);
  }
  const { main } = await import('./main.ts');
  return main(argv, io);
}

// `xsm jobs | head`: when the reader goes away, stop quietly instead of dying on EPIPE with a stack trace.
for (const stream of [process.stdout, process.stderr])
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
    throw e;
  });
run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    io.err(`xsm: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exitCode = 1;
  },
);
