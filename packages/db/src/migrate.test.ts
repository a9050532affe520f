import { mkdtemp, writeFile, cp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEmptyDatabase, MIGRATIONS_DIR } from '@airlock/test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { createPool, migrate } from './index.js';

describe('migration runner', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });

  async function freshPool() {
    const db = await createEmptyDatabase();
    const pool = createPool({ connectionString: db.url });
    cleanups.push(async () => {
      await pool.end();
      await db.drop();
    });
    return pool;
  }

  it('applies every migration once, even when replicas start together', async () => {
    const pool = await freshPool();
    const [a, b] = await Promise.all([
      migrate(pool, MIGRATIONS_DIR),
      migrate(pool, MIGRATIONS_DIR),
    ]);
    expect([...a.applied, ...b.applied].sort((x, y) => x - y)).toEqual(a.applied.length ? a.applied : b.applied);
    const again = await migrate(pool, MIGRATIONS_DIR);
    expect(again.applied).toEqual([]);
    const { rows } = await pool.query('select count(*)::int as n from schema_migrations');
    expect(rows[0].n).toBe(again.version);
  });

  it('refuses a database newer than the code', async () => {
    const pool = await freshPool();
    const { version } = await migrate(pool, MIGRATIONS_DIR);
    await pool.query(
      "insert into schema_migrations (version, name, checksum) values ($1, 'from_the_future', 'x')",
      [version + 1],
    );
    await expect(migrate(pool, MIGRATIONS_DIR)).rejects.toThrow(/newer than this code/);
  });

  it('refuses a migration edited after it was applied', async () => {
    const pool = await freshPool();
    const dir = await mkdtemp(join(tmpdir(), 'airlock-mig-'));
    await cp(MIGRATIONS_DIR, dir, { recursive: true });
    await migrate(pool, dir);
    await writeFile(join(dir, '0001_create_identity.sql'), '-- edited\n', { flag: 'a' });
    await expect(migrate(pool, dir)).rejects.toThrow(/changed after it was applied/);
  });
});
