import pg from 'pg';

// int8 (bigint) columns hold sequence numbers and byte counts that stay far
// below 2^53; parse them as numbers rather than strings.
pg.types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;
/** Anything that can run a query: the pool, or a client inside a transaction. */
export type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>;

export interface PoolOptions {
  readonly connectionString: string;
  readonly max?: number;
  readonly applicationName?: string;
  /** Fail fast rather than hang when the database is unreachable. */
  readonly connectionTimeoutMillis?: number;
  readonly statementTimeoutMillis?: number;
}

export function createPool(options: PoolOptions): pg.Pool {
  const statementTimeout = options.statementTimeoutMillis ?? 15_000;
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'airlock',
    connectionTimeoutMillis: options.connectionTimeoutMillis ?? 5_000,
    statement_timeout: statementTimeout,
    // The server cancels a slow statement itself; these catch a database that
    // went silent (a dropped link, a frozen host), where no answer would ever
    // come: the query fails, so a session whose audit or recording cannot be
    // stored ends (fail closed) instead of carrying on unrecorded.
    query_timeout:
      statementTimeout > 0 ? statementTimeout + Math.min(statementTimeout, 5_000) : undefined,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  });
  // An idle client losing its connection must not crash the process; the
  // next query reports the failure to its caller.
  pool.on('error', () => undefined);
  return pool;
}

export type IsolationLevel = 'read committed' | 'repeatable read' | 'serializable';

/**
 * The one transaction helper: BEGIN, run, COMMIT; ROLLBACK on any error so
 * that nothing is ever half-written.
 */
export async function withTransaction<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<T>,
  options: { isolation?: IsolationLevel } = {},
): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query(`begin isolation level ${options.isolation ?? 'read committed'}`);
    const result = await fn(client);
    await client.query('commit');
    return result;
  } catch (err) {
    if (isQueryTimeout(err)) {
      // The connection is still busy with the query that timed out: a ROLLBACK
      // would wait behind it. Discarded, the connection closes and the server
      // rolls the transaction back itself.
      broken = err;
    } else {
      await client.query('rollback').catch((rollbackFailed: Error) => {
        broken = rollbackFailed;
      });
    }
    throw err;
  } finally {
    client.release(broken);
  }
}

/** node-postgres gave up waiting for an answer (query_timeout); the query may still run. */
function isQueryTimeout(err: unknown): err is Error {
  return err instanceof Error && err.message === 'Query read timeout';
}
