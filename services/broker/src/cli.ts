#!/usr/bin/env node
/**
 * `airlock` — what an operator does from a shell: apply migrations, create a
 * user or reset a password, verify the audit trail, export it as JSON lines,
 * sign a checkpoint. Uses DATABASE_URL, or the embedded PostgreSQL of the
 * data dir (the running broker's, or one started for the command).
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { createAuditCheckpoint, streamAuditEvents, verifyAuditTrail } from '@airlock/audit';
import { ConfigError, loadConfig, type AirlockConfig } from '@airlock/config';
import {
  createPool,
  migrate,
  runningEmbeddedPostgresUrl,
  startEmbeddedPostgres,
  withTransaction,
  type Pool,
} from '@airlock/db';
import { ROLES, systemClock, type Role } from '@airlock/domain';
import { auditAlone } from './audit.js';
import { loadOrCreateMasterKey } from './bootstrap.js';
import type { BrokerContext } from './context.js';
import { createBrokerContext } from './context-factory.js';
import { findUserByUsername } from './features/users/repository.js';
import { createUserIn, resetPasswordIn } from './features/users/service.js';
import { auditEventView } from './features/audit/routes.js';
import { createLogger } from './logger.js';
import { verifySessionExport, type SessionExport } from './features/sessions/export-verify.js';
import { MIGRATIONS_DIR } from './server.js';

const USAGE = `usage: airlock <command>

  migrate                                  apply database migrations
  user create <username> --role R [--role R …] [--organization O] [--display-name N]
                                           create a user (password from stdin, or generated and printed)
  user reset-password <username>           set a new password (from stdin, or generated and printed);
                                           ends the user's sign-in sessions and lifts a lockout
  audit verify                             recompute the hash chain and checkpoints; exit 1 if broken
  audit export [--from-seq N]              write audit events as JSON lines to stdout
  audit checkpoint                         sign a checkpoint of the chain head now
  verify-export <file> [--public-key PEM]  check a session export offline (no database); exit 1 if not intact
`;

class UsageError extends Error {}

const out = (line: string): void => void process.stdout.write(`${line}\n`);
const err = (line: string): void => void process.stderr.write(`${line}\n`);

async function withDatabase<T>(config: AirlockConfig, fn: (pool: Pool) => Promise<T>): Promise<T> {
  let url = config.databaseUrl?.reveal() ?? runningEmbeddedPostgresUrl(config.dataDir);
  const embedded = url === null ? await startEmbeddedPostgres({ dataDir: config.dataDir }) : null;
  url ??= embedded?.connectionString ?? '';
  const pool = createPool({ connectionString: url, applicationName: 'airlock-cli', max: 2 });
  try {
    return await fn(pool);
  } finally {
    await pool.end();
    await embedded?.stop();
  }
}

async function withContext<T>(
  config: AirlockConfig,
  fn: (ctx: BrokerContext) => Promise<T>,
): Promise<T> {
  return withDatabase(config, async (pool) => {
    const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
    await migrate(pool, MIGRATIONS_DIR, (m) => err(m));
    const masterKey = await loadOrCreateMasterKey(config, (m) => err(`warning: ${m}`));
    return fn(
      createBrokerContext({
        config,
        pool,
        clock: systemClock,
        log,
        masterKey,
        defaultMetrics: false,
      }),
    );
  });
}

async function readPassword(): Promise<{ password: string; generated: boolean }> {
  if (process.stdin.isTTY !== true) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks)
      .toString('utf8')
      .replace(/\r?\n$/, '');
    if (text !== '') return { password: text, generated: false };
  }
  return { password: randomBytes(18).toString('base64url'), generated: true };
}

/** Needs nothing but the file (and optionally the broker's audit key): for outside auditors. */
async function verifyExportFile(file: string | undefined, publicKeyFile: string | undefined) {
  if (file === undefined) throw new UsageError('verify-export needs a file');
  const bundle = JSON.parse(await readFile(file, 'utf8')) as SessionExport;
  const publicKey = publicKeyFile === undefined ? undefined : await readFile(publicKeyFile, 'utf8');
  const result = verifySessionExport(bundle, publicKey === undefined ? {} : { publicKey });
  for (const check of result.checks)
    out(`${check.ok ? 'ok  ' : 'FAIL'} ${check.name}: ${check.detail}`);
  out(result.ok ? `export of ${bundle.statement.sessionId} is intact` : 'export is NOT intact');
  return result.ok ? 0 : 1;
}

const cliActor = () => ({ kind: 'system' as const });

async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      role: { type: 'string', multiple: true },
      organization: { type: 'string' },
      'display-name': { type: 'string' },
      'from-seq': { type: 'string' },
      'public-key': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, sub, arg] = positionals;
  if (values.help === true || command === undefined || command === 'help') {
    out(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === 'verify-export') return verifyExportFile(sub, values['public-key']);
  const config = loadConfig();
  const osUser = userInfo().username;

  switch (`${command} ${sub ?? ''}`.trim()) {
    case 'migrate': {
      const result = await withDatabase(config, (pool) => migrate(pool, MIGRATIONS_DIR, out));
      out(`schema at version ${result.version} (${result.applied.length} applied now)`);
      return 0;
    }
    case 'user create': {
      if (arg === undefined) throw new UsageError('user create needs a username');
      const roles = values.role ?? [];
      const unknown = roles.filter((r) => !(ROLES as readonly string[]).includes(r));
      if (roles.length === 0 || unknown.length > 0)
        throw new UsageError(`--role must be one of ${ROLES.join(', ')}`);
      const { password, generated } = await readPassword();
      await withContext(config, async (ctx) => {
        const user = await withTransaction(ctx.pool, (client) =>
          createUserIn(client, ctx, cliActor(), {
            username: arg,
            password,
            roles: roles as Role[],
            organization: values.organization,
            displayName: values['display-name'],
          }),
        );
        out(`created ${user.username} (${user.id}) with roles ${user.roles.join(', ')}`);
        if (generated) out(`password: ${password}`);
      });
      return 0;
    }
    case 'user reset-password': {
      if (arg === undefined) throw new UsageError('user reset-password needs a username');
      const { password, generated } = await readPassword();
      await withContext(config, async (ctx) => {
        const user = await findUserByUsername(ctx.pool, arg.toLowerCase());
        if (user === null) throw new UsageError(`no user ${arg}`);
        await withTransaction(ctx.pool, (client) =>
          resetPasswordIn(client, ctx, cliActor(), user.id, password),
        );
        out(`password of ${user.username} reset; their sign-in sessions have ended`);
        if (generated) out(`password: ${password}`);
      });
      return 0;
    }
    case 'audit verify': {
      return withContext(config, async (ctx) => {
        const result = await verifyAuditTrail(ctx.pool, {
          checkpointPublicKey: ctx.auditKeys.publicKey,
        });
        await auditAlone(ctx, {
          type: 'audit.verified',
          actor: cliActor(),
          outcome: result.ok ? 'success' : 'failure',
          data: {
            ok: result.ok,
            events: result.events,
            via: 'cli',
            osUser,
            firstBadSeq: result.firstBad?.seq ?? null,
          },
        });
        out(JSON.stringify(result, null, 2));
        if (!result.ok && result.firstBad !== undefined) {
          err(
            `audit trail BROKEN at event seq ${result.firstBad.seq} (${result.firstBad.id ?? 'missing'}): ${result.firstBad.message}`,
          );
        }
        return result.ok ? 0 : 1;
      });
    }
    case 'audit export': {
      const fromSeq = values['from-seq'] === undefined ? 1 : Number(values['from-seq']);
      if (!Number.isInteger(fromSeq) || fromSeq < 1)
        throw new UsageError('--from-seq must be a positive integer');
      return withContext(config, async (ctx) => {
        await auditAlone(ctx, {
          type: 'audit.exported',
          actor: cliActor(),
          data: { fromSeq, via: 'cli', osUser },
        });
        for await (const event of streamAuditEvents(ctx.pool, { fromSeq })) {
          if (!process.stdout.write(`${JSON.stringify(auditEventView(event))}\n`)) {
            await new Promise((resolve) => process.stdout.once('drain', resolve));
          }
        }
        return 0;
      });
    }
    case 'audit checkpoint': {
      return withContext(config, async (ctx) => {
        const checkpoint = await createAuditCheckpoint(ctx.pool, {
          privateKey: ctx.auditKeys.privateKey,
          clock: ctx.clock,
        });
        out(
          checkpoint === null
            ? 'nothing new to checkpoint'
            : `checkpoint signed at seq ${checkpoint.seq}`,
        );
        return 0;
      });
    }
    default:
      throw new UsageError(`unknown command: ${positionals.join(' ')}`);
  }
}

run(process.argv.slice(2))
  .then((code) => process.exit(code))
  .catch((e: unknown) => {
    if (
      e instanceof UsageError ||
      (e as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION'
    ) {
      err(`airlock: ${(e as Error).message}\n\n${USAGE}`);
      process.exit(2);
    }
    if (e instanceof ConfigError) {
      err(e.message);
      process.exit(2);
    }
    err(`airlock: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  });
