// A deploy worker in its own process, for the kill -9 test: reads the lab's deploy config (JSON file
// named on the command line) and consumes the deploy queue until killed.
import { readFile } from 'node:fs/promises';
import { XsmRuntime } from '../../src/runtime/runtime.ts';
import { createLogger } from '../../src/lib/log.ts';
import { startDeployWorker } from '../../workers/deploy-lib.ts';
import { labDeployEnv, LabBmcPower, type LabDeployConfig } from './deploy-site.ts';

const cfg = JSON.parse(await readFile(process.argv[2]!, 'utf8')) as LabDeployConfig;
const rt = new XsmRuntime({ url: cfg.redisUrl, prefix: cfg.prefix });
const log = createLogger({ component: 'deploy-worker' }, 'warn');
const env = await labDeployEnv(cfg, rt, log, async (host) => new LabBmcPower(cfg.bmcUrl!, host));
startDeployWorker(env, { lockDurationMs: 3000, stalledIntervalMs: 1000 });
