import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { AppError, toPublicError } from '@airlock/domain';
import { decodeFrames } from '@airlock/recording';
import { isConnectorUpgradePath } from '@airlock/tunnel';
import { Type } from 'typebox';
import { WebSocketServer, type WebSocket } from 'ws';
import { auditAlone } from '../../audit.js';
import type { BrokerContext } from '../../context.js';
import type { LiveSession } from '../../gateway/live-session.js';
import type { VendorConnection } from '../../gateway/vendor-channel.js';
import { WebTerminalChannel } from '../../gateway/web-terminal.js';
import type { App } from '../../http/app-types.js';
import {
  authenticate,
  checkSameOrigin,
  principalFromToken,
  SESSION_COOKIE,
} from '../../http/authenticate.js';
import { errorResponses } from '../../http/schemas.js';
import type { Principal } from '../../principal.js';
import { visibilityOf } from '../../visibility.js';
import { getAsset, type AssetRecord } from '../assets/repository.js';
import { findGrants, type GrantRecord } from '../grants/repository.js';
import { getSession } from '../sessions/repository.js';
import { findAuthSession } from '../auth/repository.js';
import { findUserById, type UserRecord } from '../users/repository.js';

/** Starts sessions for browser terminals in the gateway's registry (see gateway/server.ts). */
export interface WebTerminals {
  /** `host:port` the SSH gateway listens on. */
  readonly address: string;
  readonly hostKey: { readonly fingerprint: string };
  startWebSession(
    identity: { user: UserRecord; asset: AssetRecord; grant: GrantRecord },
    connection: VendorConnection,
    client: { ip: string; version: string | null },
  ): LiveSession;
}

const TERMINAL_PATH = /^\/api\/v1\/assets\/(ast_[0-9a-z]{20})\/terminal$/;
const LIVE_PATH = /^\/api\/v1\/sessions\/(ses_[0-9a-z]{20})\/live$/;
/** How often a watcher's replica looks for new recording chunks (the live view's lag). */
export const LIVE_POLL_MS = 200;
/** How often a browser terminal checks that its sign-in session still stands. */
const SIGN_IN_CHECK_MS = 2000;
/** What may wait in a watcher's socket before the live view stops reading ahead. */
const LIVE_BUFFER_BYTES = 1 << 20;

function size(value: string | null, fallback: number): number {
  const n = Number(value);
  return Number.isInteger(n) && n >= 2 && n <= 1000 ? n : fallback;
}

/** Answers an upgrade that is refused, as JSON in the API's error shape, and drops the socket. */
function refuse(socket: Duplex, err: unknown): void {
  const { status, body } = toPublicError(err);
  const json = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} Refused\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(json)}\r\nconnection: close\r\n\r\n${json}`,
  );
}

/**
 * WebSocket endpoints of the console, on the API's own listener:
 * `GET /api/v1/assets/:id/terminal` (the vendor's browser terminal, same
 * session pipeline as the SSH gateway) and `GET /api/v1/sessions/:id/live`
 * (read-only live view). Browsers send the session cookie with any upgrade,
 * even one a foreign page starts, so the Origin must be our own
 * (cross-site WebSocket hijacking), and the cookie session is checked as for
 * any API call.
 */
export function installWebSockets(app: App, ctx: BrokerContext, terminals: WebTerminals | null) {
  app.get(
    '/api/v1/gateway',
    {
      onRequest: authenticate(ctx),
      schema: {
        tags: ['sessions'],
        summary: 'Where vendors connect with their own SSH client, and the key to expect',
        response: {
          200: Type.Object({
            ssh: Type.Union([
              Type.Object({ port: Type.Integer(), hostKeyFingerprint: Type.String() }),
              Type.Null(),
            ]),
          }),
          ...errorResponses,
        },
      },
    },
    () => ({
      ssh:
        terminals === null
          ? null
          : {
              port: Number(terminals.address.slice(terminals.address.lastIndexOf(':') + 1)),
              hostKeyFingerprint: terminals.hostKey.fingerprint,
            },
    }),
  );

  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });

  const authenticateUpgrade = async (
    request: IncomingMessage,
    route: string,
  ): Promise<Principal> => {
    const ip = request.socket.remoteAddress ?? 'unknown';
    try {
      checkSameOrigin({ headers: request.headers });
    } catch (err) {
      await auditAlone(ctx, {
        type: 'auth.permission_denied',
        actor: { kind: 'anonymous', ip },
        outcome: 'failure',
        data: {
          method: 'GET',
          route,
          reason: 'cross_origin_websocket',
          origin: (request.headers.origin ?? '').slice(0, 200),
        },
      });
      throw err;
    }
    const token = app.parseCookie(request.headers.cookie ?? '')[SESSION_COOKIE];
    if (token === undefined || token === '') throw new AppError('auth.token_missing');
    const principal = await principalFromToken(ctx, token, { ip, route, via: 'cookie' });
    if (principal.scope !== 'full') throw new AppError('auth.totp_enrollment_required');
    return principal;
  };

  const openTerminal = async (
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    assetId: string,
    url: URL,
  ): Promise<void> => {
    const route = '/api/v1/assets/:id/terminal';
    const principal = await authenticateUpgrade(request, route);
    if (terminals === null)
      throw new AppError('service.unavailable', { detail: 'no session gateway on this replica' });
    const asset = await getAsset(ctx.pool, assetId);
    const user = await findUserById(ctx.pool, principal.userId);
    if (user === null) throw new AppError('auth.token_invalid');
    // The same check as the SSH gateway's: an active grant for this user and asset, now.
    const [grant] = await findGrants(ctx.pool, {
      userId: user.id,
      assetId: asset.id,
      activeAt: ctx.clock.now(),
    });
    if (grant === undefined || asset.protocol !== 'ssh') {
      await auditAlone(ctx, {
        type: 'session.refused',
        actor: { kind: 'user', id: user.id, ip: principal.ip },
        outcome: 'failure',
        data: {
          login: `${user.username}+${asset.name}`,
          reason: grant === undefined ? 'no_active_grant' : 'not_a_shell_asset',
          via: 'console',
        },
      });
      throw new AppError('terminal.no_active_grant', { asset: asset.name });
    }
    const cols = size(url.searchParams.get('cols'), 80);
    const rows = size(url.searchParams.get('rows'), 24);
    wss.handleUpgrade(request, socket, head, (ws: WebSocket) => {
      const shell: { resize(cols: number, rows: number): void }[] = [];
      const channel = new WebTerminalChannel(ws, (c, r) => shell[0]?.resize(c, r));
      const session = terminals.startWebSession({ user, asset, grant }, channel, {
        ip: principal.ip,
        version: (request.headers['user-agent'] ?? 'browser').slice(0, 200),
      });
      channel.control({ type: 'session', sessionId: session.id });
      shell.push(session.openWebShell(channel, { cols, rows }));
      // The terminal lives as long as the sign-in it was opened with: signing out (in any
      // tab), a password reset or a disabled account ends it, as the cookie would.
      const signIn = setInterval(() => {
        signedInStill(principal).then(
          (still) => {
            if (!still) void session.end('client_exit', 'signed out of the console');
          },
          (err: unknown) => ctx.log.warn({ err, sessionId: session.id }, 'sign-in check failed'),
        );
      }, SIGN_IN_CHECK_MS);
      signIn.unref();
      channel.once('close', () => {
        clearInterval(signIn);
        void session.end('client_exit');
      });
    });
  };

  const signedInStill = async (principal: Principal): Promise<boolean> => {
    const session = await findAuthSession(ctx.pool, principal.sessionId);
    const user = await findUserById(ctx.pool, principal.userId);
    return (
      session !== null &&
      session.revokedAt === null &&
      session.expiresAt > ctx.clock.now() &&
      user !== null &&
      user.disabledAt === null
    );
  };

  const openLiveView = async (
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    sessionId: string,
  ): Promise<void> => {
    const route = '/api/v1/sessions/:id/live';
    const principal = await authenticateUpgrade(request, route);
    const session = await getSession(ctx.pool, sessionId, await visibilityOf(ctx, principal));
    await auditAlone(ctx, {
      type: 'session.watched',
      actor: { kind: 'user', id: principal.userId, ip: principal.ip },
      subjectId: session.id,
      data: { asset: session.assetName, vendor: session.username },
    });
    wss.handleUpgrade(request, socket, head, (ws: WebSocket) => watch(ws, session.id));
  };

  /**
   * Tails the session's recording from PostgreSQL, so a watcher on any
   * replica sees any session; the lag is the recorder's flush interval plus
   * LIVE_POLL_MS. Read-only: nothing the watcher sends is looked at.
   */
  const watch = (ws: WebSocket, sessionId: string): void => {
    let afterSeq = 0;
    let stopped = false;
    ws.on('message', () => undefined);
    ws.on('error', () => ws.terminate());
    ws.once('close', () => {
      stopped = true;
    });
    const sendChunks = async (): Promise<number> => {
      const { rows } = await ctx.pool.query<{
        seq: number;
        kind: string;
        offset_ms: number;
        data: Buffer;
      }>(
        `select seq, kind, offset_ms, data from session_chunks
          where session_id = $1 and seq > $2 and channel = 0 and kind in ('o', 'r')
          order by seq limit 200`,
        [sessionId, afterSeq],
      );
      for (const row of rows) {
        // A watcher on a slow link is sent no more than it takes in (nothing is dropped).
        while (ws.bufferedAmount > LIVE_BUFFER_BYTES && !stopped)
          await new Promise((resolve) => setTimeout(resolve, 50));
        afterSeq = row.seq;
        for (const frame of decodeFrames(row.data, row.offset_ms)) {
          if (row.kind === 'o') {
            ws.send(frame.data, { binary: true });
            continue;
          }
          const match = /^(\d+)x(\d+)$/.exec(frame.data.toString('utf8'));
          if (match !== null)
            ws.send(
              JSON.stringify({ type: 'resize', cols: Number(match[1]), rows: Number(match[2]) }),
            );
        }
      }
      return rows.length;
    };
    const poll = async (): Promise<void> => {
      while (!stopped) {
        // Looked at before reading chunks: once a session has ended, its recording is complete.
        const { rows: ended } = await ctx.pool.query<{ end_reason: string | null }>(
          'select end_reason from sessions where id = $1 and ended_at is not null',
          [sessionId],
        );
        while ((await sendChunks()) === 200 && !stopped);
        const end = ended[0];
        if (end !== undefined) {
          ws.send(JSON.stringify({ type: 'ended', reason: end.end_reason }));
          ws.close(1000, 'session ended');
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, LIVE_POLL_MS));
      }
    };
    poll().catch((err: unknown) => {
      ctx.log.warn({ err, sessionId }, 'live view failed');
      ws.close(1011, 'live view failed');
    });
  };

  app.server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    // The connector hub answers its own upgrades on this server.
    if (isConnectorUpgradePath(url.pathname)) return;
    const terminal = TERMINAL_PATH.exec(url.pathname);
    const live = LIVE_PATH.exec(url.pathname);
    const opening =
      terminal?.[1] !== undefined
        ? openTerminal(request, socket, head, terminal[1], url)
        : live?.[1] !== undefined
          ? openLiveView(request, socket, head, live[1])
          : Promise.reject(new AppError('route.not_found'));
    opening.catch((err: unknown) => {
      if (!(err instanceof AppError)) ctx.log.error({ err }, 'websocket upgrade failed');
      refuse(socket, err);
    });
  });

  // Before the listener closes: it would otherwise wait for every open socket (live views).
  app.addHook('preClose', async () => {
    for (const client of wss.clients) client.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  });
}
