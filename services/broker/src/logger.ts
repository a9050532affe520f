import pino, { type Logger } from 'pino';

/**
 * Operator logs: JSON to stdout, secrets redacted by path. Logs are for
 * operators; the audit trail is for auditors.
 */
export function createLogger(
  level: string,
  destination: pino.DestinationStream | undefined = undefined,
): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: 'airlock-broker' },
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        'res.headers["set-cookie"]',
        '*.password',
        '*.credential',
        '*.token',
        '*.secret',
        '*.totp',
        '*.enrollmentToken',
      ],
      censor: '<redacted>',
    },
  };
  return destination === undefined ? pino(options) : pino(options, destination);
}
