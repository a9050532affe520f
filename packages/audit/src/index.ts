export {
  AUDIT_EVENT_TYPES,
  auditEventCode,
  isAuditEventType,
  type AuditEventType,
} from './event-types.js';
export { canonicalJson, CanonicalJsonError } from './canonical-json.js';
export {
  computeEventHash,
  GENESIS_HASH,
  type AuditActor,
  type AuditActorKind,
  type AuditEventInput,
  type AuditEventRecord,
  type HashedEventFields,
  type JsonValue,
} from './chain.js';
export {
  appendAuditEvent,
  appendAuditEventStandalone,
  DEFAULT_AUDIT_PAGE_SIZE,
  listAuditEvents,
  MAX_AUDIT_PAGE_SIZE,
  readAuditHead,
  streamAuditEvents,
  type AuditQuery,
  type StreamOptions,
} from './repository.js';
export {
  CHECKPOINT_JWS_TYPE,
  latestCheckpoint,
  type CheckpointStatement,
  type StoredCheckpoint,
} from './checkpoint.js';
export { AuditChainBrokenError, createAuditCheckpoint } from './create-checkpoint.js';
export {
  verifyAuditTrail,
  type VerifyFailure,
  type VerifyFailureReason,
  type VerifyResult,
} from './verify.js';
