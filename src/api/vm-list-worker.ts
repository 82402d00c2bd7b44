// The worker thread behind GET /api/vms (vm-list-thread.ts): reads the current site version and the observed
// state from Redis on a connection of its own, builds the list, stringifies, hashes and gzips it, and hands
// the API's thread the bytes (transferred, not copied). At 10,000 VMs that work is 100-400 ms of CPU per
// build on a busy machine; on the API's event loop it delayed every request that arrived meanwhile.

import { parentPort, workerData } from 'node:worker_threads';
import { connectRedis, type RedisConfig } from '../lib/redis.ts';
import { redisStores } from '../state/stores.ts';
import { listVms } from '../services/vm-list.ts';
import { encodeJson, type EncodedJson } from './json-snapshot.ts';

const { redis: config } = workerData as { redis: RedisConfig };
const stores = redisStores(connectRedis(config), config.prefix);
/** The last build's hash and gzip: a steady site rebuilds the same list, and compressing it again is waste. */
let last: Pick<EncodedJson, 'hash' | 'gzip'> | undefined;

/** Requests come one at a time (the thread's client sends the next after this one's answer). */
parentPort!.on('message', (m: { id: number }) => {
  void (async () => {
    try {
      const encoded = await encodeJson(Buffer.from(JSON.stringify(await listVms(stores))), last);
      last = { hash: encoded.hash, gzip: encoded.gzip };
      // Fresh buffers for the transfer list (a Buffer may share its memory with others); `last.gzip` stays here.
      const body = new Uint8Array(encoded.body);
      const gzip = new Uint8Array(encoded.gzip);
      parentPort!.postMessage({ id: m.id, body, gzip, hash: encoded.hash }, [body.buffer, gzip.buffer]);
    } catch (e) {
      parentPort!.postMessage({ id: m.id, error: e instanceof Error ? e.message : String(e) });
    }
  })();
});
