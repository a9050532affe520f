import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isAppError } from '@airlock/domain';
import { parseSshPublicKey } from './index.js';

const SSH_KEYGEN = '/usr/bin/ssh-keygen';
const dir = mkdtempSync(join(tmpdir(), 'airlock-ssh-keys-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let counter = 0;
/** A fresh key pair from the real ssh-keygen; returns the .pub line. */
function keygen(type: string, bits?: number, comment = 'jane@laptop'): string {
  const file = join(dir, `key${counter++}`);
  const args = [
    '-t',
    type,
    '-N',
    '',
    '-C',
    comment,
    '-f',
    file,
    '-q',
    ...(bits === undefined ? [] : ['-b', String(bits)]),
  ];
  execFileSync(SSH_KEYGEN, args, { stdio: 'ignore' });
  return readFileSync(`${file}.pub`, 'utf8');
}

/** The fingerprint `ssh-keygen -lf` prints for a public key line. */
function keygenFingerprint(line: string): string {
  const file = join(dir, `fp${counter++}.pub`);
  writeFileSync(file, line);
  const out = execFileSync(SSH_KEYGEN, ['-lf', file], { encoding: 'utf8' });
  const fingerprint = out.split(' ')[1];
  if (fingerprint === undefined) throw new Error(`unexpected ssh-keygen output: ${out}`);
  return fingerprint;
}

/** RFC 4251 §5 `string`. */
function sshString(value: string | Buffer): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value) : value;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/** Splits a blob into its RFC 4251 strings (enough for the keys built here). */
function sshStrings(blob: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let offset = 0; offset < blob.length;) {
    const length = blob.readUInt32BE(offset);
    out.push(blob.subarray(offset + 4, offset + 4 + length));
    offset += 4 + length;
  }
  return out;
}

function blobOf(line: string): Buffer {
  return Buffer.from(line.split(' ')[1] ?? '', 'base64');
}

function errorOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}

function expectInvalid(line: string, detail?: RegExp): void {
  const err = errorOf(() => parseSshPublicKey(line));
  expect(isAppError(err, 'ssh_key.invalid'), String(err)).toBe(true);
  if (detail !== undefined) expect((err as Error).message).toMatch(detail);
}

function expectUnsupported(line: string, algorithm: string): void {
  const err = errorOf(() => parseSshPublicKey(line));
  expect(isAppError(err, 'ssh_key.unsupported_algorithm'), String(err)).toBe(true);
  expect((err as { params: Record<string, unknown> }).params.algorithm).toBe(algorithm);
}

describe('parseSshPublicKey with keys from ssh-keygen', () => {
  const cases: readonly [type: string, bits: number | undefined, algorithm: string][] = [
    ['ed25519', undefined, 'ssh-ed25519'],
    ['ecdsa', 256, 'ecdsa-sha2-nistp256'],
    ['ecdsa', 384, 'ecdsa-sha2-nistp384'],
    ['ecdsa', 521, 'ecdsa-sha2-nistp521'],
    ['rsa', 2048, 'ssh-rsa'],
    ['rsa', 3072, 'ssh-rsa'],
  ];

  it.each(cases)(
    '%s %s: parses and matches the fingerprint of ssh-keygen -lf',
    (type, bits, algorithm) => {
      const line = keygen(type, bits);
      const key = parseSshPublicKey(line);
      expect(key.algorithm).toBe(algorithm);
      expect(key.comment).toBe('jane@laptop');
      expect(key.fingerprint).toBe(keygenFingerprint(line));
      expect(key.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
      expect(key.normalized).toBe(line.trim().split(' ').slice(0, 2).join(' '));
      expect(key.blob.equals(blobOf(line))).toBe(true);
    },
  );

  it('keeps a comment with spaces, accepts no comment, and normalises the same key alike', () => {
    const line = keygen('ed25519', undefined, 'Jane Doe (plant A)');
    const withComment = parseSshPublicKey(`  ${line}`);
    expect(withComment.comment).toBe('Jane Doe (plant A)');
    const bare = parseSshPublicKey(withComment.normalized);
    expect(bare.comment).toBe('');
    expect(bare.fingerprint).toBe(withComment.fingerprint);
    expect(parseSshPublicKey(withComment.normalized.replace(' ', '\t')).fingerprint).toBe(
      withComment.fingerprint,
    );
  });

  it('accepts FIDO security keys (sk-ssh-ed25519, sk-ecdsa-sha2-nistp256) with the ssh-keygen fingerprint', () => {
    // No authenticator in CI: build the public blobs as OpenSSH PROTOCOL.u2f defines them from real keys.
    const ed = sshStrings(blobOf(keygen('ed25519')));
    const skEd = Buffer.concat([
      sshString('sk-ssh-ed25519@openssh.com'),
      sshString(ed[1]!),
      sshString('ssh:'),
    ]);
    const ec = sshStrings(blobOf(keygen('ecdsa', 256)));
    const skEc = Buffer.concat([
      sshString('sk-ecdsa-sha2-nistp256@openssh.com'),
      sshString('nistp256'),
      sshString(ec[2]!),
      sshString('ssh:'),
    ]);
    for (const [algorithm, blob] of [
      ['sk-ssh-ed25519@openssh.com', skEd],
      ['sk-ecdsa-sha2-nistp256@openssh.com', skEc],
    ] as const) {
      const line = `${algorithm} ${blob.toString('base64')} yubikey`;
      const key = parseSshPublicKey(line);
      expect(key.algorithm).toBe(algorithm);
      expect(key.fingerprint).toBe(keygenFingerprint(line));
    }
  });
});

describe('parseSshPublicKey refuses', () => {
  it('RSA keys below 2048 bits', () => {
    expectInvalid(keygen('rsa', 1024), /at least 2048 bits \(this one has 1024\)/);
  });

  it('ssh-dss', () => {
    // Built by hand (RFC 4253 §6.6: string "ssh-dss", mpint p, q, g, y): newer OpenSSH cannot make DSA keys.
    const mpint = (bytes: number): Buffer => sshString(Buffer.alloc(bytes, 0x41));
    const blob = Buffer.concat([
      sshString('ssh-dss'),
      mpint(128),
      mpint(20),
      mpint(128),
      mpint(128),
    ]);
    expectUnsupported(`ssh-dss ${blob.toString('base64')} old@box`, 'ssh-dss');
  });

  it('other algorithms and certificates', () => {
    const ed = blobOf(keygen('ed25519'));
    const cert = Buffer.concat([sshString('ssh-ed25519-cert-v01@openssh.com'), ed.subarray(15)]);
    expectUnsupported(
      `ssh-ed25519-cert-v01@openssh.com ${cert.toString('base64')}`,
      'ssh-ed25519-cert-v01@openssh.com',
    );
  });

  it('garbage', () => {
    for (const line of [
      '',
      '   ',
      'hello',
      'hello world',
      'ssh-ed25519',
      'ssh-ed25519 !!!notbase64!!!',
      'ssh-ed25519 AAAA',
    ]) {
      expectInvalid(line);
    }
    expectInvalid(
      '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----',
    );
  });

  it('an algorithm inside the blob that differs from the one outside', () => {
    const ed = keygen('ed25519').trim().split(' ')[1]!;
    expectInvalid(`ssh-rsa ${ed}`, /does not match/);
    expectInvalid(`ecdsa-sha2-nistp256 ${ed}`, /does not match/);
    const p256 = keygen('ecdsa', 256).trim().split(' ')[1]!;
    expectInvalid(`ecdsa-sha2-nistp384 ${p256}`, /does not match/);
    // Same outer and inner name, but the curve field says another curve.
    const parts = sshStrings(Buffer.from(p256, 'base64'));
    const wrongCurve = Buffer.concat([
      sshString('ecdsa-sha2-nistp256'),
      sshString('nistp384'),
      sshString(parts[2]!),
    ]);
    expectInvalid(`ecdsa-sha2-nistp256 ${wrongCurve.toString('base64')}`, /curve/);
  });

  it('authorized_keys options before the key', () => {
    const line = keygen('ed25519');
    expectInvalid(`no-pty ${line}`, /options/);
    expectInvalid(`from="10.0.0.1",command="/bin/sh -i" ${line}`, /options/);
  });

  it('more than one line', () => {
    const line = keygen('ed25519').trim();
    expectInvalid(`${line}\n${line}`, /single line/);
  });

  it('trailing bytes, truncation, bad points and non-minimal integers', () => {
    const ed = blobOf(keygen('ed25519'));
    expectInvalid(
      `ssh-ed25519 ${Buffer.concat([ed, Buffer.from([0])]).toString('base64')}`,
      /trailing/,
    );
    expectInvalid(
      `ssh-ed25519 ${ed.subarray(0, ed.length - 1).toString('base64')}`,
      /truncated|32 bytes/,
    );

    const ec = sshStrings(blobOf(keygen('ecdsa', 256)));
    const point = Buffer.from(ec[2]!);
    point[point.length - 1]! ^= 0x01; // almost surely off the curve
    const offCurve = Buffer.concat([
      sshString('ecdsa-sha2-nistp256'),
      sshString('nistp256'),
      sshString(point),
    ]);
    expectInvalid(`ecdsa-sha2-nistp256 ${offCurve.toString('base64')}`, /not valid/);
    const compressed = Buffer.concat([Buffer.from([0x02]), ec[2]!.subarray(1, 33)]);
    const compressedBlob = Buffer.concat([
      sshString('ecdsa-sha2-nistp256'),
      sshString('nistp256'),
      sshString(compressed),
    ]);
    expectInvalid(`ecdsa-sha2-nistp256 ${compressedBlob.toString('base64')}`, /uncompressed/);

    const rsa = sshStrings(blobOf(keygen('rsa', 2048)));
    const paddedE = Buffer.concat([Buffer.from([0]), rsa[1]!]); // e = 0x010001 with a needless leading zero
    const nonMinimal = Buffer.concat([
      sshString('ssh-rsa'),
      sshString(paddedE),
      sshString(rsa[2]!),
    ]);
    expectInvalid(`ssh-rsa ${nonMinimal.toString('base64')}`, /minimally/);
  });
});
