#!/usr/bin/env node
import { ConfigError, loadConfig } from '@airlock/config';
import { startBroker } from './server.js';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => a !== '--demo');
  if (unknown.length > 0) {
    process.stderr.write(
      `usage: airlock-broker [--demo]\nunknown argument: ${unknown.join(' ')}\n`,
    );
    process.exit(2);
  }
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const broker = await startBroker({ config, demo: args.includes('--demo') });
  const stop = (signal: string): void => {
    broker.ctx.log.info({ signal }, 'shutting down');
    broker
      .close(signal)
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        broker.ctx.log.error({ err }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(
    `airlock: failed to start: ${err instanceof Error ? err.message : String(err)}\n`,
  );
  process.exit(1);
});

// A stray rejection must not take every live session on this replica down
// with it; it is logged for operators (the failing session ends on its own).
process.on('unhandledRejection', (reason) => {
  process.stderr.write(
    `airlock: unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}\n`,
  );
});
