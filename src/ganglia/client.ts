// Reading a Ganglia XML dump over TCP: gmond (8649) and gmetad (8651) write the whole document on
// connect and close; gmetad's interactive port (8652) wants one request line first.

import { connect } from 'node:net';

export interface GangliaEndpoint {
  host: string;
  port: number;
  /** For gmetad's interactive port: a path such as "/" or "/cluster?filter=summary". */
  request?: string;
}

export function parseEndpoint(s: string): GangliaEndpoint {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?(\/.*)?$/.exec(s.trim());
  if (!m) throw new Error(`"${s}" is not a Ganglia endpoint; use host[:port][/path], e.g. 127.0.0.1:8649`);
  const port = m[2] ? Number(m[2]) : 8649;
  if (port < 1 || port > 65535) throw new Error(`"${s}": port ${port} is out of range`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port, ...(m[3] ? { request: m[3] } : {}) };
}

export function fetchGangliaXml(
  ep: GangliaEndpoint,
  opts: { timeoutMs?: number; maxBytes?: number } = {},
): Promise<string> {
  const timeoutMs = opts.timeoutMs ?? 10000;
  const maxBytes = opts.maxBytes ?? 256 * 1024 * 1024;
  const where = `${ep.host}:${ep.port}`;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const sock = connect({ host: ep.host, port: ep.port });
    const fail = (msg: string) => {
      sock.destroy();
      reject(new Error(`ganglia ${where}: ${msg}`));
    };
    sock.setTimeout(timeoutMs, () => fail(`no complete answer within ${timeoutMs} ms`));
    sock.on('connect', () => {
      if (ep.request) sock.write(ep.request + '\n');
    });
    sock.on('data', (b: Buffer) => {
      size += b.length;
      if (size > maxBytes) return fail(`answer larger than ${maxBytes} bytes; refusing it`);
      chunks.push(b);
    });
    sock.on('error', (e: NodeJS.ErrnoException) =>
      fail(`${e.code ?? e.message}; is gmond/gmetad running there and is this host in its acl/trusted_hosts?`),
    );
    sock.on('end', () => {
      // Ganglia declares ISO-8859-1: latin1 decodes every byte as that character.
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
}
