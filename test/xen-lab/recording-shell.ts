// A Shell that records every command a driver runs on a real Dom0, with its real output: the xen labs'
// transcripts (what XSM saw, command by command) are written from it.

import type { CommandResult, RunOptions, Shell } from '../../src/drivers/shell.ts';

export interface Call {
  at: string;
  ms: number;
  program: string;
  args: readonly string[];
  input?: string;
  result?: CommandResult;
  error?: string;
}
export class RecordingShell implements Shell {
  readonly calls: Call[] = [];
  constructor(private readonly inner: Shell) {}
  get where(): string {
    return this.inner.where;
  }
  async run(program: string, args: readonly string[], options?: RunOptions): Promise<CommandResult> {
    const start = Date.now();
    const call: Call = {
      at: new Date(start).toISOString(),
      ms: 0,
      program,
      args,
      ...(typeof options?.input === 'string' ? { input: options.input } : {}),
    };
    this.calls.push(call);
    try {
      call.result = await this.inner.run(program, args, options);
      return call.result;
    } catch (e) {
      call.error = e instanceof Error ? e.message : String(e);
      throw e;
    } finally {
      call.ms = Date.now() - start;
    }
  }
}

export function transcript(calls: Call[], filter: (c: Call) => boolean = () => true): string {
  return (
    calls
      .filter(filter)
      .map((c) => {
        const head = `$ ${[c.program, ...c.args].join(' ')}    # ${c.at}, ${c.ms} ms, exit ${c.result ? c.result.code : 'none'}`;
        const parts = [head];
        if (c.input !== undefined) parts.push(`--- stdin ---\n${c.input.trimEnd()}`);
        if (c.result?.stdout) parts.push(c.result.stdout.trimEnd());
        if (c.result?.stderr.trim()) parts.push(`--- stderr ---\n${c.result.stderr.trimEnd()}`);
        if (c.error) parts.push(`--- error ---\n${c.error}`);
        return parts.join('\n');
      })
      .join('\n\n') + '\n'
  );
}
