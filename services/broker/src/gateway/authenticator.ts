import { createHash } from 'node:crypto';
import { verifyTotp } from '@airlock/crypto';
import { withTransaction } from '@airlock/db';
import ssh2, { type AuthContext, type KeyboardAuthContext, type PublicKeyAuthContext } from 'ssh2';
import { auditAlone } from '../audit.js';
import type { BrokerContext } from '../context.js';
import { findAssetByName, type AssetRecord } from '../features/assets/repository.js';
import { getThrottle, recordLoginFailure } from '../features/auth/repository.js';
import { totpAad } from '../features/auth/service.js';
import { findGrants, type GrantRecord } from '../features/grants/repository.js';
import {
  advanceTotpStep,
  findSshKeyByFingerprint,
  findUserById,
  type UserRecord,
} from '../features/users/repository.js';
import { parseLoginName, type TargetSelection } from './target.js';

/** Who is connected, to what, under which grant: established before any channel opens. */
export type GatewayIdentity =
  | {
      readonly kind: 'asset';
      readonly user: UserRecord;
      readonly asset: AssetRecord;
      readonly grant: GrantRecord;
      readonly keyFingerprint: string;
    }
  | { readonly kind: 'menu'; readonly user: UserRecord; readonly keyFingerprint: string };

export type RefusalReason =
  | 'bad_login_name'
  | 'unknown_key'
  | 'key_of_other_user'
  | 'bad_signature'
  | 'user_disabled'
  | 'locked'
  | 'bad_totp'
  | 'totp_not_after_key'
  | 'unknown_asset'
  | 'no_active_grant'
  | 'method_not_allowed'
  | 'no_signature';

export function sshFingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/**
 * Authentication for one SSH connection: the user's registered public key
 * (signature verified, identity bound to the key that signed), then TOTP over
 * keyboard-interactive where enrolled — partial success, as OpenSSH's
 * `AuthenticationMethods publickey,keyboard-interactive`. Every refusal looks
 * the same from outside (methods left: publickey) and is audited inside.
 */
export class ConnectionAuthenticator {
  #identity: GatewayIdentity | null = null;
  /** Set once a signature verified; keyboard-interactive is only offered after it. */
  #keyVerified: { user: UserRecord; target: TargetSelection; fingerprint: string } | null = null;
  #probeRefusalAudited = false;
  #refused = false;
  /** Keys offered without a signature that were accepted as probes (PK_OK). */
  readonly #probed = new Set<string>();

  constructor(
    private readonly ctx: BrokerContext,
    private readonly client: { ip: string },
  ) {}

  get identity(): GatewayIdentity | null {
    return this.#identity;
  }

  async handle(auth: AuthContext): Promise<void> {
    try {
      switch (auth.method) {
        case 'publickey':
          await this.#publicKey(auth);
          return;
        case 'keyboard-interactive':
          await this.#keyboardInteractive(auth);
          return;
        case 'none':
          auth.reject(['publickey']);
          return;
        default:
          await this.#refuse(auth, auth.username, 'method_not_allowed', { method: auth.method });
      }
    } catch (err) {
      this.ctx.log.error({ err }, 'ssh authentication failed unexpectedly');
      auth.reject(['publickey']);
    }
  }

  async #publicKey(auth: PublicKeyAuthContext): Promise<void> {
    const target = parseLoginName(auth.username);
    const fingerprint = sshFingerprint(auth.key.data);
    if (target === null)
      return this.#refuse(auth, auth.username, 'bad_login_name', { fingerprint });
    const key = await findSshKeyByFingerprint(this.ctx.pool, fingerprint);
    const user = key === null ? null : await findUserById(this.ctx.pool, key.userId);
    // A probe (no signature) only learns whether to sign; it authenticates nothing.
    if (auth.signature === undefined || auth.blob === undefined) {
      if (user !== null && user.username === target.username && user.disabledAt === null) {
        // PK_OK (RFC 4252 §7): "sign with this key"; it authenticates nothing.
        this.#probed.add(fingerprint);
        auth.accept();
        return;
      }
      // Clients offer several keys in turn: audit the first refused probe of a
      // connection (an unknown or foreign key), not every key an agent holds.
      if (!this.#probeRefusalAudited) {
        this.#probeRefusalAudited = true;
        const reason: RefusalReason =
          user === null
            ? 'unknown_key'
            : user.disabledAt !== null
              ? 'user_disabled'
              : 'key_of_other_user';
        return this.#refuse(auth, target.username, reason, { fingerprint });
      }
      auth.reject(['publickey']);
      return;
    }
    if (user === null) return this.#refuse(auth, target.username, 'unknown_key', { fingerprint });
    if (user.username !== target.username)
      return this.#refuse(auth, target.username, 'key_of_other_user', { fingerprint });
    const parsed = ssh2.utils.parseKey(auth.key.data);
    if (parsed instanceof Error || !parsed.verify(auth.blob, auth.signature, auth.hashAlgo)) {
      return this.#refuse(auth, target.username, 'bad_signature', { fingerprint });
    }
    if (user.disabledAt !== null)
      return this.#refuse(auth, target.username, 'user_disabled', { fingerprint });
    if (await this.#locked(user.username))
      return this.#refuse(auth, target.username, 'locked', { fingerprint });

    this.#keyVerified = { user, target, fingerprint };
    if (user.totpSecret !== null) {
      auth.reject(['keyboard-interactive'], true);
      return;
    }
    await this.#complete(auth);
  }

  async #keyboardInteractive(auth: KeyboardAuthContext): Promise<void> {
    const verified = this.#keyVerified;
    if (
      verified === null ||
      verified.user.totpSecret === null ||
      verified.user.username !== parseLoginName(auth.username)?.username
    ) {
      return this.#refuse(auth, auth.username, 'totp_not_after_key', {});
    }
    const answers = await new Promise<string[]>((resolve) =>
      auth.prompt(
        [{ prompt: 'Airlock one-time code: ', echo: false }],
        'Airlock',
        'Enter the code from your authenticator app.',
        resolve,
      ),
    );
    const code = (answers[0] ?? '').trim();
    const user = (await findUserById(this.ctx.pool, verified.user.id)) ?? verified.user;
    const secret =
      user.totpSecret === null ? null : this.ctx.vault.open(user.totpSecret, totpAad(user.id));
    const step =
      secret === null
        ? null
        : verifyTotp(secret.reveal(), code, this.ctx.clock.now().getTime(), {
            lastUsedStep: user.totpLastStep,
          });
    if (step === null || !(await advanceTotpStep(this.ctx.pool, user.id, step))) {
      await withTransaction(this.ctx.pool, (client) =>
        recordLoginFailure(client, user.username, this.ctx.clock.now(), {
          threshold: this.ctx.config.lockoutThreshold,
          lockoutMs: this.ctx.config.lockoutMinutes * 60_000,
        }),
      );
      return this.#refuse(auth, user.username, 'bad_totp', { fingerprint: verified.fingerprint }, [
        'publickey',
      ]);
    }
    await this.#complete(auth);
  }

  /** The last step: the target must exist and an active grant must cover it now. */
  async #complete(auth: AuthContext): Promise<void> {
    const verified = this.#keyVerified;
    if (verified === null) return this.#refuse(auth, auth.username, 'totp_not_after_key', {});
    const { user, target, fingerprint } = verified;
    if (target.kind === 'menu') {
      this.#identity = { kind: 'menu', user, keyFingerprint: fingerprint };
      auth.accept();
      return;
    }
    const asset = await findAssetByName(this.ctx.pool, target.assetName);
    if (asset === null)
      return this.#refuse(auth, user.username, 'unknown_asset', {
        asset: target.assetName,
        fingerprint,
      });
    const [grant] = await findGrants(this.ctx.pool, {
      userId: user.id,
      assetId: asset.id,
      activeAt: this.ctx.clock.now(),
    });
    if (grant === undefined)
      return this.#refuse(auth, user.username, 'no_active_grant', {
        asset: asset.name,
        fingerprint,
      });
    this.#identity = { kind: 'asset', user, asset, grant, keyFingerprint: fingerprint };
    auth.accept();
  }

  /**
   * The connection closed without authenticating: if a registered key was only
   * ever offered unsigned (and nothing else was refused and audited), that
   * attempt is recorded too.
   */
  async connectionClosed(login: string | null): Promise<void> {
    if (this.#identity !== null || this.#refused || this.#probed.size === 0) return;
    await auditAlone(this.ctx, {
      type: 'session.refused',
      actor: { kind: 'anonymous', ip: this.client.ip },
      outcome: 'failure',
      data: {
        login: (login ?? '').slice(0, 200),
        reason: 'no_signature',
        fingerprints: [...this.#probed],
      },
    }).catch((err: unknown) => this.ctx.log.error({ err }, 'could not audit an ssh refusal'));
  }

  async #locked(username: string): Promise<boolean> {
    const throttle = await getThrottle(this.ctx.pool, username);
    return throttle?.lockedUntil != null && throttle.lockedUntil > this.ctx.clock.now();
  }

  async #refuse(
    auth: AuthContext,
    login: string,
    reason: RefusalReason,
    data: Record<string, string>,
    methodsLeft: ('publickey' | 'keyboard-interactive')[] = ['publickey'],
  ): Promise<void> {
    this.#keyVerified = null;
    this.#refused = true;
    // Audited before the client hears the refusal, so the record never lags the event.
    await auditAlone(this.ctx, {
      type: 'session.refused',
      actor: { kind: 'anonymous', ip: this.client.ip },
      outcome: 'failure',
      data: { login: login.slice(0, 200), reason, ...data },
    }).catch((err: unknown) => this.ctx.log.error({ err }, 'could not audit an ssh refusal'));
    auth.reject(methodsLeft);
  }
}
