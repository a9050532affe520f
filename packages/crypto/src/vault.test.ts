import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { Vault, generateMasterKey, parseMasterKey } from './index.js';

const AAD = 'asset:ast_0123456789abcdefghjk:credential';

describe('Vault', () => {
  const vault = new Vault(parseMasterKey(generateMasterKey()));

  it('round-trips strings and bytes', () => {
    const sealed = vault.seal('s3cr3t-Pa55', AAD);
    expect(vault.openString(sealed, AAD).reveal()).toBe('s3cr3t-Pa55');
    const bytes = Buffer.from([0, 1, 2, 255]);
    expect(vault.open(vault.seal(bytes, AAD), AAD).reveal().equals(bytes)).toBe(true);
    expect(vault.openString(vault.seal('', AAD), AAD).reveal()).toBe('');
    expect(vault.openString(vault.seal('päss ✓', AAD), AAD).reveal()).toBe('päss ✓');
  });

  it('writes version 1 | 12-byte nonce | ciphertext | 16-byte tag, with a fresh nonce each time', () => {
    const a = vault.seal('password', AAD);
    const b = vault.seal('password', AAD);
    expect(a[0]).toBe(1);
    expect(a).toHaveLength(1 + 12 + 8 + 16);
    expect(a.subarray(1, 13).equals(b.subarray(1, 13))).toBe(false);
    expect(a.equals(b)).toBe(false);
    expect(a.includes(Buffer.from('password'))).toBe(false);
  });

  it('does not open under another owner (AAD)', () => {
    const sealed = vault.seal('password', AAD);
    expect(() => vault.open(sealed, 'asset:ast_zzzzzzzzzzzzzzzzzzzz:credential')).toThrow(
      /^vault: cannot open sealed value$/,
    );
    expect(() => vault.open(sealed, '')).toThrow(/^vault: cannot open sealed value$/);
  });

  it('detects a change to any byte', () => {
    const sealed = vault.seal('password', AAD);
    for (let i = 0; i < sealed.length; i++) {
      const tampered = Buffer.from(sealed);
      tampered[i]! ^= 0x01;
      expect(() => vault.open(tampered, AAD), `byte ${i}`).toThrow(
        /^vault: cannot open sealed value$/,
      );
    }
  });

  it('refuses truncated and empty input', () => {
    const sealed = vault.seal('password', AAD);
    for (const bad of [
      Buffer.alloc(0),
      sealed.subarray(0, 28),
      sealed.subarray(0, sealed.length - 1),
    ]) {
      expect(() => vault.open(bad, AAD)).toThrow(/^vault: cannot open sealed value$/);
    }
  });

  it('does not open under another master key', () => {
    const sealed = vault.seal('password', AAD);
    const other = new Vault(parseMasterKey(generateMasterKey()));
    expect(() => other.open(sealed, AAD)).toThrow(/^vault: cannot open sealed value$/);
  });

  it('opens under the same master key on another instance (another replica)', () => {
    const key = generateMasterKey();
    const sealed = new Vault(parseMasterKey(key)).seal('password', AAD);
    expect(new Vault(parseMasterKey(key)).openString(sealed, AAD).reveal()).toBe('password');
  });

  it('gives a Secret that never prints the plaintext', () => {
    const opened = vault.openString(vault.seal('hunter2', AAD), AAD);
    expect(String(opened)).toBe('<redacted>');
    expect(JSON.stringify({ credential: opened })).toBe('{"credential":"<redacted>"}');
    expect(inspect(opened)).not.toContain('hunter2');
    expect(inspect({ opened }, { depth: 5 })).not.toContain('hunter2');
    expect(inspect(vault, { depth: 5, showHidden: true })).not.toContain('<Buffer');
  });
});
