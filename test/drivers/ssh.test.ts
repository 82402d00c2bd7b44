import test from 'ava';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, writeFile, rm, mkdir } from 'node:fs/promises';
import { createServer, connect, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SshShell, probeHostKey, shellQuote } from '../../src/drivers/ssh/ssh-shell.ts';
import { runChecked, CommandError } from '../../src/drivers/shell.ts';

// A real OpenSSH server on 127.0.0.1, its own host key and authorized_keys, run by this test.
interface Sshd {
  port: number;
  dir: string;
  clientKey: string;
  otherClientKey: string;
  hostFingerprint: string;
  proc: ChildProcess;
}

const canRun =
  process.getuid?.() === 0 &&
  (() => {
    try {
      execFileSync('/usr/sbin/sshd', ['-V'], { stdio: 'ignore' });
    } catch (e) {
      // sshd -V exits non-zero but prints its version; only a missing binary matters.
      return (e as NodeJS.ErrnoException).code !== 'ENOENT';
    }
    return true;
  })();

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const p = (s.address() as AddressInfo).port;
  s.close();
  return p;
}

async function startSshd(): Promise<Sshd> {
  const dir = await mkdtemp(join(tmpdir(), 'xsm-sshd-'));
  for (const [name, type] of [
    ['host', 'ed25519'],
    ['client', 'ed25519'],
    ['other', 'ed25519'],
  ] as const) {
    execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-f', join(dir, name), '-C', `xsm-test-${name}`]);
  }
  await writeFile(join(dir, 'authorized_keys'), await readFile(join(dir, 'client.pub')));
  await mkdir('/run/sshd', { recursive: true });
  const port = await freePort();
  const cfg = [
    `ListenAddress 127.0.0.1:${port}`,
    `HostKey ${join(dir, 'host')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    'PermitRootLogin prohibit-password',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'StrictModes no',
    'PidFile none',
    'LogLevel ERROR',
  ].join('\n');
  await writeFile(join(dir, 'sshd_config'), cfg + '\n');
  const proc = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const until = Date.now() + 10000;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const c = connect(port, '127.0.0.1', () => (c.destroy(), r(true)));
      c.on('error', () => r(false));
    });
    if (ok) break;
    if (proc.exitCode !== null || Date.now() > until) throw new Error(`sshd did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const fp = execFileSync('ssh-keygen', ['-lf', join(dir, 'host.pub')])
    .toString()
    .split(' ')[1]!;
  return { port, dir, clientKey: join(dir, 'client'), otherClientKey: join(dir, 'other'), hostFingerprint: fp, proc };
}

let sshd: Sshd | undefined;
test.before(async () => {
  if (canRun) sshd = await startSshd();
});
test.after.always(async () => {
  sshd?.proc.kill();
  if (sshd) await rm(sshd.dir, { recursive: true, force: true });
});

const maybe = canRun ? test : test.skip;

test('shellQuote makes every argument one literal word', (t) => {
  t.is(shellQuote("it's"), `'it'\\''s'`);
  t.throws(() => shellQuote('a\0b'), { message: /NUL/ });
});

maybe('runs programs over SSH with arguments passed literally, stdin, exit codes and env', async (t) => {
  const s = new SshShell({
    host: '127.0.0.1',
    port: sshd!.port,
    privateKey: sshd!.clientKey,
    hostKeySha256: sshd!.hostFingerprint,
  });
  t.teardown(() => s.close());
  await rm('/tmp/xsm-pwned', { force: true });
  const hostile = ['a b', "it's", '$(touch /tmp/xsm-pwned)', '; echo hi', '`id`', '*', ''];
  const r = await runChecked(s, 'printf', ['%s\\n', ...hostile]);
  t.is(r.stdout, hostile.map((a) => a + '\n').join(''));
  const cat = await runChecked(s, 'cat', [], { input: 'name = "vm1"\n' });
  t.is(cat.stdout, 'name = "vm1"\n');
  const fail = await s.run('sh', ['-c', 'echo oops >&2; exit 3']);
  t.is(fail.code, 3);
  const err = await t.throwsAsync(runChecked(s, 'sh', ['-c', 'echo "no such domain" >&2; exit 1']), {
    instanceOf: CommandError,
  });
  t.regex(err!.message, /^root@127\.0\.0\.1:\d+: `sh -c .*` exited 1: no such domain$/);
  const env = await runChecked(s, 'sh', ['-c', 'printf %s "$XSM_X"'], { env: { XSM_X: "v'1 $(x)" } });
  t.is(env.stdout, "v'1 $(x)");
  await t.throwsAsync(readFile('/tmp/xsm-pwned'), { code: 'ENOENT' }, 'no argument was run as a command');
});

maybe('a host offering another key than the pinned one is refused and sent nothing', async (t) => {
  const wrong = 'SHA256:' + 'A'.repeat(43);
  const s = new SshShell({ host: '127.0.0.1', port: sshd!.port, privateKey: sshd!.clientKey, hostKeySha256: wrong });
  const e = await t.throwsAsync(s.run('touch', ['/tmp/xsm-should-not-exist']));
  t.regex(
    e!.message,
    new RegExp(
      `^root@127\\.0\\.0\\.1:${sshd!.port}: host key mismatch: pinned ${wrong.replace('+', '\\+')}, the host offered ${sshd!.hostFingerprint.replace(/[+/]/g, '\\$&')}; no command was sent`,
    ),
  );
  t.is(await probeHostKey('127.0.0.1', sshd!.port), sshd!.hostFingerprint);
});

maybe('a key the host does not accept fails with what to check', async (t) => {
  const s = new SshShell({
    host: '127.0.0.1',
    port: sshd!.port,
    privateKey: sshd!.otherClientKey,
    hostKeySha256: sshd!.hostFingerprint,
  });
  const e = await t.throwsAsync(s.run('true', []));
  t.regex(e!.message, /authentication failed for root: the host does not accept XSM's key/);
});

test('a malformed pinned key is refused before connecting', (t) => {
  t.throws(() => new SshShell({ host: '127.0.0.1', privateKey: Buffer.from('x'), hostKeySha256: 'md5:aa' }), {
    message: /is not a SHA256 fingerprint/,
  });
});

maybe('nothing listening: a clear connection error', async (t) => {
  const port = await freePort();
  const s = new SshShell({
    host: '127.0.0.1',
    port,
    privateKey: sshd!.clientKey,
    hostKeySha256: sshd!.hostFingerprint,
    readyTimeoutMs: 2000,
  });
  const e = await t.throwsAsync(s.run('true', []));
  t.regex(e!.message, new RegExp(`root@127\\.0\\.0\\.1:${port}: cannot connect: .*ECONNREFUSED`));
});

maybe(
  'a program that outlives its timeout does not hold the call (sshd waits for the program before closing)',
  async (t) => {
    const s = new SshShell({
      host: '127.0.0.1',
      port: sshd!.port,
      privateKey: sshd!.clientKey,
      hostKeySha256: sshd!.hostFingerprint,
    });
    t.teardown(() => s.close());
    const start = Date.now();
    const r = await s.run('sleep', ['8.25'], { timeoutMs: 500 });
    t.true(Date.now() - start < 5000, `returned after ${Date.now() - start} ms`);
    t.is(r.code, 128);
    t.regex(r.stderr, /stopped after 500 ms/);
    t.is((await runChecked(s, 'echo', ['still usable'])).stdout, 'still usable\n');
  },
);

maybe("a program past its timeout is killed on the host, so hung programs never use up sshd's sessions", async (t) => {
  const s = new SshShell({
    host: '127.0.0.1',
    port: sshd!.port,
    privateKey: sshd!.clientKey,
    hostKeySha256: sshd!.hostFingerprint,
  });
  t.teardown(() => s.close());
  const pidFile = join(await mkdtemp(join(tmpdir(), 'xsm-ssh-kill-')), 'pid');
  // More hung programs than sshd's MaxSessions (10 by default) on one connection.
  for (let i = 0; i < 12; i++) {
    const r = await s.run('sh', ['-c', `echo $$ > ${pidFile}; exec sleep 60.${i}`], { timeoutMs: 300 });
    t.is(r.code, 128);
  }
  const pid = (await runChecked(s, 'cat', [pidFile])).stdout.trim();
  t.regex(pid, /^\d+$/);
  // Killed a second after XSM stopped waiting (it would sleep 60 s otherwise).
  const until = Date.now() + 5000;
  while ((await s.run('kill', ['-0', pid])).code === 0 && Date.now() < until)
    await new Promise((r) => setTimeout(r, 200));
  t.is((await s.run('kill', ['-0', pid])).code, 1, `the last hung program (pid ${pid}) still runs`);
  t.is((await runChecked(s, 'echo', ['still usable'])).stdout, 'still usable\n');
});

maybe(
  'a host that accepts TCP but never speaks SSH fails the call, and its second error does not crash the process',
  async (t) => {
    // What qemu's user-net port forward does while the guest's sshd is down: ssh2 then reports the ready
    // timeout and, once the socket closes, "Connection lost before handshake" as a second error.
    const silent = createServer((sock) => setTimeout(() => sock.destroy(), 1500)).listen(0, '127.0.0.1');
    await once(silent, 'listening');
    t.teardown(() => silent.close());
    const port = (silent.address() as AddressInfo).port;
    const s = new SshShell({
      host: '127.0.0.1',
      port,
      privateKey: sshd!.clientKey,
      hostKeySha256: sshd!.hostFingerprint,
      readyTimeoutMs: 500,
    });
    const e = await t.throwsAsync(s.run('true', []));
    t.regex(e!.message, /no SSH answer within 500 ms/);
    await new Promise((r) => setTimeout(r, 2000));
    t.pass('still running after the socket closed');
  },
);
