import { readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { App } from './app-types.js';

/** Where `pnpm --filter @airlock/console build` (run by `pnpm install`) puts the console. */
export const CONSOLE_DIST_DIR = fileURLToPath(
  new URL('../../../../packages/console/dist/', import.meta.url),
);

/**
 * Strict: scripts and everything else only from our own origin, nothing
 * inline, no plugins, no framing. `connect-src 'self'` covers the console's
 * own ws(s):// endpoints (CSP 3). Styles allow 'unsafe-inline' because the
 * terminal (xterm.js) writes its colours into a <style> element it creates;
 * no script can run from a style.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
  '.json': 'application/json',
};

/** Built asset names only: no path separators, so nothing outside dist/assets is reachable. */
const ASSET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * Serves the console's single-page app: `/` is the app (it routes by the URL
 * fragment), `/assets/<file>` its built files. Every response of the broker
 * carries the security headers (see app.ts).
 */
export function consoleRoutes(app: App, dir: string | null): void {
  if (dir === null) return;
  app.get('/', { schema: { hide: true } }, async (_request, reply) => {
    let html: Buffer;
    try {
      html = await readFile(join(dir, 'index.html'));
    } catch {
      return reply
        .status(503)
        .type('text/plain; charset=utf-8')
        .send(
          'The web console is not built. Run `pnpm install` (which builds it) or `pnpm build:console`.\n',
        );
    }
    return reply.type('text/html; charset=utf-8').send(html);
  });
  app.get<{ Params: { file: string } }>(
    '/assets/:file',
    { schema: { hide: true } },
    async (request, reply) => {
      const { file } = request.params;
      const type = TYPES[extname(file)];
      if (!ASSET_NAME.test(file) || type === undefined)
        return reply.status(404).type('text/plain').send('not found\n');
      try {
        return reply.type(type).send(await readFile(join(dir, 'assets', file)));
      } catch {
        return reply.status(404).type('text/plain').send('not found\n');
      }
    },
  );
}
