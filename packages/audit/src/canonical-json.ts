/**
 * Canonical JSON in the style of RFC 8785 (JSON Canonicalization Scheme): object
 * keys sorted by UTF-16 code units (§3.2.3), no insignificant whitespace, numbers
 * in ECMAScript shortest round-trip form (§3.2.2.3), strings escaped as by
 * ECMAScript JSON.stringify (§3.2.2.2).
 *
 * The audit hash is computed over this encoding, while `data` is stored as jsonb,
 * which reorders keys and reformats numbers. Hashing the canonical form makes the
 * hash a function of the JSON *value*, so an event re-read from jsonb hashes to
 * the same bytes as when it was written.
 *
 * Values that would not survive that round trip unchanged are refused rather than
 * silently altered, so that what is hashed is always exactly what is stored:
 * non-finite numbers (JSON has no spelling for them), U+0000 (jsonb rejects it),
 * lone surrogates (not valid Unicode; jsonb rejects them), and anything that is
 * not a plain object, array, string, finite number, boolean or null (a Date or
 * Secret would otherwise be converted by its toJSON and hash differently from
 * what its author thought was recorded).
 */

export class CanonicalJsonError extends TypeError {
  /** Where in the value the problem is, as a JSONPath-like string (`$.a[2].b`). */
  readonly path: string;

  constructor(path: string, problem: string) {
    super(`Cannot canonicalise ${path}: ${problem}`);
    this.name = 'CanonicalJsonError';
    this.path = path;
  }
}

// A lone high surrogate not followed by a low one, or a low one not preceded by a high one.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function encodeString(value: string, path: string): string {
  if (value.includes('\u0000'))
    throw new CanonicalJsonError(path, 'strings may not contain U+0000');
  if (LONE_SURROGATE.test(value))
    throw new CanonicalJsonError(path, 'strings may not contain lone surrogates');
  return JSON.stringify(value);
}

function isPlainObject(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function describe(value: unknown): string {
  if (typeof value !== 'object' || value === null) return typeof value;
  const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof name === 'string' && name !== '' ? `an instance of ${name}` : 'a non-plain object';
}

function encode(value: unknown, path: string, ancestors: Set<object>): string {
  switch (typeof value) {
    case 'string':
      return encodeString(value, path);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value))
        throw new CanonicalJsonError(path, `${String(value)} is not a JSON number`);
      // ECMAScript Number-to-String is exactly the RFC 8785 number format; -0 becomes "0".
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw new CanonicalJsonError(path, `${typeof value} is not a JSON value`);
  }
  if (value === null) return 'null';
  if (ancestors.has(value)) throw new CanonicalJsonError(path, 'the value contains a cycle');
  ancestors.add(value);
  try {
    if (Array.isArray(value)) {
      const parts: string[] = [];
      for (let i = 0; i < value.length; i++) {
        const item: unknown = value[i];
        if (item === undefined)
          throw new CanonicalJsonError(`${path}[${i}]`, 'arrays may not contain undefined');
        parts.push(encode(item, `${path}[${i}]`, ancestors));
      }
      return `[${parts.join(',')}]`;
    }
    if (!isPlainObject(value))
      throw new CanonicalJsonError(path, `${describe(value)} is not a plain JSON object`);
    const record = value as Record<string, unknown>;
    // Default sort compares UTF-16 code units, which is what RFC 8785 §3.2.3 asks for.
    const keys = Object.keys(record).sort();
    const parts: string[] = [];
    for (const key of keys) {
      const member = record[key];
      // Dropped like JSON.stringify does, so `{a: undefined}` and `{}` record the same event.
      if (member === undefined) continue;
      const memberPath = `${path}.${key}`;
      parts.push(`${encodeString(key, memberPath)}:${encode(member, memberPath, ancestors)}`);
    }
    return `{${parts.join(',')}}`;
  } finally {
    ancestors.delete(value);
  }
}

/** The canonical JSON text of `value`; throws CanonicalJsonError for values JSON (or jsonb) cannot hold exactly. */
export function canonicalJson(value: unknown): string {
  return encode(value, '$', new Set());
}
