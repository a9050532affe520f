import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateMasterKey, parseMasterKey } from '@airlock/crypto';
import { withTransaction } from '@airlock/db';
import type { Secret } from '@airlock/domain';
import type { AirlockConfig } from '@airlock/config';
import type { BrokerContext } from './context.js';
import { countUsers } from './features/users/repository.js';
import { createUserIn } from './features/users/service.js';

/**
 * The master key from the environment, or (for the embedded single-node
 * default) one generated once into the data dir with 0600 permissions.
 */
export async function loadOrCreateMasterKey(
  config: AirlockConfig,
  warn: (msg: string) => void,
): Promise<Secret<Buffer>> {
  if (config.masterKey !== null) return parseMasterKey(config.masterKey.reveal());
  const file = join(config.dataDir, 'master.key');
  try {
    return parseMasterKey((await readFile(file, 'utf8')).trim());
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (config.databaseUrl !== null) {
    warn(
      `AIRLOCK_MASTER_KEY is unset: generating ${file}. Replicas sharing this database must share this key.`,
    );
  }
  await mkdir(config.dataDir, { recursive: true });
  await writeFile(file, `${generateMasterKey()}\n`, { mode: 0o600, flag: 'wx' });
  await chmod(file, 0o600);
  return parseMasterKey((await readFile(file, 'utf8')).trim());
}

/**
 * First start: create the `admin` user. Its password comes from
 * AIRLOCK_ADMIN_PASSWORD or is generated and printed once, to the console
 * only (never to the log stream, never to the audit trail).
 */
export async function ensureAdminUser(
  ctx: BrokerContext,
  print: (line: string) => void,
): Promise<boolean> {
  if ((await countUsers(ctx.pool)) > 0) return false;
  const generated = ctx.config.adminPassword === null;
  const password = ctx.config.adminPassword?.reveal() ?? randomBytes(18).toString('base64url');
  await withTransaction(ctx.pool, async (client) => {
    // Serialises concurrent first starts of several replicas.
    await client.query('lock table users in exclusive mode');
    if ((await countUsers(client)) > 0) return;
    await createUserIn(
      client,
      ctx,
      { kind: 'system' },
      { username: 'admin', password, roles: ['admin'], displayName: 'Administrator' },
    );
    if (generated) {
      print(`airlock: created user "admin" with password: ${password}`);
      print('airlock: this password is shown once; sign in and enrol TOTP now.');
    }
  });
  return true;
}
