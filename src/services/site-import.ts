// `xsm site import` (GET /api/site/import): the site file the host agents' reports describe, built by
// src/site/import.ts from the observed state and the current version, written as a site file and checked
// by the same loader a submit uses, so what is handed out loads. It stores nothing.

import type { ServiceRuntime } from '../runtime/service-runtime.ts';
import { siteFromObserved } from '../site/import.ts';
import { formatIssue } from '../site/model.ts';
import { loadSite } from '../site/parse.ts';
import { serializeSite } from '../site/serialize.ts';

export interface ImportedSite {
  /** The version the file starts from (0 when none is stored): `xsm apply` submits against it. */
  base: number;
  xml: string;
  hosts: number;
  vms: number;
  notes: string[];
}

/** No agent has reported: there is nothing to import. */
export class NothingObservedError extends Error {
  constructor() {
    super('no host agent has reported yet: there is nothing to import');
    this.name = 'NothingObservedError';
  }
}

export async function importSite(rt: ServiceRuntime): Promise<ImportedSite> {
  const observed = await rt.observed.all();
  if (!Object.keys(observed.hosts).length) throw new NothingObservedError();
  const base = await rt.sites.currentVersion();
  const current = base ? (await rt.sites.load(base)).site : undefined;
  const { site, notes } = siteFromObserved(observed, current);
  const xml = serializeSite(site);
  const loaded = loadSite(xml, 'import.xml');
  // The import is built from values the loader already accepted (reports, the current version); a
  // refusal here is a bug to report, not an operator's mistake, so it says so rather than hand out a bad file.
  if (!loaded.ok)
    throw new Error(`the imported site does not load: ${loaded.errors.map(formatIssue).join('; ')} (a bug in import)`);
  return { base, xml, hosts: site.hosts.length, vms: site.vms.length, notes };
}
