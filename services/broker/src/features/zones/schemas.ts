import { CAPABILITIES, COMMAND_RULE_ACTIONS } from '@airlock/domain';
import { Type } from 'typebox';
import { Id, NullableString, Timestamp, strictObject, literalUnion } from '../../http/schemas.js';

export const CapabilitySchema = literalUnion(CAPABILITIES);

const CommandRuleSchema = strictObject({
  pattern: Type.String({ minLength: 1, maxLength: 500 }),
  action: literalUnion(COMMAND_RULE_ACTIONS),
  description: Type.Optional(Type.String({ maxLength: 500 })),
});

/** Input: any subset of the policy; omitted fields keep their default (or current) value. */
export const ZonePolicyInput = strictObject({
  requiredApprovals: Type.Optional(Type.Integer({ minimum: 1, maximum: 5 })),
  maxWindowMinutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 7 * 24 * 60 })),
  allowedCapabilities: Type.Optional(Type.Array(CapabilitySchema, { uniqueItems: true })),
  commandRules: Type.Optional(Type.Array(CommandRuleSchema, { maxItems: 200 })),
  recordingMode: Type.Optional(Type.Literal('full')),
  supervised: Type.Optional(Type.Boolean()),
  idleTimeoutMinutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 24 * 60 })),
  pendingRequestTtlMinutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 30 * 24 * 60 })),
});

export const ZonePolicySchema = Type.Object({
  requiredApprovals: Type.Integer(),
  maxWindowMinutes: Type.Integer(),
  allowedCapabilities: Type.Array(CapabilitySchema),
  commandRules: Type.Array(
    Type.Object({
      pattern: Type.String(),
      action: Type.String(),
      description: Type.Optional(Type.String()),
    }),
  ),
  recordingMode: Type.String(),
  supervised: Type.Boolean(),
  idleTimeoutMinutes: Type.Integer(),
  pendingRequestTtlMinutes: Type.Integer(),
});

export const ZoneSchema = Type.Object({
  id: Id('zone'),
  name: Type.String(),
  description: NullableString,
  policy: ZonePolicySchema,
  approverIds: Type.Array(Id('user')),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});
