import type { ServerResponse } from 'node:http';
import type { BrokerContext } from '../context.js';
import type { App } from './app-types.js';
import { authenticate } from './authenticate.js';

/** How often the replica looks at the head of the audit trail for its subscribers. */
export const CHANGES_POLL_MS = 1000;
const KEEPALIVE_MS = 25_000;

/**
 * `GET /api/v1/changes`: a Server-Sent Events stream that says "something
 * changed" whenever the audit trail grows. Every change the console lists
 * (requests, approvals, grants, revocations, sessions) writes an audit event
 * in its own transaction, so the head of the trail is a change counter that
 * works across replicas. One query a second per replica, however many
 * subscribers; the event carries no data, the console then reloads what it
 * shows through the API (so visibility rules apply as always).
 */
export function changesRoutes(app: App, ctx: BrokerContext): void {
  const subscribers = new Set<ServerResponse>();
  let head: number | null = null;
  let timer: NodeJS.Timeout | null = null;

  const poll = async (): Promise<void> => {
    const { rows } = await ctx.pool.query<{ seq: string | null }>(
      'select max(seq)::text as seq from audit_events',
    );
    const seq = Number(rows[0]?.seq ?? 0);
    if (head !== null && seq !== head) {
      for (const res of subscribers) res.write('event: changed\ndata: {}\n\n');
    }
    head = seq;
  };
  const start = (): void => {
    if (timer !== null) return;
    timer = setInterval(() => {
      poll().catch((err: unknown) =>
        ctx.log.warn({ err: (err as Error).message }, 'change feed poll failed'),
      );
    }, CHANGES_POLL_MS);
    timer.unref();
  };
  const stopIfIdle = (): void => {
    if (subscribers.size > 0 || timer === null) return;
    clearInterval(timer);
    timer = null;
    head = null;
  };

  app.get(
    '/api/v1/changes',
    {
      onRequest: authenticate(ctx),
      schema: {
        tags: ['console'],
        summary:
          'Server-Sent Events: `changed` whenever requests, grants or sessions may have changed',
      },
    },
    async (_request, reply) => {
      // The baseline is taken before `ready`: the client loads on `ready`, so a change
      // between that baseline and the next poll is either in what it loads or announced.
      if (head === null) await poll();
      void reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
        connection: 'keep-alive',
      });
      res.write('event: ready\ndata: {}\n\n');
      subscribers.add(res);
      start();
      const keepalive = setInterval(() => res.write(': keep-alive\n\n'), KEEPALIVE_MS);
      keepalive.unref();
      // The response's close: the connection went (the request's fires once it is read).
      res.once('close', () => {
        clearInterval(keepalive);
        subscribers.delete(res);
        stopIfIdle();
      });
    },
  );

  // Before the listener closes: it would otherwise wait for every open stream.
  app.addHook('preClose', (done) => {
    for (const res of subscribers) res.end();
    subscribers.clear();
    stopIfIdle();
    done();
  });
}
