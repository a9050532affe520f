import ssh2 from 'ssh2';
import { parseSshPublicKey } from '@airlock/crypto';
import type { Secret } from '@airlock/domain';
import type { BrokerContext } from '../context.js';

export interface GatewayHostKey {
  readonly privateKey: Secret<string>;
  readonly publicKey: string;
  readonly fingerprint: string;
}

const ALGORITHM = 'ssh-ed25519';
const aad = (algorithm: string): string => `gateway:host-key:${algorithm}`;

/**
 * The gateway's host key: generated once, sealed by the vault, and shared by
 * every replica through the database, so vendors' known_hosts stay valid
 * whichever replica answers.
 */
export async function loadGatewayHostKey(ctx: BrokerContext): Promise<GatewayHostKey> {
  const read = async (): Promise<GatewayHostKey | null> => {
    const { rows } = await ctx.pool.query<{ private_key: Buffer; public_key: string }>(
      'select private_key, public_key from gateway_host_keys where algorithm = $1',
      [ALGORITHM],
    );
    const row = rows[0];
    if (row === undefined) return null;
    return {
      privateKey: ctx.vault.openString(row.private_key, aad(ALGORITHM)),
      publicKey: row.public_key,
      fingerprint: parseSshPublicKey(row.public_key).fingerprint,
    };
  };
  const existing = await read();
  if (existing !== null) return existing;
  const generated = ssh2.utils.generateKeyPairSync('ed25519', { comment: 'airlock-gateway' });
  const publicKey = parseSshPublicKey(generated.public).normalized;
  // Replicas starting together race here; the first insert wins and all read it back.
  await ctx.pool.query(
    `insert into gateway_host_keys (algorithm, private_key, public_key, created_at) values ($1, $2, $3, $4)
     on conflict (algorithm) do nothing`,
    [ALGORITHM, ctx.vault.seal(generated.private, aad(ALGORITHM)), publicKey, ctx.clock.now()],
  );
  const stored = await read();
  if (stored === null) throw new Error('gateway host key could not be stored');
  return stored;
}
