/**
 * The control-channel protocol between the broker and a zone connector: JSON
 * text frames on one WebSocket per (connector, broker replica), validated
 * strictly on both ends. Pure: no I/O, so both sides and their tests share one
 * definition of what a valid frame is.
 *
 * Bytes of a session never travel on the control channel. For each stream the
 * broker sends `open`; the connector dials the asset and then opens a new
 * WebSocket of its own to STREAM_PATH/<streamId>. One TCP connection per
 * stream means each session has its own flow control: a bulk transfer fills
 * its own socket buffers and cannot delay another session's keystrokes.
 */

export const PROTOCOL_VERSION = 1;

/** The HTTP paths on the broker, relative to its base URL. */
export const ENROLL_PATH = '/api/v1/connectors/enroll';
export const CONTROL_PATH = '/api/v1/connectors/control';
export const STREAM_PATH_PREFIX = '/api/v1/connectors/streams/';

/** Whether an HTTP upgrade is for the connector hub; other upgrade handlers leave these alone. */
export function isConnectorUpgradePath(path: string): boolean {
  return path === CONTROL_PATH || path.startsWith(STREAM_PATH_PREFIX);
}

/** The header that carries the connector's signed assertion on every WebSocket upgrade. */
export const ASSERTION_HEADER = 'authorization';

/** Largest control frame either side accepts (an asset list of a few thousand entries fits). */
export const MAX_CONTROL_FRAME_BYTES = 1024 * 1024;

/**
 * WebSocket close codes (RFC 6455 §7.4.2: 4000–4999 are for applications).
 * The connector decides from the code whether retrying can help.
 */
export const CLOSE_CODES = {
  /** Normal end: the broker or connector is shutting down. */
  shutdown: 1001,
  /** A frame was not valid protocol: a bug or an attack. */
  protocolError: 1002,
  /** The peer missed heartbeats (sent if the socket still takes it). */
  heartbeatTimeout: 4000,
  /** The connector's identity is no longer accepted (disabled by an admin). */
  unauthorized: 4401,
} as const;

export type CloseCode = (typeof CLOSE_CODES)[keyof typeof CLOSE_CODES];

/** Why a connector refused to open a stream; reported back so the broker audits it too. */
export const REFUSAL_CODES = [
  'grant_invalid',
  'grant_replayed',
  'wrong_zone',
  'asset_not_in_zone',
  'window_closed',
  'asset_unreachable',
  'malformed',
] as const;
export type RefusalCode = (typeof REFUSAL_CODES)[number];

/** One asset endpoint the connector may reach: its zone's list, pushed by the broker. */
export interface AssetEndpoint {
  readonly assetId: string;
  readonly host: string;
  /** The asset's service port and the ports it lists for forwarding. */
  readonly ports: readonly number[];
}

export type BrokerMessage =
  | {
      readonly type: 'hello';
      readonly protocol: number;
      readonly brokerInstance: string;
      readonly connectorId: string;
      readonly zoneId: string;
      /** Milliseconds between pings; a peer silent for two intervals is gone. */
      readonly heartbeatMs: number;
      /** Base URLs of every live broker replica; the connector keeps a control link to each. */
      readonly replicas: readonly string[];
      readonly assets: readonly AssetEndpoint[];
    }
  | { readonly type: 'assets'; readonly assets: readonly AssetEndpoint[] }
  | { readonly type: 'replicas'; readonly replicas: readonly string[] }
  | {
      readonly type: 'open';
      readonly streamId: string;
      /** Signed by the broker (grant token, aud = zone): the connector re-checks it. */
      readonly grantToken: string;
      readonly assetId: string;
      readonly host: string;
      readonly port: number;
    };

export type ConnectorMessage = {
  readonly type: 'refused';
  readonly streamId: string;
  readonly code: RefusalCode;
  readonly detail: string;
};

export class TunnelProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TunnelProtocolError';
  }
}

const STREAM_ID = /^stm_[A-Za-z0-9_-]{16,64}$/;
const HOST = /^[A-Za-z0-9.:_[\]-]{1,253}$/;

export function isStreamId(value: string): boolean {
  return STREAM_ID.test(value);
}

type Json = Record<string, unknown>;

function object(value: unknown, what: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new TunnelProtocolError(`${what} is not an object`);
  return value as Json;
}

/** Refuses members the protocol does not define: a peer never smuggles fields past validation. */
function only(o: Json, allowed: readonly string[], what: string): void {
  for (const key of Object.keys(o))
    if (!allowed.includes(key)) throw new TunnelProtocolError(`${what}: unknown field "${key}"`);
}

function str(o: Json, key: string, max = 4096, pattern?: RegExp): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length === 0 || v.length > max)
    throw new TunnelProtocolError(`${key} must be a non-empty string of at most ${max} characters`);
  if (pattern !== undefined && !pattern.test(v))
    throw new TunnelProtocolError(`${key} is not in the expected format`);
  return v;
}

function int(o: Json, key: string, min: number, max: number): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw new TunnelProtocolError(`${key} must be an integer from ${min} to ${max}`);
  return v;
}

function port(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535)
    throw new TunnelProtocolError(`${what} must be a TCP port`);
  return value;
}

function urlList(o: Json, key: string): string[] {
  const v = o[key];
  if (!Array.isArray(v) || v.length > 64)
    throw new TunnelProtocolError(`${key} must be a list of at most 64 URLs`);
  return v.map((u) => {
    if (typeof u !== 'string' || u.length > 2048)
      throw new TunnelProtocolError(`${key}: not a URL`);
    let parsed: URL;
    try {
      parsed = new URL(u);
    } catch {
      throw new TunnelProtocolError(`${key}: not a URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
      throw new TunnelProtocolError(`${key}: only http and https URLs`);
    return u;
  });
}

function assetList(o: Json): AssetEndpoint[] {
  const v = o.assets;
  if (!Array.isArray(v) || v.length > 10_000)
    throw new TunnelProtocolError('assets must be a list of at most 10000 entries');
  return v.map((entry, i) => {
    const a = object(entry, `assets[${i}]`);
    only(a, ['assetId', 'host', 'ports'], `assets[${i}]`);
    const ports = a.ports;
    if (!Array.isArray(ports) || ports.length === 0 || ports.length > 64)
      throw new TunnelProtocolError(`assets[${i}].ports must list 1 to 64 ports`);
    return {
      assetId: str(a, 'assetId', 64),
      host: str(a, 'host', 253, HOST),
      ports: ports.map((p, j) => port(p, `assets[${i}].ports[${j}]`)),
    };
  });
}

function parseFrame(text: string): Json {
  if (Buffer.byteLength(text) > MAX_CONTROL_FRAME_BYTES)
    throw new TunnelProtocolError('frame too large');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new TunnelProtocolError('frame is not JSON');
  }
  return object(value, 'frame');
}

/** What the connector accepts from the broker. Throws TunnelProtocolError on anything else. */
export function parseBrokerMessage(text: string): BrokerMessage {
  const o = parseFrame(text);
  switch (o.type) {
    case 'hello':
      only(
        o,
        [
          'type',
          'protocol',
          'brokerInstance',
          'connectorId',
          'zoneId',
          'heartbeatMs',
          'replicas',
          'assets',
        ],
        'hello',
      );
      return {
        type: 'hello',
        protocol: int(o, 'protocol', 1, 1000),
        brokerInstance: str(o, 'brokerInstance', 100),
        connectorId: str(o, 'connectorId', 64),
        zoneId: str(o, 'zoneId', 64),
        heartbeatMs: int(o, 'heartbeatMs', 50, 600_000),
        replicas: urlList(o, 'replicas'),
        assets: assetList(o),
      };
    case 'assets':
      only(o, ['type', 'assets'], 'assets');
      return { type: 'assets', assets: assetList(o) };
    case 'replicas':
      only(o, ['type', 'replicas'], 'replicas');
      return { type: 'replicas', replicas: urlList(o, 'replicas') };
    case 'open':
      only(o, ['type', 'streamId', 'grantToken', 'assetId', 'host', 'port'], 'open');
      return {
        type: 'open',
        streamId: str(o, 'streamId', 80, STREAM_ID),
        grantToken: str(o, 'grantToken', 4096),
        assetId: str(o, 'assetId', 64),
        host: str(o, 'host', 253, HOST),
        port: port(o.port, 'port'),
      };
    default:
      throw new TunnelProtocolError('unknown message type');
  }
}

/** What the broker accepts from a connector. Throws TunnelProtocolError on anything else. */
export function parseConnectorMessage(text: string): ConnectorMessage {
  const o = parseFrame(text);
  if (o.type !== 'refused') throw new TunnelProtocolError('unknown message type');
  only(o, ['type', 'streamId', 'code', 'detail'], 'refused');
  const code = str(o, 'code', 40);
  if (!(REFUSAL_CODES as readonly string[]).includes(code))
    throw new TunnelProtocolError('code is not a known refusal code');
  return {
    type: 'refused',
    streamId: str(o, 'streamId', 80, STREAM_ID),
    code: code as RefusalCode,
    detail: typeof o.detail === 'string' ? o.detail.slice(0, 500) : '',
  };
}

export function encodeMessage(message: BrokerMessage | ConnectorMessage): string {
  return JSON.stringify(message);
}

/** Whether an endpoint in the zone's list covers host:port (host compared case-insensitively). */
export function endpointAllows(
  assets: readonly AssetEndpoint[],
  assetId: string,
  host: string,
  targetPort: number,
): boolean {
  const wanted = host.toLowerCase();
  return assets.some(
    (a) => a.assetId === assetId && a.host.toLowerCase() === wanted && a.ports.includes(targetPort),
  );
}
