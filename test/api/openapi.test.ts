// The API's contract: GET /api/openapi.json is a valid OpenAPI 3.1 document (checked by an OpenAPI
// validator), generated from the route schemas, listing every route the app serves; docs/api.md lists them too.
import test from 'ava';
import { readFile } from 'node:fs/promises';
import { validate } from '@readme/openapi-parser';
import { withApi } from './with-api.ts';
import { ROUTES } from '../../src/api/openapi.ts';
import { createApiApp } from '../../src/api/server.ts';
import { TokenTable } from '../../src/api/auth.ts';
import { silentLogger } from '../../src/lib/log.ts';

const key = (method: string, path: string) => `${method.toUpperCase()} ${path.replace(/:[A-Za-z]+/g, ':p')}`;

test('GET /api/openapi.json is valid OpenAPI 3.1 and lists every route the app serves', async (t) => {
  const { api, s } = await withApi(t, [{ name: 'h1', memMiB: 1024 }]);
  const r = await fetch(`${api.url}/api/openapi.json`);
  t.is(r.status, 200, 'served without a token, like /api/health');
  const doc = (await r.json()) as { openapi: string; paths: Record<string, Record<string, any>> };
  t.is(doc.openapi, '3.1.0');
  const result = await validate(structuredClone(doc) as never);
  t.true(result.valid, JSON.stringify((result as { errors?: unknown }).errors ?? result).slice(0, 2000));

  // Input schemas come from the routes' own zod schemas: the migrate body is exactly what the route takes.
  const migrate = doc.paths['/api/vms/{name}/migrate']!.post;
  t.deepEqual(migrate.requestBody.content['application/json'].schema.required, ['to']);
  t.false(migrate.requestBody.content['application/json'].schema.additionalProperties);
  t.like(
    doc.paths['/api/site']!.post.parameters.find((p: { name: string }) => p.name === 'base'),
    { in: 'query', required: true, schema: { pattern: '^[0-9]{1,15}$' } },
  );

  // Every route of the running app (express's own table) is documented, and nothing documented is missing.
  const app = createApiApp({ rt: s.rt, tokens: new TokenTable([]), log: silentLogger });
  const served = new Set<string>();
  for (const layer of (app as unknown as { router: { stack: { route?: { path: string; methods: object } }[] } }).router
    .stack)
    if (layer.route)
      for (const m of Object.keys(layer.route.methods)) if (m !== '_all') served.add(key(m, layer.route.path));
  const documented = new Set(ROUTES.map((r) => key(r.method, r.path)));
  t.deepEqual([...served].filter((k) => !documented.has(k)).sort(), [], 'served but not in the OpenAPI document');
  t.deepEqual([...documented].filter((k) => !served.has(k)).sort(), [], 'documented but not served');
  await (app.locals.close as () => Promise<void>)();

  const prose = await readFile(new URL('../../docs/api.md', import.meta.url), 'utf8');
  const inProse = new Set([...prose.matchAll(/`(GET|POST|PUT|DELETE) (\/[^`?\s]*)/g)].map((m) => key(m[1]!, m[2]!)));
  t.deepEqual([...documented].filter((k) => !inProse.has(k)).sort(), [], 'routes missing from docs/api.md');
});
