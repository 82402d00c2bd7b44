// The CLI's contract with people and scripts: `--help` only prints help, a typo or a stray word is refused
// with the usage line and exit 2, and numbers are decimal. Every command runs against a fake API that records
// what reaches it, so "made no call" is observed, not assumed.
import test from 'ava';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { commands, main } from '../../src/cli/main.ts';
import { usageLines, type Command } from '../../src/cli/command.ts';

interface Recorded {
  method: string;
  url: string;
  body: string;
}
const requests: Recorded[] = [];
let server: Server | undefined;

test.before(async () => {
  // Answers every request with an error, so a command that calls the API fails fast after being recorded.
  server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', body });
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'fake', message: 'the fake API refuses everything' } }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  process.env.XSM_API = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  process.env.XSM_TOKEN = 'strict-cli-test-token';
});
test.after.always(() => server?.close());

async function xsm(...args: string[]): Promise<{ code: number; out: string; err: string; calls: Recorded[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const before = requests.length;
  const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n'), calls: requests.slice(before) };
}

/** Arguments that satisfy a command's positionals (a path that does not exist for files). */
function validPositionals(c: Command): string[] {
  return c.positionals.filter((p) => !p.optional).map((p) => (/FILE|OLD|NEW/.test(p.name) ? '/nonexistent.xml' : 'x'));
}

test.serial('xsm rebalance --help prints usage and makes no API call', async (t) => {
  const r = await xsm('rebalance', '--help');
  t.is(r.code, 0);
  t.regex(r.out, /^usage: xsm rebalance \[--dry-run\]/);
  t.regex(r.out, /--dry-run\s+only show the migrations; write nothing/);
  t.deepEqual(r.calls, []);
});

test.serial('xsm rebalance --dryrun (a typo) exits 2 with the usage line and makes no API call', async (t) => {
  const r = await xsm('rebalance', '--dryrun');
  t.is(r.code, 2);
  t.regex(r.err, /unknown option --dryrun \(did you mean --dry-run\?\)/);
  t.regex(r.err, /^usage: xsm rebalance \[--dry-run\]/m);
  t.is(r.out, '');
  t.deepEqual(r.calls, []);
});

test.serial('every command prints its help for --help and -h, wherever it stands, and calls nothing', async (t) => {
  t.true(commands.length >= 15);
  for (const c of commands) {
    for (const args of [['--help'], ['-h'], [...validPositionals(c), '--help'], ['--help', '--no-such-flag']]) {
      const r = await xsm(...c.name.split(' '), ...args);
      t.is(r.code, 0, `xsm ${c.name} ${args.join(' ')}: ${r.err}`);
      t.true(r.out.startsWith(`${usageLines(c).join('\n')}\n`), `xsm ${c.name} ${args.join(' ')}`);
      t.regex(r.out, /-h, --help\s+show this help and exit/);
      t.deepEqual(r.calls, [], `xsm ${c.name} ${args.join(' ')} called the API`);
    }
    for (const [name, o] of Object.entries(c.options)) t.true(c.usage.includes(`--${name}`), `${name}: ${o.type}`);
  }
});

test.serial('every group lists its subcommands for --help and calls nothing', async (t) => {
  for (const group of ['site', 'vm', 'host', 'job']) {
    const r = await xsm(group, '--help');
    t.is(r.code, 0, group);
    const members = commands.filter((c) => c.name.startsWith(`${group} `));
    t.true(members.length > 0);
    for (const c of members) t.regex(r.out, new RegExp(`^  ${c.name}\\s`, 'm'));
    t.deepEqual(r.calls, []);
  }
  const bare = await xsm('vm');
  t.is(bare.code, 2);
  t.regex(bare.err, /usage: xsm vm SUBCOMMAND/);
  const wrong = await xsm('vm', 'frob', 'a');
  t.is(wrong.code, 2);
  t.regex(wrong.err, /unknown command "vm frob"/);
  t.deepEqual([...bare.calls, ...wrong.calls], []);
});

test.serial('every command refuses an unknown option with its usage line, exit 2, and calls nothing', async (t) => {
  for (const c of commands) {
    const r = await xsm(...c.name.split(' '), ...validPositionals(c), '--frobnicate');
    t.is(r.code, 2, `xsm ${c.name}`);
    t.true(r.err.includes(`xsm ${c.name}: unknown option --frobnicate\n${usageLines(c).join('\n')}`), r.err);
    t.deepEqual(r.calls, [], `xsm ${c.name} --frobnicate called the API`);
  }
});

test.serial('every command refuses a missing or an extra argument, exit 2, and calls nothing', async (t) => {
  for (const c of commands) {
    const words = c.name.split(' ');
    if (!c.positionals.some((p) => p.variadic)) {
      const all = c.positionals.map(() => 'x');
      const extra = await xsm(...words, ...all, 'stray');
      t.is(extra.code, 2, `xsm ${c.name} with a stray argument`);
      t.regex(extra.err, /unexpected argument "stray"/);
      t.deepEqual(extra.calls, []);
    }
    if (c.positionals.some((p) => !p.optional)) {
      const missing = await xsm(...words);
      t.is(missing.code, 2, `xsm ${c.name} without arguments`);
      t.true(missing.err.includes(usageLines(c).join('\n')));
      t.deepEqual(missing.calls, []);
    }
  }
});

test.serial('numbers are decimal integers: hex, exponents, suffixes and signs are refused', async (t) => {
  for (const bad of ['0x200', '1e3', '512abc', '-1', '', ' 512', '5.0', '0']) {
    const r = await xsm('vm', 'set', 'a', `--mem=${bad}`);
    t.is(r.code, 2, `--mem=${JSON.stringify(bad)}`);
    t.regex(r.err, /--mem (must be|needs)/);
    t.deepEqual(r.calls, []);
  }
  for (const bad of ['0x10', '10min', '99999']) {
    const r = await xsm('rebalance', 'schedule', bad);
    t.is(r.code, 2, bad);
    t.deepEqual(r.calls, []);
  }
  t.is((await xsm('rebalance', '--max-moves', '1e2')).code, 2);
  t.is((await xsm('site', 'get', '0x1')).code, 2);
  t.is((await xsm('apply', '/nonexistent.xml', '--base', '+1')).code, 2);
  // A good number reaches the API as a JSON number.
  const ok = await xsm('vm', 'set', 'a', '--mem', '512', '--vcpus', '2');
  t.is(ok.code, 1); // the fake API refuses
  t.deepEqual(
    ok.calls.map((c) => [c.method, c.url, JSON.parse(c.body)]),
    [['POST', '/api/vms/a/reconfigure', { memMiB: 512, vcpus: 2 }]],
  );
});

test.serial('choices, repeated options and values given to flags are refused', async (t) => {
  const mode = await xsm('rebalance', '--mode', 'chaos');
  t.is(mode.code, 2);
  t.regex(mode.err, /--mode is one of performance, density; got "chaos"/);
  const twice = await xsm('vm', 'set', 'a', '--mem', '512', '--mem', '1024');
  t.is(twice.code, 2);
  t.regex(twice.err, /--mem is given twice/);
  const valued = await xsm('rebalance', '--dry-run=no');
  t.is(valued.code, 2);
  t.regex(valued.err, /--dry-run does not take an argument/);
  const missing = await xsm('vm', 'set', 'a', '--mem');
  t.is(missing.code, 2);
  // `--reason --help` is a forgotten value, not a request for help: refused, nothing called.
  const ambiguous = await xsm('vm', 'migrate', 'a', 'h2', '--reason', '--help');
  t.is(ambiguous.code, 2);
  t.deepEqual([...mode.calls, ...twice.calls, ...valued.calls, ...missing.calls, ...ambiguous.calls], []);
});

test.serial(
  'xsm --version prints the package version; xsm help fits in 100 columns and lists every command',
  async (t) => {
    const before = requests.length;
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    const v = await xsm('--version');
    t.is(v.code, 0);
    t.is(v.out, `xsm ${pkg.version}`);
    const h = await xsm('help');
    t.is(h.code, 0);
    for (const line of h.out.split('\n')) t.true(line.length <= 100, `${line.length} columns: ${line}`);
    for (const c of commands) t.regex(h.out, new RegExp(`^  ${c.name}\\s`, 'm'));
    const one = await xsm('help', 'vm', 'set');
    t.is(one.code, 0);
    t.true(one.out.startsWith('usage: xsm vm set VM'));
    for (const c of commands)
      for (const line of (await xsm(...c.name.split(' '), '--help')).out.split('\n'))
        t.true(line.length <= 100, `xsm ${c.name} --help: ${line}`);
    t.deepEqual(requests.slice(before), []);
  },
);

test('the README shows `xsm --help` as the CLI prints it', async (t) => {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const shown = /<summary><code>xsm --help<\/code><\/summary>\n\n```text\n([\s\S]*?)\n```/.exec(readme)?.[1];
  t.truthy(shown, 'the README has the help block');
  const r = await xsm('--help');
  t.is(r.code, 0);
  t.is(r.out.trimEnd(), shown ?? '');
});
