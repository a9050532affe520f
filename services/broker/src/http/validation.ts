import { Ajv, type ErrorObject, type Options } from 'ajv';
import addFormats from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';

/**
 * RFC 3339 admits instants a Date cannot hold (a leap second, `23:59:60`) and
 * years PostgreSQL cannot store (`0000`). Either would pass the schema and
 * then fail deep inside a query as an internal error; refused here instead.
 */
function isStorableInstant(text: string): boolean {
  const ms = Date.parse(text);
  if (!Number.isFinite(ms)) return false;
  const year = new Date(ms).getUTCFullYear();
  return year >= 1 && year <= 9999;
}

function tightenDateTime(ajv: Ajv): void {
  const rfc3339 = ajv.formats['date-time'] as { validate: (text: string) => boolean } | undefined;
  if (rfc3339 === undefined) throw new Error('ajv-formats did not define date-time');
  ajv.addFormat('date-time', {
    type: 'string',
    validate: (text: string) => rfc3339.validate(text) && isStorableInstant(text),
  });
}

/**
 * PostgreSQL `text` and `jsonb` cannot hold U+0000: a string carrying one
 * would fail inside a query as an internal error. Returns where the first one is.
 */
function nulCharacterPath(value: unknown, path: string): string | null {
  if (typeof value === 'string') return value.includes('\u0000') ? path : null;
  if (typeof value !== 'object' || value === null) return null;
  for (const [key, item] of Object.entries(value)) {
    const found = nulCharacterPath(item, `${path}/${key}`);
    if (found !== null) return found;
  }
  return null;
}

/**
 * Two validators: bodies are checked strictly (no type coercion, unknown
 * fields refused, nothing silently removed); querystrings and path params
 * arrive as text, so they may be coerced ("50" -> 50).
 */
function makeAjv(options: Options): Ajv {
  const ajv = new Ajv({
    allErrors: false,
    removeAdditional: false,
    useDefaults: true,
    strict: false,
    ...options,
  });
  (addFormats as unknown as (a: Ajv) => void)(ajv);
  tightenDateTime(ajv);
  return ajv;
}

const bodyAjv = makeAjv({ coerceTypes: false });
const textAjv = makeAjv({ coerceTypes: 'array' });

export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) => {
  const validate = (httpPart === 'body' ? bodyAjv : textAjv).compile(schema as object);
  const checked = (data: unknown): boolean => {
    if (!validate(data)) {
      checked.errors = validate.errors ?? null;
      return false;
    }
    const at = nulCharacterPath(data, '');
    if (at !== null) {
      const error: ErrorObject = {
        instancePath: at,
        schemaPath: '#',
        keyword: 'nulCharacter',
        params: {},
        message: 'must not contain the NUL character',
      };
      checked.errors = [error];
      return false;
    }
    checked.errors = null;
    return true;
  };
  checked.errors = null as ErrorObject[] | null;
  return checked as ReturnType<FastifySchemaCompiler<unknown>>;
};
