// One structured logger: JSON lines on stderr with fields (host, vm, job, step). No console.log in library code.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, string | number | boolean | undefined | null>;

export interface Logger {
  child(fields: LogFields): Logger;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

function envLevel(): LogLevel {
  const v = process.env.XSM_LOG_LEVEL;
  return v === 'debug' || v === 'info' || v === 'warn' || v === 'error' ? v : 'info';
}

export function createLogger(
  base: LogFields = {},
  level: LogLevel = envLevel(),
  sink: (line: string) => void = (l) => process.stderr.write(l + '\n'),
): Logger {
  return new JsonLogger(base, order[level], sink);
}

/**
 * Methods on the prototype: a host agent makes a child logger per job and per step, and one built of fresh
 * closures each time was a few percent of an agent's CPU in the apply benchmark.
 */
class JsonLogger implements Logger {
  constructor(
    private readonly base: LogFields,
    private readonly min: number,
    private readonly sink: (line: string) => void,
  ) {}
  child(fields: LogFields): Logger {
    // Not `{ ...this.base, ...fields }`: V8 builds a literal of two spreads on a slow path (2 µs against 0.1).
    return new JsonLogger(Object.assign({}, this.base, fields), this.min, this.sink);
  }
  debug(msg: string, fields?: LogFields): void {
    this.emit('debug', msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.emit('info', msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.emit('warn', msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.emit('error', msg, fields);
  }
  private emit(lvl: LogLevel, msg: string, fields?: LogFields): void {
    if (order[lvl] < this.min) return;
    this.sink(JSON.stringify({ t: new Date().toISOString(), level: lvl, msg, ...this.base, ...fields }));
  }
}

/** For tests and quiet tools. */
export const silentLogger: Logger = createLogger({}, 'error', () => {});
