import { randomBytes } from 'node:crypto';
import { createPool, type Pool } from '@airlock/db';
import pg from 'pg';
import { inject } from 'vitest';

export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  readonly pool: Pool;
  /** Runs SQL as the server's superuser role on this database (for tamper tests). */
  superuserQuery(sql: string, params?: unknown[]): Promise<pg.QueryResult>;
  drop(): Promise<void>;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** A fresh, fully migrated database of its own, cloned from the suite's template. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const serverUrl = inject('airlockDatabaseUrl');
  const template = inject('airlockTemplateDatabase');
  if (!serverUrl || !template)
    throw new Error('No PostgreSQL for tests: the vitest global setup did not run');
  const name = `airlock_t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${name} template ${template}`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(serverUrl, name);
  const pool = createPool({ connectionString: url, max: 10 });
  return {
    url,
    name,
    pool,
    async superuserQuery(sql, params = []) {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        return await client.query(sql, params);
      } finally {
        await client.end();
      }
    },
    async drop() {
      await pool.end();
      const c = new pg.Client({ connectionString: serverUrl });
      await c.connect();
      try {
        await c.query(`drop database if exists ${name} with (force)`);
      } finally {
        await c.end();
      }
    },
  };
}

/** A database server URL pointing at a fresh empty database (for migration-runner tests). */
export async function createEmptyDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const serverUrl = inject('airlockDatabaseUrl');
  const name = `airlock_e_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  return {
    url: withDatabase(serverUrl, name),
    async drop() {
      const c = new pg.Client({ connectionString: serverUrl });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}
