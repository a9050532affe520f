/**
 * Writes docs/errors.md and docs/audit-events.md from the catalogues, so the
 * documentation cannot drift from the code (a test checks they are current).
 * Run: pnpm docs:generate
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AUDIT_EVENT_TYPES } from '@airlock/audit';
import { ERROR_CATALOGUE, HTTP_STATUS_BY_KIND } from '@airlock/domain';

const escape = (s: string): string => s.replace(/\|/g, '\\|');

export function errorsMarkdown(): string {
  const rows = Object.entries(ERROR_CATALOGUE).map(
    ([code, spec]) =>
      `| \`${code}\` | ${spec.kind} | ${HTTP_STATUS_BY_KIND[spec.kind]} | ${escape(spec.message)} |`,
  );
  return [
    '# Error codes',
    '',
    'Every error the HTTP API returns has the body `{"error": {"code": "...", "message": "..."}}`.',
    'Codes are stable: match on `code`, never on `message`. `{name}` in a message is filled in per error.',
    'Unknown failures are reported as `internal` and their detail is only in the operator log.',
    '',
    '_Generated from `packages/domain/src/errors.ts` by `pnpm docs:generate`; do not edit by hand._',
    '',
    '| code | kind | HTTP | message |',
    '|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}

export function auditEventsMarkdown(): string {
  const rows = Object.entries(AUDIT_EVENT_TYPES).map(
    ([type, spec]) => `| \`${type}\` | \`${spec.code}\` | ${escape(spec.description)} |`,
  );
  return [
    '# Audit event types',
    '',
    'Each audit event has a dotted `type` and a stable `code` (suffix I = information, W = warning, E = error).',
    'Events are append-only and hash-chained; see the README for verification.',
    '',
    '_Generated from `packages/audit/src/event-types.ts` by `pnpm docs:generate`; do not edit by hand._',
    '',
    '| type | code | meaning |',
    '|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(new URL('../docs/errors.md', import.meta.url), errorsMarkdown());
  writeFileSync(new URL('../docs/audit-events.md', import.meta.url), auditEventsMarkdown());
}
