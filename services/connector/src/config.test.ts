import { describe, expect, it } from 'vitest';
import { backoffDelay } from './agent.js';
import { ConnectorConfigError, loadConnectorConfig } from './config.js';

describe('connector configuration', () => {
  it('reads flags before environment variables, and defaults to the local broker', () => {
    const config = loadConnectorConfig(
      ['--broker', 'https://broker.example:8443', '--enroll', 't1'],
      {
        AIRLOCK_CONNECTOR_BROKER_URL: 'https://other.example',
        AIRLOCK_CONNECTOR_DATA_DIR: '/var/lib/airlock-connector',
      },
    );
    expect(config.brokerUrl.href).toBe('https://broker.example:8443/');
    expect(config.enrollmentToken).toBe('t1');
    expect(config.dataDir).toBe('/var/lib/airlock-connector');
    expect(Object.isFrozen(config)).toBe(true);
    expect(loadConnectorConfig([], {}).brokerUrl.href).toBe('http://127.0.0.1:8080/');
  });

  it('refuses plain http off loopback, a bad pin, TLS options on http, and reports every problem at once', () => {
    let err: unknown;
    try {
      loadConnectorConfig(
        ['--broker', 'http://broker.example:8080', '--pin-sha256', 'nope', '--bogus'],
        {
          AIRLOCK_CONNECTOR_BACKOFF_MAX_MS: '5',
        },
      );
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConnectorConfigError);
    const problems = (err as ConnectorConfigError).problems.join('\n');
    expect(problems).toContain('--bogus');
    // parseArgs stops at the unknown flag, so check the rest separately.
    expect(() => loadConnectorConfig(['--broker', 'http://broker.example:8080'], {})).toThrow(
      /loopback/,
    );
    expect(() =>
      loadConnectorConfig(['--broker', 'https://b.example', '--pin-sha256', 'AB:CD'], {}),
    ).toThrow(/SHA-256 fingerprint/);
    expect(() =>
      loadConnectorConfig(['--broker', 'http://127.0.0.1:8080', '--ca-file', '/etc/ca.pem'], {}),
    ).toThrow(/https/);
    expect(() => loadConnectorConfig([], { AIRLOCK_CONNECTOR_BACKOFF_MAX_MS: '5' })).toThrow(
      /BACKOFF_MAX_MS/,
    );
  });
});

describe('reconnect backoff', () => {
  it('grows exponentially with jitter between half and all of the step, up to the ceiling', () => {
    for (let attempt = 0; attempt < 12; attempt++) {
      const ceiling = Math.min(30_000, 500 * 2 ** attempt);
      for (let i = 0; i < 50; i++) {
        const delay = backoffDelay(attempt, 500, 30_000);
        expect(delay).toBeGreaterThanOrEqual(ceiling / 2);
        expect(delay).toBeLessThanOrEqual(ceiling);
      }
    }
    const spread = new Set(Array.from({ length: 50 }, () => backoffDelay(5, 500, 30_000)));
    expect(spread.size).toBeGreaterThan(10);
  });
});
