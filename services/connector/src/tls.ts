/**
 * TLS to the broker: CA-verified (the system CAs, or --ca-file, which may be
 * the broker's own certificate — a pin by trust anchor), optionally with the
 * leaf certificate's SHA-256 fingerprint pinned as well. Plain ws:// is
 * allowed only to loopback (checked with the URL, see @airlock/tunnel).
 */
import { readFileSync } from 'node:fs';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import type { ConnectorConfig } from './config.js';

export interface TlsClientOptions {
  readonly ca?: Buffer;
  readonly checkServerIdentity?: (host: string, cert: PeerCertificate) => Error | undefined;
}

export function tlsOptions(config: ConnectorConfig): TlsClientOptions {
  const pin = config.pinSha256;
  return {
    ...(config.caFile === null ? {} : { ca: readFileSync(config.caFile) }),
    ...(pin === null
      ? {}
      : {
          checkServerIdentity: (host: string, cert: PeerCertificate) => {
            const hostError = checkServerIdentity(host, cert);
            if (hostError !== undefined) return hostError;
            if (cert.fingerprint256 !== pin)
              return new Error(
                `the broker's certificate ${cert.fingerprint256} is not the pinned ${pin}`,
              );
            return undefined;
          },
        }),
  };
}
