import { ROLES } from '@airlock/domain';
import { Type } from 'typebox';
import { Id, NullableString, Timestamp, literalUnion } from '../../http/schemas.js';

export const RoleSchema = literalUnion(ROLES);

/** The response shape of a user: serialization drops anything not listed here. */
export const PublicUserSchema = Type.Object({
  id: Id('user'),
  username: Type.String(),
  displayName: NullableString,
  organization: NullableString,
  roles: Type.Array(RoleSchema),
  totpEnabled: Type.Boolean(),
  disabled: Type.Boolean(),
  webhookConfigured: Type.Boolean(),
  createdAt: Timestamp,
});

export const SshKeySchema = Type.Object({
  id: Id('sshKey'),
  name: Type.String(),
  algorithm: Type.String(),
  fingerprint: Type.String(),
  publicKey: Type.String(),
  createdAt: Timestamp,
});
