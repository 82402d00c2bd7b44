// `xsm site import`: prints the site file the host agents' reports describe (GET /api/site/import), marked
// with the version it starts from so `xsm apply` submits it against that version. Notes (domains left out
// and why, values to check) go to stderr. It stores nothing.

import { writeFile } from 'node:fs/promises';
import { defineCommand, EXIT } from '../command.ts';

interface Imported {
  base: number;
  xml: string;
  hosts: number;
  vms: number;
  notes: string[];
}

export const siteImport = defineCommand({
  name: 'site import',
  summary: 'build a site file from what the host agents see (domains, config files, hosts); stores nothing',
  positionals: [],
  options: {
    out: { type: 'string', value: 'FILE', description: 'write the site file to FILE instead of stdout' },
  },
  async run({ options }, ctx) {
    const r = await ctx.api().call<Imported>('GET', '/api/site/import');
    // The mark goes after the XML declaration, which must stay first (as `xsm site get` writes it).
    const decl = /^<\?xml[^>]*\?>\s*/.exec(r.xml);
    const mark = `<!-- xsm:base-version ${r.base} -->\n`;
    const marked = decl ? `${decl[0].trimEnd()}\n${mark}${r.xml.slice(decl[0].length)}` : `${mark}${r.xml}`;
    for (const n of r.notes) ctx.io.err(`note: ${n}`);
    if (options.out !== undefined) {
      await writeFile(options.out, marked);
      ctx.io.err(`wrote ${options.out}: ${r.hosts} hosts, ${r.vms} VMs; edit it, then \`xsm apply ${options.out}\``);
    } else ctx.io.out(marked.trimEnd());
    ctx.result({ ...r, ...(options.out !== undefined ? { savedTo: options.out } : {}) });
    return EXIT.ok;
  },
});
