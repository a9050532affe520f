import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { base32Encode, generateTotpSecret, totpUri } from '@airlock/crypto';
import { withTransaction } from '@airlock/db';
import { newId } from '@airlock/domain';
import { audit } from './audit.js';
import type { BrokerContext } from './context.js';
import { createAssetIn } from './features/assets/service.js';
import { totpAad } from './features/auth/service.js';
import { hashEnrollmentToken } from './features/connectors/routes.js';

/** The file under a connector's data dir that `airlock-connector` enrols with when it has no identity yet. */
export const ENROLLMENT_TOKEN_FILE = 'enrollment-token';
import { updateUser } from './features/users/repository.js';
import { createUserIn } from './features/users/service.js';
import { createZoneIn, setZoneApproversIn } from './features/zones/service.js';

/** An OpenSSH public key line for a made-up asset host key (RFC 8709 encoding). */
function demoHostKey(): string {
  const { publicKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const str = (b: Buffer): Buffer => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(b.length);
    return Buffer.concat([length, b]);
  };
  const blob = Buffer.concat([str(Buffer.from('ssh-ed25519')), str(raw)]);
  return `ssh-ed25519 ${blob.toString('base64')}`;
}

/**
 * Seeds a plausible plant so a newcomer can click through at once: two zones,
 * approvers, an auditor, a vendor organisation with two users, a few assets,
 * and a connector waiting for enrolment. Does nothing if zones exist.
 */
export async function seedDemo(
  ctx: BrokerContext,
  print: (line: string) => void,
  options: {
    /**
     * Where `pnpm connector` keeps its state (its default: <data dir>/connector):
     * the demo connector's enrolment token is left there, so that `pnpm
     * connector` enrols it with no copy and paste. Unset: printed only.
     */
    connectorDataDir?: string;
  } = {},
): Promise<void> {
  const { rows } = await ctx.pool.query<{ n: number }>('select count(*)::int as n from zones');
  if ((rows[0]?.n ?? 0) > 0) {
    print('airlock demo: zones already exist; not seeding again.');
    return;
  }
  const password = 'airlock-demo-pass';
  const system = { kind: 'system' } as const;
  const lines: string[] = [];
  await withTransaction(ctx.pool, async (client) => {
    const user = async (
      username: string,
      roles: ('approver' | 'auditor' | 'vendor')[],
      displayName: string,
      organization?: string,
    ) => {
      const created = await createUserIn(client, ctx, system, {
        username,
        password,
        roles,
        displayName,
        organization,
      });
      if (roles.some((r) => ctx.config.totpRequiredRoles.includes(r))) {
        const secret = generateTotpSecret();
        await updateUser(
          client,
          created.id,
          {
            totpSecret: ctx.vault.seal(secret, totpAad(created.id)),
            totpEnabledAt: ctx.clock.now(),
          },
          ctx.clock.now(),
        );
        lines.push(
          `  ${username.padEnd(12)} TOTP secret ${base32Encode(secret)}  (${totpUri({ secret, account: username, issuer: 'Airlock demo' })})`,
        );
      } else {
        lines.push(`  ${username.padEnd(12)} (no TOTP required for ${roles.join(', ')})`);
      }
      return created.id;
    };
    const alice = await user('alice', ['approver'], 'Alice Martin (Packaging shift lead)');
    const bruno = await user('bruno', ['approver'], 'Bruno Keller (Water works OT engineer)');
    const chen = await user('chen', ['approver'], 'Chen Li (Water works process manager)');
    await user('dana', ['auditor'], 'Dana Novak (Security auditor)');
    await user('vera', ['vendor'], 'Vera Schmidt', 'Nordwerk Automation');
    await user('viktor', ['vendor'], 'Viktor Berg', 'Nordwerk Automation');

    const packaging = await createZoneIn(client, ctx, system, {
      name: 'Plant A / Packaging line',
      description: 'Filling and capping machines, line HMI.',
      policy: {
        requiredApprovals: 1,
        maxWindowMinutes: 240,
        allowedCapabilities: ['shell', 'exec', 'sftp', 'forward'],
      },
    });
    const filtration = await createZoneIn(client, ctx, system, {
      name: 'Water works / Filtration',
      description: 'Sand filters and backwash control. Two approvals; sessions supervised.',
      policy: {
        requiredApprovals: 2,
        maxWindowMinutes: 120,
        allowedCapabilities: ['shell', 'exec', 'forward'],
        supervised: true,
        commandRules: [
          {
            pattern: '^\\s*(sudo\\s+)?(reboot|shutdown|halt|poweroff)\\b',
            action: 'block',
            description: 'No restarts of process hosts',
          },
          { pattern: '\\brm\\s+-rf\\b', action: 'alert', description: 'Recursive delete' },
        ],
      },
    });
    await setZoneApproversIn(client, ctx, system, packaging.id, [alice]);
    await setZoneApproversIn(client, ctx, system, filtration.id, [bruno, chen]);

    const asset = (
      name: string,
      zoneId: string,
      host: string,
      port: number,
      protocol: 'ssh' | 'modbus',
      description: string,
    ) =>
      createAssetIn(client, ctx, system, {
        name,
        zoneId,
        host,
        port,
        protocol,
        description,
        ...(protocol === 'ssh'
          ? {
              login: 'maint',
              credential: randomBytes(12).toString('base64url'),
              hostKey: demoHostKey(),
            }
          : {}),
        ...(protocol === 'modbus' ? { forwardPorts: [502] } : {}),
      });
    await asset(
      'hmi-pack-01',
      packaging.id,
      '10.10.1.20',
      22,
      'ssh',
      'Line 1 operator HMI (Debian 11)',
    );
    await asset('plc-pack-01', packaging.id, '10.10.1.10', 502, 'modbus', 'Filler PLC, Modbus/TCP');
    await asset('ews-filter-01', filtration.id, '10.20.1.5', 22, 'ssh', 'Engineering workstation');
    await asset(
      'plc-filter-01',
      filtration.id,
      '10.20.1.11',
      502,
      'modbus',
      'Backwash controller PLC',
    );

    const enrollmentToken = `alenr_${randomBytes(32).toString('base64url')}`;
    const connectorId = newId('connector');
    const now = ctx.clock.now();
    await client.query(
      `insert into connectors (id, zone_id, name, enrollment_token_hash, enrollment_expires_at, created_at)
       values ($1, $2, 'filtration-gw-1', $3, $4, $5)`,
      [
        connectorId,
        filtration.id,
        hashEnrollmentToken(enrollmentToken),
        new Date(now.getTime() + 24 * 3600_000),
        now,
      ],
    );
    await audit(client, ctx, {
      type: 'connector.created',
      actor: system,
      subjectId: connectorId,
      data: { name: 'filtration-gw-1', zoneId: filtration.id },
    });
    lines.push(`  connector filtration-gw-1 enrollment token (24 h): ${enrollmentToken}`);
    if (options.connectorDataDir !== undefined) {
      mkdirSync(options.connectorDataDir, { recursive: true, mode: 0o700 });
      const path = join(options.connectorDataDir, ENROLLMENT_TOKEN_FILE);
      writeFileSync(path, `${enrollmentToken}\n`, { mode: 0o600 });
      lines.push(`  (also written to ${path}: run "pnpm connector" to enrol and start it)`);
    }
  });
  print(`airlock demo: seeded a plant. Every demo user's password is "${password}".`);
  for (const line of lines) print(line);
}
