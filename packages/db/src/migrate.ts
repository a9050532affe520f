import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';

/** How long one migration file may run in all (each of its statements is bounded by the pool). */
const MIGRATION_FILE_TIMEOUT_MS = 30 * 60_000;

/** A lock key only the migration runner takes (pg_advisory_lock is per database). */
const MIGRATION_LOCK_KEY = 0x41_69_72_4c; // "AirL"
const FILE_PATTERN = /^(\d{4})_([a-z0-9_]+)\.sql$/;

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
  readonly checksum: string;
}

export class MigrationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MigrationError';
  }
}

export async function loadMigrations(dir: string): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  const migrations: Migration[] = [];
  for (const file of files) {
    const match = FILE_PATTERN.exec(file);
    if (match === null)
      throw new MigrationError(`migration file ${file} is not named NNNN_verb_object.sql`);
    const sql = await readFile(join(dir, file), 'utf8');
    const version = Number(match[1]);
    if (migrations.some((m) => m.version === version))
      throw new MigrationError(`two migrations share version ${version}`);
    migrations.push({
      version,
      name: match[2] ?? '',
      sql,
      checksum: createHash('sha256').update(sql).digest('hex'),
    });
  }
  migrations.forEach((m, i) => {
    if (m.version !== i + 1)
      throw new MigrationError(
        `migrations must be numbered 1..n without gaps; found ${m.version} at position ${i + 1}`,
      );
  });
  return migrations;
}

export interface MigrateResult {
  readonly applied: readonly number[];
  readonly version: number;
}

/**
 * Applies forward-only migrations under an advisory lock, so that several
 * replicas starting together apply each migration once. Refuses to touch a
 * database that is newer than this code, or whose applied migrations were
 * edited after the fact.
 */
export async function migrate(
  pool: pg.Pool,
  dir: string,
  log: (message: string) => void = () => undefined,
): Promise<MigrateResult> {
  const migrations = await loadMigrations(dir);
  const client = await pool.connect();
  try {
    await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      await client.query(`
        create table if not exists schema_migrations (
          version integer constraint schema_migrations_pk primary key,
          name text not null,
          checksum text not null,
          applied_at timestamptz not null default now()
        )`);
      const { rows } = await client.query<{ version: number; name: string; checksum: string }>(
        'select version, name, checksum from schema_migrations order by version',
      );
      const known = migrations.length;
      const newest = rows.at(-1)?.version ?? 0;
      if (newest > known) {
        throw new MigrationError(
          `the database is at schema version ${newest}, newer than this code (${known}); refusing to run an older Airlock against it`,
        );
      }
      for (const row of rows) {
        const m = migrations[row.version - 1];
        if (m?.checksum !== row.checksum) {
          throw new MigrationError(
            `migration ${row.version} (${row.name}) was changed after it was applied`,
          );
        }
      }
      const applied: number[] = [];
      for (const m of migrations.slice(newest)) {
        await client.query('begin');
        try {
          // One file, many statements: the server bounds each (statement_timeout);
          // the pool's client-side timeout is meant for one, not for the file.
          // (node-postgres reads query_timeout per query; its types do not list it.)
          const whole: pg.QueryConfig & { query_timeout: number } = {
            text: m.sql,
            query_timeout: MIGRATION_FILE_TIMEOUT_MS,
          };
          await client.query(whole);
          await client.query(
            'insert into schema_migrations (version, name, checksum) values ($1, $2, $3)',
            [m.version, m.name, m.checksum],
          );
          await client.query('commit');
        } catch (err) {
          await client.query('rollback');
          throw new MigrationError(
            `migration ${m.version} (${m.name}) failed: ${(err as Error).message}`,
          );
        }
        applied.push(m.version);
        log(`applied migration ${String(m.version).padStart(4, '0')}_${m.name}`);
      }
      return { applied, version: known };
    } finally {
      await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
    }
  } finally {
    client.release();
  }
}
