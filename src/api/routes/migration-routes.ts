// The migration history: every live or cold move and failover restart, with why, predicted gain, outcome
// and duration.

import type express from 'express';
import { listMigrations } from '../../services/migration-history.ts';
import { input, migrationsQuery } from '../schemas.ts';
import type { RouteKit } from '../http.ts';

export function mountMigrationRoutes(app: express.Express, kit: RouteKit): void {
  const { rt, viewer } = kit;
  app.get('/api/migrations', viewer, async (req, res) => {
    const q = input(migrationsQuery, req.query, 'query');
    const list = await listMigrations(rt, {
      ...(q.limit !== undefined ? { limit: q.limit } : {}),
      ...(q.vm ? { vm: q.vm } : {}),
    });
    const iso = (ms: number) => new Date(ms).toISOString();
    res.json({
      migrations: list.map((m) => ({
        ...m,
        at: iso(m.at),
        ...(m.startedAt !== undefined ? { startedAt: iso(m.startedAt) } : {}),
      })),
    });
  });
}
