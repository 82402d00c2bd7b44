// The `xsm` command line. Commands are listed here; each lives in src/cli/commands/.

import { UsageError, type CliIo, type Command } from './command.ts';
import { siteDiff, sitePlan, siteValidate } from './commands/site.ts';
import { extraCommands } from './commands/index.ts';

export const commands: Command[] = [siteValidate, siteDiff, sitePlan, ...extraCommands];

function help(io: CliIo): void {
  io.out('xsm — Xen Site Manager\n\nUsage:');
  const w = Math.max(...commands.map((c) => c.usage.length));
  for (const c of commands) io.out(`  ${c.usage.padEnd(w)}  ${c.summary}`);
  io.out(
    '\nEnvironment: XSM_API (default http://127.0.0.1:8080), XSM_TOKEN (bearer token), XSM_REDIS_URL, XSM_PREFIX.',
  );
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  if (argv.length === 0 || argv[0] === 'help' || argv[0] === '--help' || argv[0] === '-h') {
    help(io);
    return argv.length === 0 ? 2 : 0;
  }
  // Longest command name that prefixes the arguments wins ("site plan" before "site").
  const match = commands
    .filter((c) => {
      const words = c.name.split(' ');
      return words.every((w, i) => argv[i] === w);
    })
    .sort((a, b) => b.name.length - a.name.length)[0];
  if (!match) {
    io.err(`xsm: unknown command "${argv.slice(0, 2).join(' ')}"; run \`xsm help\` for the list`);
    return 2;
  }
  try {
    return await match.run(argv.slice(match.name.split(' ').length), io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`xsm ${match.name}: ${e.message}\nusage: ${match.usage}`);
      return 2;
    }
    io.err(`xsm ${match.name}: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}

const io: CliIo = { out: (l) => process.stdout.write(l + '\n'), err: (l) => process.stderr.write(l + '\n') };
if (process.argv[1] && /cli[/\\]main\.ts$|bin[/\\]xsm(\.js)?$/.test(process.argv[1])) {
  main(process.argv.slice(2), io).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      io.err(`xsm: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      process.exitCode = 1;
    },
  );
}
