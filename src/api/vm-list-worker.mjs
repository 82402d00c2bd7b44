// Starts the VM-list worker thread from the TypeScript sources (tests, `tsx workers/api.ts`): worker threads
// do not inherit the parent's tsx loader, so this registers it first. The compiled build (dist/) starts
// vm-list-worker.js directly.
import { register } from 'tsx/esm/api';

register();
await import('./vm-list-worker.ts');
