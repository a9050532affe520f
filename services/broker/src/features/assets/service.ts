import { isIP } from 'node:net';
import type { AuditActor } from '@airlock/audit';
import { parseSshPublicKey } from '@airlock/crypto';
import { withTransaction, type PoolClient } from '@airlock/db';
import { AppError, newId, type AssetProtocol } from '@airlock/domain';
import { audit } from '../../audit.js';
import type { BrokerContext } from '../../context.js';
import { actorOf, type Principal } from '../../principal.js';
import { getZone } from '../zones/repository.js';
import { getAsset, insertAsset, updateAssetRow, type AssetRecord } from './repository.js';

export interface AssetInput {
  readonly name: string;
  readonly zoneId: string;
  readonly host: string;
  readonly port: number;
  readonly protocol: AssetProtocol;
  readonly login?: string | undefined;
  /** Write-only: sealed at once, never returned. */
  readonly credential?: string | undefined;
  readonly credentialKind?: 'password' | 'private_key' | undefined;
  readonly hostKey?: string | undefined;
  readonly forwardPorts?: readonly number[] | undefined;
  readonly description?: string | undefined;
}

export function credentialAad(assetId: string): string {
  return `asset:${assetId}:credential`;
}

const HOSTNAME =
  /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

function checkHost(host: string): void {
  if (isIP(host) === 0 && !HOSTNAME.test(host))
    throw new AppError('asset.invalid', { detail: 'host must be a hostname or an IP address' });
}

/** A pinned host key, normalised; no trust-on-first-use for SSH assets. */
function checkHostKey(protocol: AssetProtocol, hostKey: string | null): string | null {
  if (hostKey === null) {
    if (protocol === 'ssh')
      throw new AppError('asset.invalid', {
        detail: 'an ssh asset needs its pinned hostKey (no trust on first use)',
      });
    return null;
  }
  try {
    return parseSshPublicKey(hostKey).normalized;
  } catch (err) {
    throw new AppError('asset.invalid', { detail: `hostKey: ${(err as Error).message}` });
  }
}

function guessCredentialKind(credential: string): 'password' | 'private_key' {
  return /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(credential) ? 'private_key' : 'password';
}

export async function createAssetIn(
  client: PoolClient,
  ctx: BrokerContext,
  actor: AuditActor,
  input: AssetInput,
): Promise<AssetRecord> {
  checkHost(input.host);
  await getZone(client, input.zoneId);
  const id = newId('asset');
  const hostKey = checkHostKey(input.protocol, input.hostKey ?? null);
  const credential = input.credential ?? null;
  await insertAsset(
    client,
    {
      id,
      name: input.name,
      zoneId: input.zoneId,
      host: input.host,
      port: input.port,
      protocol: input.protocol,
      login: input.login ?? null,
      sealedCredential: credential === null ? null : ctx.vault.seal(credential, credentialAad(id)),
      credentialKind:
        credential === null ? null : (input.credentialKind ?? guessCredentialKind(credential)),
      hostKey,
      forwardPorts: [...new Set(input.forwardPorts ?? [])].sort((a, b) => a - b),
      description: input.description ?? null,
    },
    ctx.clock.now(),
  );
  await audit(client, ctx, {
    type: 'asset.created',
    actor,
    subjectId: id,
    data: {
      name: input.name,
      zoneId: input.zoneId,
      host: input.host,
      port: input.port,
      protocol: input.protocol,
      hasCredential: credential !== null,
    },
  });
  return getAsset(client, id);
}

export async function createAsset(
  ctx: BrokerContext,
  principal: Principal,
  input: AssetInput,
): Promise<AssetRecord> {
  return withTransaction(ctx.pool, (client) =>
    createAssetIn(client, ctx, actorOf(principal), input),
  );
}

export interface AssetChanges {
  readonly host?: string | undefined;
  readonly port?: number | undefined;
  readonly protocol?: AssetProtocol | undefined;
  readonly login?: string | null | undefined;
  readonly credential?: string | null | undefined;
  readonly credentialKind?: 'password' | 'private_key' | undefined;
  readonly hostKey?: string | null | undefined;
  readonly forwardPorts?: readonly number[] | undefined;
  readonly description?: string | null | undefined;
}

export async function updateAsset(
  ctx: BrokerContext,
  principal: Principal,
  assetId: string,
  changes: AssetChanges,
): Promise<AssetRecord> {
  return withTransaction(ctx.pool, async (client) => {
    const before = await getAsset(client, assetId, { forUpdate: true });
    if (changes.host !== undefined) checkHost(changes.host);
    const protocol = changes.protocol ?? before.protocol;
    const hostKey = checkHostKey(
      protocol,
      changes.hostKey === undefined ? before.hostKey : changes.hostKey,
    );
    let sealedCredential = before.sealedCredential;
    let credentialKind = before.credentialKind;
    if (changes.credential !== undefined) {
      sealedCredential =
        changes.credential === null
          ? null
          : ctx.vault.seal(changes.credential, credentialAad(assetId));
      credentialKind =
        changes.credential === null
          ? null
          : (changes.credentialKind ?? guessCredentialKind(changes.credential));
    }
    await updateAssetRow(
      client,
      {
        id: assetId,
        host: changes.host ?? before.host,
        port: changes.port ?? before.port,
        protocol,
        login: changes.login === undefined ? before.login : changes.login,
        sealedCredential,
        credentialKind,
        hostKey,
        forwardPorts:
          changes.forwardPorts === undefined
            ? before.forwardPorts
            : [...new Set(changes.forwardPorts)].sort((a, b) => a - b),
        description: changes.description === undefined ? before.description : changes.description,
      },
      ctx.clock.now(),
    );
    await audit(client, ctx, {
      type: 'asset.updated',
      actor: actorOf(principal),
      subjectId: assetId,
      // Names of changed fields only: the credential's value never enters the trail.
      data: {
        changed: Object.keys(changes).filter((k) => changes[k as keyof AssetChanges] !== undefined),
      },
    });
    return getAsset(client, assetId);
  });
}
