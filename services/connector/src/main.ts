#!/usr/bin/env -S npx tsx
/**
 * airlock-connector: the agent inside an OT zone. Enrols once with its
 * one-time token, then dials out to the broker (and every replica it learns
 * of) and carries approved sessions to its zone's assets.
 *
 * Prints `airlock-connector ready connector=<id> zone=<id>` once its first
 * control link is up, and `airlock-connector linked <url>` for every link.
 */
import { join } from 'node:path';
import { pino } from 'pino';
import { ConnectorAgent } from './agent.js';
import { ConnectorAuditLog } from './audit-log.js';
import { ConnectorConfigError, loadConnectorConfig, USAGE, wantsHelp } from './config.js';
import {
  discardStoredEnrollmentToken,
  enroll,
  EnrollmentError,
  ensureDataDir,
  loadIdentity,
  storedEnrollmentToken,
  type ConnectorIdentity,
} from './identity.js';
import { tlsOptions } from './tls.js';
import { CONNECTOR_VERSION } from './version.js';

const print = (line: string): void => void process.stdout.write(`${line}\n`);

async function main(): Promise<number> {
  if (wantsHelp()) {
    print(USAGE);
    return 0;
  }
  let config;
  try {
    config = loadConnectorConfig();
  } catch (err) {
    if (!(err instanceof ConnectorConfigError)) throw err;
    process.stderr.write(`airlock-connector: ${err.message}\n${USAGE}\n`);
    return 2;
  }
  const log = pino({
    level: config.logLevel,
    base: { service: 'airlock-connector' },
    redact: ['*.token', '*.assertion', '*.grantToken', 'headers.authorization'],
  });
  ensureDataDir(config.dataDir);
  const auditLog = new ConnectorAuditLog(join(config.dataDir, 'audit.log'));
  const tls = tlsOptions(config);

  let identity: ConnectorIdentity | null = loadIdentity(config.dataDir);
  if (identity === null) {
    const token = config.enrollmentToken ?? storedEnrollmentToken(config.dataDir);
    if (token === null) {
      process.stderr.write(
        `airlock-connector: not enrolled yet: pass --enroll <token> (from POST /api/v1/connectors)\n${USAGE}\n`,
      );
      return 2;
    }
    try {
      identity = await enroll({
        dataDir: config.dataDir,
        brokerUrl: config.brokerUrl,
        token,
        version: CONNECTOR_VERSION,
        tls,
      });
    } catch (err) {
      const message = err instanceof EnrollmentError ? err.message : (err as Error).message;
      auditLog.append('connector.enrollment_refused', {
        broker: config.brokerUrl.href,
        code: err instanceof EnrollmentError ? err.code : null,
        detail: message,
      });
      process.stderr.write(`airlock-connector: ${message}\n`);
      return 1;
    }
    discardStoredEnrollmentToken(config.dataDir);
    auditLog.append('connector.enrolled', {
      connectorId: identity.connectorId,
      zoneId: identity.zoneId,
      broker: config.brokerUrl.href,
    });
    print(`airlock-connector: enrolled as ${identity.name} (${identity.connectorId})`);
  } else if (config.enrollmentToken !== null) {
    log.warn(
      'already enrolled: the enrolment token is ignored (remove the data dir to enrol again)',
    );
  }

  let ready = false;
  const enrolled = identity;
  const agent = new ConnectorAgent({
    identity: enrolled,
    brokerUrl: config.brokerUrl,
    tls,
    log,
    auditLog,
    version: CONNECTOR_VERSION,
    backoffInitialMs: config.backoffInitialMs,
    backoffMaxMs: config.backoffMaxMs,
    onLinked: (url) => {
      if (!ready) {
        ready = true;
        print(`airlock-connector ready connector=${enrolled.connectorId} zone=${enrolled.zoneId}`);
      }
      print(`airlock-connector linked ${url}`);
    },
  });
  agent.start();

  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      log.info({ signal }, 'stopping');
      agent.stop();
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}

main().then(
  (code) => {
    // Give close frames a moment to leave, then exit whatever still holds the loop.
    setTimeout(() => process.exit(code), code === 0 ? 200 : 0).unref();
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`airlock-connector: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
