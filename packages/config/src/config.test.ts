import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './index.js';

describe('loadConfig', () => {
  it('uses the documented defaults', () => {
    const c = loadConfig({});
    expect(c.httpPort).toBe(8080);
    expect(c.sshPort).toBe(2222);
    expect(c.bind).toBe('127.0.0.1');
    expect(c.databaseUrl).toBeNull();
    expect(c.redisUrl).toBeNull();
    expect(c.totpRequiredRoles).toEqual(['admin', 'approver']);
    expect(c.bulkMiBpsWhileInteractive).toBe(16);
    expect(c.webhookAllowedCidrs).toEqual([]);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('reports every problem at once', () => {
    try {
      loadConfig({
        AIRLOCK_HTTP_PORT: 'eighty',
        AIRLOCK_LOCKOUT_THRESHOLD: '0',
        DATABASE_URL: 'mysql://x',
        AIRLOCK_BULK_MIBPS_WHILE_INTERACTIVE: '-1',
        AIRLOCK_WEBHOOK_ALLOWED_CIDRS: '10.20.0.0/16, siem.plant, 10.0.0.0/40, 10.0.0.0/8/x',
      });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems).toHaveLength(5);
      expect((err as ConfigError).problems.at(-1)).toContain(
        'siem.plant, 10.0.0.0/40, 10.0.0.0/8/x',
      );
    }
  });

  it('reads the ranges webhooks may reach inside the plant', () => {
    const c = loadConfig({ AIRLOCK_WEBHOOK_ALLOWED_CIDRS: '10.20.0.0/16, 192.168.7.5,fd00::/8' });
    expect(c.webhookAllowedCidrs).toEqual(['10.20.0.0/16', '192.168.7.5', 'fd00::/8']);
  });

  it('reads secrets from *_FILE and never prints them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'airlock-cfg-'));
    await writeFile(join(dir, 'pw'), 'correct horse battery staple\n');
    const c = loadConfig({ AIRLOCK_ADMIN_PASSWORD_FILE: join(dir, 'pw') });
    expect(c.adminPassword?.reveal()).toBe('correct horse battery staple');
    expect(JSON.stringify(c)).not.toContain('horse');
  });

  it('refuses a secret given twice', () => {
    expect(() => loadConfig({ AIRLOCK_MASTER_KEY: 'a', AIRLOCK_MASTER_KEY_FILE: '/x' })).toThrow(
      /both set/,
    );
  });
});
