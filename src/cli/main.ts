// The `xsm` command line: finds the command the leading words name, or the group they name (`xsm vm`), and
// leaves argument checking to the command's declared options (src/cli/command.ts). Commands are listed here;
// each lives in src/cli/commands/. Exit codes (EXIT in command.ts): 0 done, 1 failed or out of sync, 2 usage
// error (nothing was done), 3 API unreachable or timed out, 4 refused by the API. Under --json, stdout carries
// exactly one JSON document: the command's answer, or {"error": ...} with the same exit code.

import { PACKAGE_NAME, packageVersion } from '../lib/package-version.ts';
import { bashCompletion, zshCompletion } from './completion.ts';
import { defineCommand, EXIT, twoColumns, UsageError, type CliIo, type Command } from './command.ts';
import { runCommand, type CliDeps } from './run-command.ts';
export type { CliDeps } from './run-command.ts';
export { apiErrorExit } from './run-command.ts';
import { siteDiff, sitePlan, siteValidate } from './commands/site.ts';
import { extraCommands } from './commands/index.ts';

const completion = defineCommand({
  name: 'completion',
  summary: 'print shell completion for bash or zsh: eval "$(xsm completion bash)"',
  positionals: [{ name: 'SHELL', description: 'bash or zsh' }],
  options: {},
  async run({ positionals: { SHELL } }, ctx) {
    if (SHELL !== 'bash' && SHELL !== 'zsh') throw new UsageError(`SHELL is bash or zsh, got ${JSON.stringify(SHELL)}`);
    const script = SHELL === 'bash' ? bashCompletion(commands) : zshCompletion(commands);
    ctx.io.out(script.trimEnd());
    ctx.result({ shell: SHELL, script });
    return EXIT.ok;
  },
});

export const commands: Command[] = [siteValidate, siteDiff, sitePlan, ...extraCommands, completion];

const ENVIRONMENT = [
  'Environment: XSM_API (default http://127.0.0.1:8080), XSM_TOKEN (bearer token),',
  '             XSM_API_TIMEOUT (seconds per API call, default 30), XSM_REDIS_URL, XSM_PREFIX.',
  'Exit codes:  0 done, 1 failed or out of sync, 2 usage error, 3 API unreachable, 4 refused by API.',
];

/** Group name -> commands in it: the first word of every command named by more than one word. */
function groups(): Map<string, Command[]> {
  const g = new Map<string, Command[]>();
  for (const c of commands) {
    const words = c.name.split(' ');
    if (words.length > 1) g.set(words[0]!, [...(g.get(words[0]!) ?? []), c]);
  }
  return g;
}

/** Commands sharing a first word together, in the order their first member is listed. */
function byGroup(list: Command[]): Command[] {
  const order = [...new Set(list.map((c) => c.name.split(' ')[0]!))];
  return [...list].sort((a, b) => order.indexOf(a.name.split(' ')[0]!) - order.indexOf(b.name.split(' ')[0]!));
}

function overview(): string[] {
  return [
    'xsm — Xen Site Manager',
    '',
    'usage: xsm COMMAND [ARGUMENTS] [OPTIONS]     (xsm COMMAND --help for its arguments and options)',
    '',
    'Commands:',
    ...twoColumns(byGroup(commands).map((c) => [c.name, c.summary])),
    '',
    '  xsm --version prints the version; xsm help COMMAND is xsm COMMAND --help.',
    '',
    ...ENVIRONMENT,
  ];
}

function groupHelp(name: string, members: Command[]): string[] {
  const self = commands.find((c) => c.name === name);
  return [
    `usage: xsm ${name} SUBCOMMAND ...     (xsm ${name} SUBCOMMAND --help for its arguments and options)`,
    '',
    'Subcommands:',
    ...twoColumns([...(self ? [self] : []), ...members].map((c) => [c.name, c.summary])),
  ];
}

/** The package's version (`xsm --version`). */
export function version(): string {
  return packageVersion();
}

export { PACKAGE_NAME };

/** The command named by the longest run of leading words ("rebalance schedule" before "rebalance"). */
function findCommand(argv: string[]): Command | undefined {
  return commands
    .filter((c) => c.name.split(' ').every((w, i) => argv[i] === w))
    .sort((a, b) => b.name.length - a.name.length)[0];
}

function isHelpFlag(a: string | undefined): boolean {
  return a === '--help' || a === '-h';
}

export async function main(argv: string[], io: CliIo, deps: CliDeps = {}): Promise<number> {
  if (argv.length === 0) {
    for (const l of overview()) io.err(l);
    return 2;
  }
  if (argv[0] === 'help' || isHelpFlag(argv[0])) {
    const rest = argv.slice(1).filter((a) => !isHelpFlag(a));
    if (rest.length === 0) {
      for (const l of overview()) io.out(l);
      return 0;
    }
    return main([...rest, '--help'], io, deps);
  }
  if (argv[0] === '--version') {
    if (argv.length > 1) {
      io.err('xsm: --version takes no arguments');
      return 2;
    }
    io.out(`xsm ${version()}`);
    return 0;
  }
  const match = findCommand(argv);
  if (!match) {
    const group = groups().get(argv[0]!);
    if (!group) {
      io.err(`xsm: unknown command "${argv[0]}"; run \`xsm help\` for the list`);
      return 2;
    }
    // `xsm vm --help` lists the group's subcommands; `xsm vm` and `xsm vm frob` list them as a usage error.
    const asked = argv.slice(1).some(isHelpFlag);
    if (!asked && argv.length > 1) io.err(`xsm: unknown command "${argv.slice(0, 2).join(' ')}"`);
    for (const l of groupHelp(argv[0]!, group)) (asked ? io.out : io.err)(l);
    return asked ? 0 : 2;
  }
  const related = commands.filter((c) => c !== match && c.name.startsWith(match.name + ' '));
  return runCommand(match, argv.slice(match.name.split(' ').length), io, deps, related);
}

// Run as a program (`node dist/src/cli/main.js`): the entry point does it, with its fast paths.
if (process.argv[1] && /cli[/\\]main\.[jt]s$/.test(process.argv[1])) await import('./entry.ts');
