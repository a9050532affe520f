/**
 * Where a connector may dial: https (wss) anywhere, plain http (ws) only to a
 * loopback address, for development and tests. A connector sends its
 * assertions and carries session bytes over this link, so it is never
 * plain text across a network.
 */
import { isIP } from 'node:net';

export class BrokerUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BrokerUrlError';
  }
}

export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1';
  return false;
}

/** Checks a broker base URL against the transport policy; returns it normalised (no trailing slash). */
export function checkBrokerUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new BrokerUrlError(`not a URL: ${text}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new BrokerUrlError(`the broker URL must be https:// (got ${url.protocol}//)`);
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname))
    throw new BrokerUrlError(
      `plain http:// is allowed only to a loopback address (got ${url.hostname}); use https://`,
    );
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '')
    throw new BrokerUrlError('the broker URL must not carry credentials, a query or a fragment');
  url.pathname = url.pathname.replace(/\/+$/, '');
  return url;
}

/** The WebSocket URL of a broker path: https → wss, http → ws. */
export function webSocketUrl(base: URL, path: string): string {
  const url = new URL(base.href);
  url.protocol = base.protocol === 'https:' ? 'wss:' : 'ws:';
  url.pathname = `${base.pathname.replace(/\/+$/, '')}${path}`;
  return url.href;
}
