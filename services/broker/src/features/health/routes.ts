import { Type } from 'typebox';
import type { BrokerContext } from '../../context.js';
import type { App } from '../../http/app-types.js';

export function healthRoutes(app: App, ctx: BrokerContext): void {
  app.get(
    '/healthz',
    {
      schema: {
        tags: ['health'],
        summary: 'Liveness: the process answers',
        response: { 200: Type.Object({ status: Type.Literal('ok') }) },
      },
    },
    () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['health'],
        summary: 'Readiness: the database (and Redis, when configured) answer',
        response: {
          200: Type.Object({
            status: Type.String(),
            checks: Type.Record(Type.String(), Type.String()),
          }),
          503: Type.Object({
            status: Type.String(),
            checks: Type.Record(Type.String(), Type.String()),
          }),
        },
      },
    },
    async (_request, reply) => {
      const checks: Record<string, string> = {};
      let ok = true;
      try {
        await ctx.pool.query('select 1');
        checks.database = 'ok';
      } catch {
        checks.database = 'unreachable';
        ok = false;
      }
      const jobs = await ctx.readiness();
      checks.jobs = jobs.detail;
      ok &&= jobs.ok;
      return reply.status(ok ? 200 : 503).send({ status: ok ? 'ready' : 'not_ready', checks });
    },
  );

  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) =>
    reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics()),
  );
}
