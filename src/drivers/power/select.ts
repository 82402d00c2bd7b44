// Builds the PowerControl a host's <Power> element names. Secrets are read here, at use, from the
// passwordFile (never stored in Redis, never on a command line), and only after the file, the BMC address
// and the QMP socket pass the power policy (src/site/power-policy.ts): the site file was checked when it
// was submitted, but the files may have changed since, and a stored version may predate the policy.

import { ATTR, tracedDriver } from '../../lib/tracing.ts';
import type { PowerSpec } from '../../site/model.ts';
import {
  checkPowerAddress,
  localAddressKind,
  powerPolicyFromEnv,
  redfishUrl,
  type PowerPolicy,
} from '../../site/power-policy.ts';
import { PermanentError } from '../../lib/errors.ts';
import type { Shell } from '../shell.ts';
import type { PowerControl } from './power.ts';
import { IpmiPower } from './ipmi.ts';
import { RedfishPower } from './redfish.ts';
import { QmpPower } from './qmp.ts';
import { ManualPower, type ManualPowerRequests } from './manual.ts';
import { checkQmpSocket, checkSecretFile, readSecretFile } from './secrets.ts';

export interface PowerDeps {
  shell: Shell;
  /** Where manual power requests wait for an operator's confirmation. */
  manual: ManualPowerRequests;
  /** Where power may point; default from XSM_SECRETS_DIR, XSM_QMP_DIR, XSM_POWER_ALLOW_LOCAL. */
  policy?: PowerPolicy;
}

export async function powerFor(host: string, spec: PowerSpec | undefined, deps: PowerDeps): Promise<PowerControl> {
  // Every power call a span (`power.off`, ...) when tracing is on.
  return tracedDriver(await selectPower(host, spec, deps), 'power', {
    [ATTR.host]: host,
    'xsm.power.driver': spec?.driver ?? 'manual',
  });
}

async function selectPower(host: string, spec: PowerSpec | undefined, deps: PowerDeps): Promise<PowerControl> {
  const need = (v: string | undefined, what: string): string => {
    if (!v)
      throw new PermanentError(
        `host ${host}: <Power driver="${spec?.driver}"> has no ${what}`,
        'add it to the host in the site file',
      );
    return v;
  };
  if (!spec || spec.driver === 'manual') return new ManualPower(deps.manual, host);
  const policy = deps.policy ?? powerPolicyFromEnv();
  const address = need(spec.address, spec.driver === 'qmp' ? 'address (the QMP socket path)' : 'address');
  const refused = checkPowerAddress(spec.driver, address, policy);
  if (refused) throw new PermanentError(`host ${host}: ${refused}`, 'an admin must correct the <Power> element');
  switch (spec.driver) {
    case 'ipmi':
      return new IpmiPower(deps.shell, {
        host: address.trim(),
        user: need(spec.user, 'user'),
        passwordFile: await checkSecretFile(need(spec.passwordFile, 'passwordFile'), policy, host),
      });
    case 'redfish': {
      const user = need(spec.user, 'user');
      const password = await readSecretFile(need(spec.passwordFile, 'passwordFile'), policy, host);
      return new RedfishPower({
        baseUrl: redfishUrl(address).url!.origin,
        user,
        password,
        ...(spec.insecureTls ? { insecureTls: true } : {}),
        ...(policy.allowLocal
          ? {}
          : {
              refuseAddress: (ip: string) => {
                const kind = localAddressKind(ip);
                return kind ? `resolves to ${ip}, a ${kind} address; a BMC must be a remote host` : undefined;
              },
            }),
      });
    }
    case 'qmp':
      return new QmpPower(address, () => checkQmpSocket(address, policy, host));
  }
}
