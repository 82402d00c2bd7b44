// Commands beyond `site validate|diff|plan`: each part of XSM adds its own file and lists its commands here.
import type { Command } from '../command.ts';
import { opsCommands } from './ops.ts';
import { monitorCommands } from './monitor.ts';
import { hostDeploy } from './deploy.ts';
import { hostUpdate, imageCapture, imageList } from './image.ts';
import { audit } from './audit.ts';
import { migrations } from './migrations.ts';
import { siteImport } from './site-import.ts';
import { hostDrain, hostUndrain } from './drain.ts';
import { hostsUpgrade, hostsUpgradeStatus } from './upgrade.ts';
import { recover } from './recover.ts';

export const extraCommands: Command[] = [
  ...opsCommands,
  ...monitorCommands,
  hostDeploy,
  hostUpdate,
  imageList,
  imageCapture,
  hostDrain,
  hostUndrain,
  hostsUpgrade,
  hostsUpgradeStatus,
  audit,
  migrations,
  siteImport,
  recover,
];
