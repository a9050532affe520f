import { idPattern, type IdKind } from '@airlock/domain';
import { Type, type TSchema } from 'typebox';

/** Shared route schema pieces. Every object schema refuses unknown fields. */
export const Id = (kind: IdKind) => Type.String({ pattern: idPattern(kind) });
export const IdParams = (kind: IdKind) =>
  Type.Object({ id: Id(kind) }, { additionalProperties: false });
export const Timestamp = Type.String({ format: 'date-time' });
/** An optional Timestamp field as a Date (the schema has already checked its format). */
export const optionalDate = (s: string | undefined): Date | undefined =>
  s === undefined ? undefined : new Date(s);
export const NullableString = Type.Union([Type.String(), Type.Null()]);

export const ErrorResponse = Type.Object({
  error: Type.Object({ code: Type.String(), message: Type.String() }),
});

export function strictObject<T extends Record<string, TSchema>>(properties: T) {
  return Type.Object(properties, { additionalProperties: false });
}

/** Standard responses every route documents besides its success. */
export const errorResponses = {
  400: ErrorResponse,
  401: ErrorResponse,
  403: ErrorResponse,
  404: ErrorResponse,
  409: ErrorResponse,
  412: ErrorResponse,
  429: ErrorResponse,
} as const;

/** A string schema limited to the given values, typed as their union. */
export function literalUnion<const T extends readonly string[]>(values: T) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values] });
}
