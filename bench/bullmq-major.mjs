// Runs XSM on the previous BullMQ major for the benchmarks' side-by-side figures: with XSM_BENCH_BULLMQ=5,
// `import 'bullmq'` resolves to the bullmq-v5 alias (bullmq@5.81.5) and `import 'ioredis'` to the ioredis 5
// that BullMQ 5 ships with, i.e. the stack XSM ran on before the upgrade. Without it, nothing changes.
// Use: node --import tsx --import ./bench/bullmq-major.mjs ...
import { register } from 'node:module';

if (process.env.XSM_BENCH_BULLMQ === '5') {
  register(
    'data:text/javascript,' +
      encodeURIComponent(`
        const v5 = new URL('./node_modules/bullmq-v5/', ${JSON.stringify(new URL('../', import.meta.url).href)});
        export async function resolve(specifier, context, next) {
          if (specifier === 'bullmq') return next(new URL('dist/cjs/index.js', v5).href, context);
          if (specifier === 'ioredis' && !context.parentURL?.startsWith(v5.href))
            return next(new URL('node_modules/ioredis/built/index.js', v5).href, context);
          return next(specifier, context);
        }`),
  );
}
