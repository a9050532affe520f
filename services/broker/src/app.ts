import cookie from '@fastify/cookie';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger } from 'fastify';
import type { BrokerContext } from './context.js';
import { assetRoutes } from './features/assets/routes.js';
import { auditRoutes } from './features/audit/routes.js';
import { authRoutes } from './features/auth/routes.js';
import { connectorRoutes } from './features/connectors/routes.js';
import { grantRoutes } from './features/grants/routes.js';
import { healthRoutes } from './features/health/routes.js';
import { requestRoutes } from './features/requests/routes.js';
import { sessionRoutes } from './features/sessions/routes.js';
import { userRoutes } from './features/users/routes.js';
import { zoneRoutes } from './features/zones/routes.js';
import { installWebSockets, type WebTerminals } from './features/terminal/websockets.js';
import { changesRoutes } from './http/changes.js';
import { consoleRoutes, CONSOLE_DIST_DIR, CONTENT_SECURITY_POLICY } from './http/console.js';
import type { App } from './http/app-types.js';
import { installErrorHandling } from './http/errors.js';
import { validatorCompiler } from './http/validation.js';

export const API_VERSION = '0.1.0';

/**
 * Builds the HTTP application without listening, so tests drive it with
 * `app.inject()` and the server entry point decides where it listens.
 */
export async function buildApp(
  ctx: BrokerContext,
  options: { terminals?: WebTerminals; consoleDir?: string | null } = {},
): Promise<App> {
  const logger: FastifyBaseLogger = ctx.log;
  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: ctx.config.bodyLimitBytes,
    trustProxy: false,
    return503OnClosing: true,
    ajv: { customOptions: { removeAdditional: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  // The API speaks JSON only. Fastify also parses text/plain by default (the
  // type a cross-site form may send without a CORS preflight); refusing it
  // gives a wrong content type its own clear error.
  app.removeContentTypeParser('text/plain');
  app.decorateRequest('principal', null);
  installErrorHandling(app, ctx.config.bodyLimitBytes);

  app.addHook('onResponse', async (request, reply) => {
    ctx.metrics.httpRequests.observe(
      {
        method: request.method,
        route: request.routeOptions.url ?? 'unmatched',
        status: String(reply.statusCode),
      },
      reply.elapsedTime / 1000,
    );
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    void reply.header('x-content-type-options', 'nosniff');
    void reply.header('cache-control', 'no-store');
    void reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
    void reply.header('x-frame-options', 'DENY');
    // same-origin, not no-referrer: with no-referrer some browsers send `Origin: null` on
    // same-origin POSTs, which the CSRF check would then refuse.
    void reply.header('referrer-policy', 'same-origin');
    void reply.header('cross-origin-opener-policy', 'same-origin');
    return payload;
  });

  await app.register(cookie);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Airlock API',
        version: API_VERSION,
        description: 'Secure remote access for OT: requests, approvals, grants, audit.',
      },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      },
      security: [{ bearer: [] }],
    },
  });

  healthRoutes(app, ctx);
  authRoutes(app, ctx);
  userRoutes(app, ctx);
  zoneRoutes(app, ctx);
  assetRoutes(app, ctx);
  connectorRoutes(app, ctx);
  requestRoutes(app, ctx);
  grantRoutes(app, ctx);
  auditRoutes(app, ctx);
  sessionRoutes(app, ctx);
  installWebSockets(app, ctx, options.terminals ?? null);
  changesRoutes(app, ctx);
  consoleRoutes(app, options.consoleDir === undefined ? CONSOLE_DIST_DIR : options.consoleDir);

  app.get('/api/v1/openapi.json', { schema: { hide: true } }, () => app.swagger());
  await app.ready();
  return app;
}
