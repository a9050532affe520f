import { AppError, toPublicError } from '@airlock/domain';
import type { FastifyError, FastifyInstance } from 'fastify';

const PG_UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  '57P01',
  '57P03',
  '08006',
  '08001',
  '08003',
]);

function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  if (typeof e.code === 'string' && PG_UNAVAILABLE_CODES.has(e.code)) return true;
  return (
    typeof e.message === 'string' &&
    /Connection terminated|timeout exceeded when trying to connect/i.test(e.message)
  );
}

/** Turns framework errors (parser, validation, limits) into catalogue errors. */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const fe = err as Partial<FastifyError> & {
    validation?: { instancePath?: string; message?: string; params?: Record<string, unknown> }[];
  };
  if (Array.isArray(fe.validation) && fe.validation.length > 0) {
    const first = fe.validation[0];
    const where = `${fe.validationContext ?? 'body'}${first?.instancePath ?? ''}`;
    const extra = first?.params?.additionalProperty;
    const detail =
      extra === undefined
        ? `${where} ${first?.message ?? 'is invalid'}`
        : `${where} has unknown field "${typeof extra === 'string' ? extra : JSON.stringify(extra)}"`;
    return new AppError('request.invalid', { detail });
  }
  switch (fe.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new AppError('request.malformed_json');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError('request.body_too_large', { limit: '(configured)' });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AppError('request.unsupported_media_type');
    default:
      break;
  }
  if (fe.statusCode === 400 && err instanceof SyntaxError)
    return new AppError('request.malformed_json');
  if (isDatabaseUnavailable(err))
    return new AppError('service.unavailable', { detail: 'database unreachable' }, { cause: err });
  return new AppError('internal', {}, { cause: err });
}

/**
 * Every error leaves as `{error: {code, message}}` with a stable code. The
 * text of unknown errors is logged for operators and never sent to clients.
 */
export function installErrorHandling(app: FastifyInstance, bodyLimitBytes: number): void {
  app.setErrorHandler((err, request, reply) => {
    let appError = toAppError(err);
    if (appError.code === 'request.body_too_large')
      appError = new AppError('request.body_too_large', { limit: bodyLimitBytes });
    if (appError.kind === 'internal' || appError.kind === 'unavailable') {
      request.log.error({ err }, 'request failed');
    }
    const pub = toPublicError(appError);
    void reply.status(pub.status).headers(pub.headers).send(pub.body);
  });
  app.setNotFoundHandler((_request, reply) => {
    const pub = toPublicError(new AppError('route.not_found'));
    void reply.status(pub.status).send(pub.body);
  });
}
