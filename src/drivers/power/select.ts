// Builds the PowerControl a host's <Power> element names. Secrets are read here, at use, from the
// passwordFile (never stored in Redis, never on a command line).

import { readFile } from 'node:fs/promises';
import type { Redis } from 'ioredis';
import type { PowerSpec } from '../../site/model.ts';
import { PermanentError } from '../../lib/errors.ts';
import type { Shell } from '../shell.ts';
import type { PowerControl } from './power.ts';
import { IpmiPower } from './ipmi.ts';
import { RedfishPower } from './redfish.ts';
import { QmpPower } from './qmp.ts';
import { ManualPower } from './manual.ts';

export interface PowerDeps {
  shell: Shell;
  redis: Redis;
  prefix: string;
}

export async function powerFor(host: string, spec: PowerSpec | undefined, deps: PowerDeps): Promise<PowerControl> {
  const need = (v: string | undefined, what: string): string => {
    if (!v)
      throw new PermanentError(
        `host ${host}: <Power driver="${spec?.driver}"> has no ${what}`,
        'add it to the host in the site file',
      );
    return v;
  };
  if (!spec || spec.driver === 'manual') return new ManualPower(deps.redis, deps.prefix, host);
  switch (spec.driver) {
    case 'ipmi':
      return new IpmiPower(deps.shell, {
        host: need(spec.address, 'address'),
        user: need(spec.user, 'user'),
        passwordFile: need(spec.passwordFile, 'passwordFile'),
      });
    case 'redfish': {
      const file = need(spec.passwordFile, 'passwordFile');
      const password = (
        await readFile(file, 'utf8').catch((e: Error) => {
          throw new PermanentError(`host ${host}: cannot read BMC password file ${file}: ${e.message}`);
        })
      ).trim();
      const addr = need(spec.address, 'address');
      return new RedfishPower({
        baseUrl: /^https?:\/\//.test(addr) ? addr : `https://${addr}`,
        user: need(spec.user, 'user'),
        password,
      });
    }
    case 'qmp':
      return new QmpPower(need(spec.address, 'address (the QMP socket path)'));
  }
}
