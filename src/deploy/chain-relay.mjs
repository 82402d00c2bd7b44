#!/usr/bin/env node
// Pipelined chain transfer, one link of the chain (runs in the installer of each receiving machine).
// Accepts one TCP stream, writes every block to the disk at the given offset and, at the same time,
// forwards it to the next machine, so N machines take about the time of one (Kadeploy's chain). Plain
// Node, no dependencies: the installer and the Dom0 image carry Node for the host agent anyway.
//   chain-relay.mjs --listen PORT [--next HOST:PORT] --out DISK --seek BYTES --bytes N [--timeout S]
import { createServer, connect } from 'node:net';
import { openSync, writeSync, fsyncSync, closeSync } from 'node:fs';

const args = new Map();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i].replace(/^--/, ''), process.argv[i + 1]);
const port = Number(args.get('listen'));
const out = args.get('out');
const seek = Number(args.get('seek') ?? 0);
const total = Number(args.get('bytes'));
const next = args.get('next');
const timeoutMs = Number(args.get('timeout') ?? 120) * 1000;
if (!port || !out || !Number.isFinite(total)) {
  process.stderr.write('usage: chain-relay.mjs --listen PORT [--next HOST:PORT] --out DISK --seek BYTES --bytes N\n');
  process.exit(2);
}
const die = (msg) => {
  process.stderr.write(`chain-relay: ${msg}\n`);
  process.exit(1);
};
const timer = setTimeout(() => die(`no complete image within ${timeoutMs / 1000} s`), timeoutMs);

/** Connects to the next machine, retrying while it is still starting its own relay. */
function connectNext() {
  if (!next) return Promise.resolve(undefined);
  const [host, p] = [next.slice(0, next.lastIndexOf(':')), Number(next.slice(next.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const until = Date.now() + 60000;
    const attempt = () => {
      const s = connect(p, host);
      s.once('connect', () => resolve(s));
      s.once('error', (e) =>
        Date.now() > until ? reject(new Error(`next ${next}: ${e.message}`)) : setTimeout(attempt, 100),
      );
    };
    attempt();
  });
}

const fd = openSync(out, 'r+');
const server = createServer({ pauseOnConnect: true }, async (src) => {
  server.close();
  let downstream;
  try {
    downstream = await connectNext();
  } catch (e) {
    die(e.message);
  }
  let pos = 0;
  downstream?.on('error', (e) => die(`forwarding to ${next}: ${e.message}`));
  src.on('data', (buf) => {
    writeSync(fd, buf, 0, buf.length, seek + pos);
    pos += buf.length;
    // Back-pressure: the slowest link of the chain sets the pace for everyone before it.
    if (downstream && !downstream.write(buf)) {
      src.pause();
      downstream.once('drain', () => src.resume());
    }
  });
  src.on('end', () => {
    fsyncSync(fd);
    closeSync(fd);
    if (pos !== total) die(`received ${pos} of ${total} bytes`);
    clearTimeout(timer);
    if (downstream) downstream.end(() => process.exit(0));
    else process.exit(0);
  });
  src.on('error', (e) => die(`upstream: ${e.message}`));
  src.resume();
});
server.listen(port, () => process.stdout.write(`listening ${port}\n`));
