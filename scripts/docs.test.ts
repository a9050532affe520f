import { readFileSync } from 'node:fs';
import { ERROR_CATALOGUE } from '@airlock/domain';
import { AUDIT_EVENT_TYPES } from '@airlock/audit';
import { describe, expect, it } from 'vitest';
import { auditEventsMarkdown, errorsMarkdown } from './generate-docs.js';

describe('catalogue documentation', () => {
  it('documents every error code and every audit event type, as generated from the code', () => {
    expect(readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8')).toBe(
      errorsMarkdown(),
    );
    expect(readFileSync(new URL('../docs/audit-events.md', import.meta.url), 'utf8')).toBe(
      auditEventsMarkdown(),
    );
  });

  it('gives every error a stable dotted code and a message, and every audit type a unique code', () => {
    for (const [code, spec] of Object.entries(ERROR_CATALOGUE)) {
      expect(code).toMatch(/^[a-z_]+(\.[a-z_]+)*$/);
      expect(spec.message.length).toBeGreaterThan(10);
    }
    const codes = Object.values(AUDIT_EVENT_TYPES).map((t) => t.code);
    expect(new Set(codes).size).toBe(codes.length);
  });
});
