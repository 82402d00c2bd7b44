#!/usr/bin/env node
// Launcher for the `xsm` CLI. An installed package runs the compiled dist/ (built by `npm run build`, packed
// by prepack) on plain Node, with no TypeScript loader to start. A source checkout (src/ beside bin/) runs
// the sources through tsx, so an edit is live without a build and a stale dist/ is never run by mistake.
import { existsSync } from 'node:fs';

const source = new URL('../src/cli/entry.ts', import.meta.url);
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(source.href);
} else {
  await import(new URL('../dist/src/cli/entry.js', import.meta.url).href);
}
