// Runs one command the way every `xsm` command runs: its options parsed by its own declaration, --help
// answered without acting, usage errors with the usage line and exit 2, API errors with their exit code,
// and under --json exactly one JSON document on stdout. Apart from main.ts so that an entry point can run
// one command without loading every other one (src/cli/entry.ts).

import { ApiCallError, apiClient, type ApiClient } from './api-client.ts';
import {
  commandHelp,
  EXIT,
  HelpRequested,
  usageLines,
  UsageError,
  type CliContext,
  type CliIo,
  type Command,
} from './command.ts';

export interface CliDeps {
  /** The API client commands use; default: from XSM_API and XSM_TOKEN. */
  api?: () => ApiClient;
}

/** Runs `match` on `args` (the words after its name); `related` are listed in its --help. */
export async function runCommand(
  match: Command,
  args: string[],
  io: CliIo,
  deps: CliDeps = {},
  related: Command[] = [],
): Promise<number> {
  let answer: unknown;
  const ctx: CliContext = {
    io,
    api: deps.api ?? (() => apiClient()),
    json: false,
    result: (value) => {
      answer = value;
    },
  };
  let code: number;
  let error: { code: string; message: string; status?: number; hint?: string; details?: unknown } | undefined;
  try {
    code = await match.execute(args, ctx);
  } catch (e) {
    if (e instanceof HelpRequested) {
      for (const l of commandHelp(match, related)) io.out(l);
      return EXIT.ok;
    }
    if (e instanceof UsageError) {
      io.err(
        [`xsm ${match.name}: ${e.message}`, ...usageLines(match), `(xsm ${match.name} --help for more)`].join('\n'),
      );
      // The arguments did not parse, so ctx.json was never set: a script that asked for JSON still gets it.
      if (args.includes('--json')) io.out(JSON.stringify({ error: { code: 'usage', message: e.message } }));
      return EXIT.usage;
    }
    if (e instanceof ApiCallError) {
      apiErrorLines(e, io);
      code = apiErrorExit(e);
      error = {
        code: e.code,
        message: e.message.split('\n')[0]!,
        status: e.status,
        ...(e.hint ? { hint: e.hint } : {}),
        ...(e.details !== undefined ? { details: e.details } : {}),
      };
    } else {
      io.err(`xsm ${match.name}: ${e instanceof Error ? e.message : String(e)}`);
      code = EXIT.failed;
      error = { code: 'failed', message: e instanceof Error ? e.message : String(e) };
    }
  }
  if (ctx.json) io.out(JSON.stringify(error ? { error } : (answer ?? {}), null, 2));
  return code;
}

/** 3 when the API never answered, 4 when it refused (not allowed, stale, consent, invalid), else 1. */
export function apiErrorExit(e: ApiCallError): number {
  if (e.status === 0) return EXIT.unreachable;
  if ([401, 403, 409, 422].includes(e.status)) return EXIT.refused;
  return EXIT.failed;
}

/** The API's message and hint, then each located detail (file:line:col of a refused site file) a line. */
function apiErrorLines(e: ApiCallError, io: CliIo): void {
  io.err(e.message);
  if (Array.isArray(e.details)) for (const d of e.details as { text?: string }[]) if (d?.text) io.err(`  ${d.text}`);
}
