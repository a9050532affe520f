/**
 * A broker played by a test, for driving the real connector process: it
 * answers enrolment with its own grant key, greets the control link with a
 * zone's asset list, and records what the connector sends back and which
 * streams it reverse-dials. Over TLS when given a certificate.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import {
  CONTROL_PATH,
  encodeMessage,
  ENROLL_PATH,
  parseConnectorMessage,
  publicKeyToPem,
  STREAM_PATH_PREFIX,
  type AssetEndpoint,
  type ConnectorMessage,
} from '@airlock/tunnel';
import { WebSocketServer, type WebSocket } from 'ws';

export const FAKE_ZONE = 'zon_aaaaaaaaaaaaaaaaaaaa';
export const FAKE_CONNECTOR = 'con_aaaaaaaaaaaaaaaaaaaa';

export interface FakeBroker {
  readonly url: string;
  readonly keys: { readonly privateKey: KeyObject; readonly publicKey: KeyObject };
  /** The connector's current control link, once it connected. */
  control(): WebSocket | null;
  readonly fromConnector: ConnectorMessage[];
  readonly streams: Map<string, WebSocket>;
  close(): Promise<void>;
}

export async function startFakeBroker(options: {
  assets: readonly AssetEndpoint[];
  tls?: { key: Buffer; cert: Buffer };
}): Promise<FakeBroker> {
  const keys = generateKeyPairSync('ed25519');
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  let control: WebSocket | null = null;
  const fromConnector: ConnectorMessage[] = [];
  const streams = new Map<string, WebSocket>();
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    if (req.method === 'POST' && req.url === ENROLL_PATH) {
      req.resume();
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          connectorId: FAKE_CONNECTOR,
          zoneId: FAKE_ZONE,
          name: 'fake-gw',
          audience: 'airlock:fake',
          brokerPublicKey: publicKeyToPem(keys.publicKey),
        }),
      );
      return;
    }
    res.statusCode = 404;
    res.end();
  };
  const server =
    options.tls === undefined
      ? createHttpServer(onRequest)
      : createHttpsServer(options.tls, onRequest);
  server.on('upgrade', (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (req.url === CONTROL_PATH) {
        control = ws;
        ws.on('message', (data) =>
          fromConnector.push(parseConnectorMessage((data as Buffer).toString('utf8'))),
        );
        ws.send(
          encodeMessage({
            type: 'hello',
            protocol: 1,
            brokerInstance: 'brk_fake',
            connectorId: FAKE_CONNECTOR,
            zoneId: FAKE_ZONE,
            heartbeatMs: 5000,
            replicas: [],
            assets: options.assets,
          }),
        );
      } else if (req.url?.startsWith(STREAM_PATH_PREFIX)) {
        streams.set(req.url.slice(STREAM_PATH_PREFIX.length), ws);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const scheme = options.tls === undefined ? 'http' : 'https';
  const host = options.tls === undefined ? '127.0.0.1' : 'localhost';
  return {
    url: `${scheme}://${host}:${(server.address() as AddressInfo).port}`,
    keys,
    control: () => control,
    fromConnector,
    streams,
    async close() {
      for (const client of wss.clients) client.terminate();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
