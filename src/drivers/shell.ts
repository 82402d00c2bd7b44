// Running a program on a host: locally (child_process, no shell) or over SSH (src/drivers/ssh/).
// Workflows and drivers receive a Shell; only this file and the SSH shell touch processes.

import { spawn } from 'node:child_process';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Bytes written to the program's stdin, then stdin is closed. */
  input?: string | Buffer;
  /** Kill the program after this long (ms). Default: no limit. */
  timeoutMs?: number;
  env?: Record<string, string>;
}

export interface Shell {
  /** Where the commands run, for logs and errors ("local", "root@10.0.0.5"). */
  readonly where: string;
  /** Runs `program` with `args` as separate arguments; never through `sh -c`. Resolves with the exit code. */
  run(program: string, args: readonly string[], options?: RunOptions): Promise<CommandResult>;
}

export class CommandError extends Error {
  constructor(
    readonly where: string,
    readonly program: string,
    readonly args: readonly string[],
    readonly result: CommandResult,
  ) {
    const detail = result.stderr.trim() || result.stdout.trim() || 'no output';
    super(`${where}: \`${[program, ...args].join(' ')}\` exited ${result.code}: ${detail}`);
    this.name = 'CommandError';
  }
}

/** Runs and throws CommandError on a non-zero exit. */
export async function runChecked(
  shell: Shell,
  program: string,
  args: readonly string[],
  options?: RunOptions,
): Promise<CommandResult> {
  const result = await shell.run(program, args, options);
  if (result.code !== 0) throw new CommandError(shell.where, program, args, result);
  return result;
}

export class LocalShell implements Shell {
  readonly where = 'local';

  run(program: string, args: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(program, [...args], {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: options.env ? { ...process.env, ...options.env } : process.env,
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let timer: NodeJS.Timeout | undefined;
      if (options.timeoutMs) timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', (e) => {
        if (timer) clearTimeout(timer);
        reject(new Error(`local: cannot run ${program}: ${e.message}`));
      });
      child.on('close', (code, signal) => {
        if (timer) clearTimeout(timer);
        resolve({
          code: code ?? (signal ? 128 : 1),
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8') + (signal ? `\n(killed by ${signal})` : ''),
        });
      });
      child.stdin.on('error', () => {});
      if (options.input !== undefined) child.stdin.end(options.input);
      else child.stdin.end();
    });
  }
}
