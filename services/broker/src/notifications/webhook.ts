/**
 * Signed outbound webhooks. The signature scheme follows Stripe's: the
 * receiver recomputes HMAC-SHA256(secret, `${t}.${body}`) and checks that t is
 * recent, so a captured delivery cannot be replayed later and a body cannot be
 * altered in transit (HMAC: RFC 2104; SHA-256: FIPS 180-4).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { BlockList, type LookupFunction } from 'node:net';
import { AppError, type Clock } from '@airlock/domain';
import { guardedLookup, refuseLiteralHost } from './egress.js';

export const WEBHOOK_SIGNATURE_HEADER = 'airlock-signature';
export const WEBHOOK_EVENT_HEADER = 'airlock-event';
export const WEBHOOK_USER_AGENT = 'airlock-webhooks/1';
export const DEFAULT_WEBHOOK_TIMEOUT_MS = 10_000;
export const DEFAULT_SIGNATURE_TOLERANCE_SECONDS = 300;

const SIGNATURE_SCHEME = 'v1';
/** Far longer than any honest header (a timestamp and a few signatures); bounds the parsing work. */
const MAX_HEADER_LENGTH = 1_024;

function hmac(secret: Buffer | string, timestampSeconds: number, body: string): Buffer {
  return createHmac('sha256', secret).update(`${timestampSeconds}.${body}`, 'utf8').digest();
}

function isEmptySecret(secret: Buffer | string): boolean {
  return secret.length === 0;
}

/** The header value `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "t.body")>`. */
export function signWebhook(
  secret: Buffer | string,
  body: string,
  timestampSeconds: number,
): string {
  if (isEmptySecret(secret)) throw new TypeError('A webhook secret must not be empty');
  if (!Number.isSafeInteger(timestampSeconds) || timestampSeconds < 0) {
    throw new RangeError('The webhook timestamp must be whole non-negative Unix seconds');
  }
  return `t=${timestampSeconds},${SIGNATURE_SCHEME}=${hmac(secret, timestampSeconds, body).toString('hex')}`;
}

interface ParsedSignatureHeader {
  readonly timestampSeconds: number;
  readonly signatures: readonly Buffer[];
}

function parseSignatureHeader(header: string): ParsedSignatureHeader | undefined {
  if (header.length > MAX_HEADER_LENGTH) return undefined;
  let timestampSeconds: number | undefined;
  const signatures: Buffer[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) return undefined;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't') {
      if (timestampSeconds !== undefined || !/^\d{1,12}$/.test(value)) return undefined;
      timestampSeconds = Number(value);
    } else if (key === SIGNATURE_SCHEME) {
      if (!/^[0-9a-fA-F]{64}$/.test(value)) return undefined;
      signatures.push(Buffer.from(value, 'hex'));
    }
    // Other schemes are ignored, so a future scheme can be sent alongside v1.
  }
  if (timestampSeconds === undefined || signatures.length === 0) return undefined;
  return { timestampSeconds, signatures };
}

/**
 * Checks a signature header as a receiver would. Several v1 signatures may be
 * present (one per secret while a secret is rotated); one match suffices.
 * Comparison is constant-time so response timing reveals nothing about the
 * expected signature.
 */
export function verifyWebhookSignature(
  secret: Buffer | string,
  body: string,
  header: string,
  nowSeconds: number,
  toleranceSeconds = DEFAULT_SIGNATURE_TOLERANCE_SECONDS,
): boolean {
  if (isEmptySecret(secret)) return false;
  const parsed = parseSignatureHeader(header);
  if (parsed === undefined) return false;
  if (Math.abs(nowSeconds - parsed.timestampSeconds) > toleranceSeconds) return false;
  const expected = hmac(secret, parsed.timestampSeconds, body);
  let matched = false;
  for (const candidate of parsed.signatures) {
    // Every candidate is compared (no early exit); lengths are equal by parsing.
    if (timingSafeEqual(candidate, expected)) matched = true;
  }
  return matched;
}

export interface DeliverWebhookOptions {
  readonly url: string;
  readonly secret: Buffer | string;
  /** The event type, e.g. `grant.revoked`; sent in the airlock-event header. */
  readonly event: string;
  /** The exact JSON text that is signed and sent. */
  readonly body: string;
  readonly clock: Clock;
  readonly timeoutMs?: number;
  /**
   * Special-purpose addresses (private, loopback, link-local…) the operator
   * allows webhooks to reach (AIRLOCK_WEBHOOK_ALLOWED_CIDRS); see egress.ts.
   */
  readonly allowedCidrs?: BlockList;
}

/**
 * POSTs one signed webhook. Throws on a network error, a timeout or any
 * non-2xx answer, so the job layer retries with backoff; and with
 * `webhook.address_not_allowed` when the endpoint's address is one a webhook
 * may not reach. Error messages name only the endpoint's origin: a URL path
 * or query may itself carry a token, and the secret is never put in any message.
 */
export async function deliverWebhook(options: DeliverWebhookOptions): Promise<{ status: number }> {
  const url = webhookUrl(options.url);
  const allowed = options.allowedCidrs ?? new BlockList();
  refuseLiteralHost(url, allowed);
  const endpoint = url.origin;
  const timeoutMs = options.timeoutMs ?? DEFAULT_WEBHOOK_TIMEOUT_MS;
  const timestampSeconds = Math.floor(options.clock.now().getTime() / 1_000);
  const headers = {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(options.body)),
    'user-agent': WEBHOOK_USER_AGENT,
    [WEBHOOK_EVENT_HEADER]: options.event,
    [WEBHOOK_SIGNATURE_HEADER]: signWebhook(options.secret, options.body, timestampSeconds),
  };

  let status: number;
  try {
    status = await post(url, headers, options.body, timeoutMs, guardedLookup(allowed));
  } catch (err) {
    if (err instanceof AppError) throw err;
    if (err instanceof Error && err.name === 'TimeoutError') {
      throw new Error(`Webhook delivery to ${endpoint} timed out after ${timeoutMs} ms`, {
        cause: err,
      });
    }
    throw new Error(`Webhook delivery to ${endpoint} failed: ${networkReason(err)}`, {
      cause: err,
    });
  }
  // A redirect is never followed: it could steer a signed delivery (and our
  // egress) to a host the user never registered, such as one inside the OT network.
  if (status >= 300 && status < 400) {
    throw new Error(
      `Webhook endpoint ${endpoint} answered HTTP ${status} (a redirect, which is not followed)`,
    );
  }
  if (status < 200 || status >= 300)
    throw new Error(`Webhook endpoint ${endpoint} answered HTTP ${status}`);
  return { status };
}

/** An absolute http(s) URL without credentials, or `webhook.invalid_url`. */
export function webhookUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch (err) {
    throw new AppError('webhook.invalid_url', {}, { cause: err });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new AppError('webhook.invalid_url');
  if (url.username !== '' || url.password !== '') throw new AppError('webhook.invalid_url');
  return url;
}

/** One POST; resolves with the status once the answer's headers are in (its body is dropped). */
function post(
  url: URL,
  headers: Record<string, string>,
  body: string,
  timeoutMs: number,
  lookup: LookupFunction,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    // A connection of its own (agent: false): a pooled one would skip the
    // checked lookup, and the answer's body, of no use, is not read at all
    // (an endpoint could send one without end).
    const request = send(url, { method: 'POST', headers, lookup, agent: false }, (response) => {
      clearTimeout(deadline);
      resolve(response.statusCode ?? 0);
      response.destroy();
    });
    const deadline = setTimeout(() => {
      const timedOut = new Error(`no answer within ${timeoutMs} ms`);
      timedOut.name = 'TimeoutError';
      request.destroy(timedOut);
    }, timeoutMs);
    request.once('error', (err) => {
      clearTimeout(deadline);
      reject(err);
    });
    request.end(body);
  });
}

/** The low-level reason, e.g. `ECONNREFUSED (connect ECONNREFUSED 127.0.0.1:9)`. */
function networkReason(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as NodeJS.ErrnoException).code;
  return code === undefined ? err.message : `${code} (${err.message})`;
}
