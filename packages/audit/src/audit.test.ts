import { generateKeyPairSync } from 'node:crypto';
import { createPool, withTransaction } from '@airlock/db';
import { AppError, ManualClock, newId } from '@airlock/domain';
import { createTestDatabase, type TestDatabase } from '@airlock/test-support';
import { decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CanonicalJsonError } from './canonical-json.js';
import {
  computeEventHash,
  GENESIS_HASH,
  hashedFieldsOf,
  type AuditActor,
  type AuditEventInput,
  type AuditEventRecord,
} from './chain.js';
import type { AuditEventType } from './event-types.js';
import {
  AuditChainBrokenError,
  CHECKPOINT_JWS_TYPE,
  appendAuditEvent,
  appendAuditEventStandalone,
  createAuditCheckpoint,
  listAuditEvents,
  streamAuditEvents,
  verifyAuditTrail,
} from './index.js';

let db: TestDatabase;
const clock = new ManualClock('2024-05-01T08:00:00.123Z');
const { publicKey, privateKey } = generateKeyPairSync('ed25519');
const checkpointPublicKey = publicKey;

const userId = newId('user');
const connectorId = newId('connector');
const ACTORS: AuditActor[] = [
  { kind: 'user', id: userId, ip: '192.0.2.10' },
  { kind: 'anonymous', ip: '2001:db8::1' },
  { kind: 'system' },
  { kind: 'connector', id: connectorId, ip: '198.51.100.7' },
];
const TYPES: AuditEventType[] = [
  'user.login',
  'access_request.created',
  'session.command',
  'grant.revoked',
  'user.login_failed',
];

function pick<T>(list: readonly T[], i: number): T {
  const item = list[i % list.length];
  if (item === undefined) throw new Error('empty list');
  return item;
}

/** Varied events: every actor kind, null and set subjects, both outcomes, and data jsonb will reorder and reformat. */
function sampleEvent(i: number): AuditEventInput {
  return {
    type: pick(TYPES, i),
    actor: pick(ACTORS, i),
    subjectId: i % 3 === 0 ? null : `req_${String(i).padStart(20, '0')}`,
    outcome: i % 5 === 4 ? 'failure' : 'success',
    data: {
      n: i,
      zeta: 'last key first',
      nested: {
        list: [1, 2.5, -0.125, 1e21, 1e-7, 2 ** 53 - 1, 5e-324, { deep: 'ünïcödé 😀 中文 \u2028' }],
        flag: true,
        nothing: null,
      },
      text: `line\n"quoted"\t\\ ${i}`,
      'key with spaces': [],
      '': {},
    },
  };
}

async function appendMany(count: number): Promise<AuditEventRecord[]> {
  const records: AuditEventRecord[] = [];
  for (let i = 1; i <= count; i++) {
    clock.advance(1_001);
    records.push(await appendAuditEventStandalone(db.pool, sampleEvent(i), clock));
  }
  return records;
}

/** Runs SQL as the superuser with triggers off: what an attacker with database access can do. */
async function tamper(sql: string): Promise<void> {
  await db.superuserQuery(`set session_replication_role = replica; ${sql}`);
}

async function storedId(seq: number): Promise<string> {
  const { rows } = await db.superuserQuery('select id from audit_events where seq = $1', [seq]);
  return (rows as { id: string }[])[0]?.id ?? '(none)';
}

async function verify() {
  return verifyAuditTrail(db.pool, { checkpointPublicKey });
}

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db.drop();
});

beforeEach(async () => {
  await tamper('delete from audit_events; delete from audit_checkpoints');
});

describe('appending', () => {
  it('builds a chain of 50 varied events that verifies and reads back exactly as appended', async () => {
    const appended = await appendMany(50);

    expect(appended.map((e) => e.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(appended[0]?.prevHash).toBe(GENESIS_HASH);
    for (let i = 1; i < appended.length; i++)
      expect(appended[i]?.prevHash).toBe(appended[i - 1]?.hash);
    expect(appended[0]).toMatchObject({
      type: 'access_request.created',
      code: 'AL3000I',
      actorKind: 'anonymous',
      actorId: null,
      sourceIp: '2001:db8::1',
    });
    expect(appended[3]).toMatchObject({
      actorKind: 'user',
      actorId: userId,
      sourceIp: '192.0.2.10',
      outcome: 'failure',
    });
    expect(appended[1]).toMatchObject({ actorKind: 'system', actorId: null, sourceIp: null });

    // jsonb reorders keys and reformats numbers; the records must still be equal, timestamps to the millisecond.
    expect(await listAuditEvents(db.pool, { limit: 1000 })).toEqual(appended);
    const streamed: AuditEventRecord[] = [];
    for await (const event of streamAuditEvents(db.pool, { batchSize: 7 })) streamed.push(event);
    expect(streamed).toEqual(appended);
    expect(streamed[0]?.occurredAt.toISOString()).toBe('2024-05-01T08:00:01.124Z');

    const last = appended[49];
    expect(await verify()).toEqual({
      ok: true,
      events: 50,
      head: { seq: 50, hash: last?.hash },
      checkpoint: null,
    });
  });

  it('serialises 20 concurrent transactions into one gapless, valid chain', async () => {
    const pool = createPool({ connectionString: db.url, max: 25 });
    try {
      const subjects = Array.from({ length: 20 }, () => newId('grant'));
      await Promise.all(
        subjects.map((subjectId) =>
          withTransaction(pool, async (client) => {
            // Work before the append widens the window in which the transactions overlap.
            await client.query('select pg_sleep(0.02)');
            return appendAuditEvent(
              client,
              { type: 'grant.created', actor: { kind: 'system' }, subjectId },
              clock,
            );
          }),
        ),
      );
      const events = await listAuditEvents(db.pool, { limit: 100 });
      expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      expect(new Set(events.map((e) => e.subjectId))).toEqual(new Set(subjects));
      expect(await verify()).toMatchObject({ ok: true, events: 20 });
    } finally {
      await pool.end();
    }
  });

  it('leaves no event when the transaction rolls back, and the next append takes its seq', async () => {
    await appendMany(2);
    await expect(
      withTransaction(db.pool, async (client) => {
        await appendAuditEvent(
          client,
          { type: 'zone.created', actor: { kind: 'user', id: userId }, subjectId: newId('zone') },
          clock,
        );
        throw new Error('the zone insert failed');
      }),
    ).rejects.toThrow('the zone insert failed');
    expect(await listAuditEvents(db.pool, { type: 'zone.created' })).toEqual([]);

    const next = await appendAuditEventStandalone(
      db.pool,
      { type: 'system.started', actor: { kind: 'system' } },
      clock,
    );
    expect(next.seq).toBe(3);
    expect(await verify()).toMatchObject({ ok: true, events: 3 });
  });

  it('refuses to append outside a transaction', async () => {
    const client = await db.pool.connect();
    try {
      await expect(
        appendAuditEvent(client, { type: 'system.started', actor: { kind: 'system' } }, clock),
      ).rejects.toThrow(/inside a transaction/);
    } finally {
      client.release();
    }
    expect(await listAuditEvents(db.pool, {})).toEqual([]);
  });

  it('refuses to append in a REPEATABLE READ transaction, whose snapshot could hide the head', async () => {
    await expect(
      withTransaction(
        db.pool,
        (client) =>
          appendAuditEvent(client, { type: 'system.started', actor: { kind: 'system' } }, clock),
        {
          isolation: 'repeatable read',
        },
      ),
    ).rejects.toThrow(/READ COMMITTED/);
    expect(await listAuditEvents(db.pool, {})).toEqual([]);
  });

  it('refuses data that cannot be stored exactly, before writing anything', async () => {
    await appendMany(1);
    await expect(
      appendAuditEventStandalone(
        db.pool,
        { type: 'session.command', actor: { kind: 'system' }, data: { ratio: Number.NaN } },
        clock,
      ),
    ).rejects.toThrow(CanonicalJsonError);
    await expect(
      appendAuditEventStandalone(
        db.pool,
        { type: 'session.command', actor: { kind: 'system' }, data: { line: 'ls\u0000' } },
        clock,
      ),
    ).rejects.toThrow(CanonicalJsonError);
    await expect(
      appendAuditEventStandalone(
        db.pool,
        { type: 'no.such_type' as AuditEventType, actor: { kind: 'system' } },
        clock,
      ),
    ).rejects.toThrow(/Unknown audit event type/);
    expect(await verify()).toMatchObject({ ok: true, events: 1 });
  });

  it('drops undefined data members, so the record equals what is read back', async () => {
    const data = { kept: 1, dropped: undefined } as unknown as { [k: string]: number };
    const record = await appendAuditEventStandalone(
      db.pool,
      { type: 'user.updated', actor: { kind: 'system' }, data },
      clock,
    );
    expect(record.data).toEqual({ kept: 1 });
    expect(Object.keys(record.data)).toEqual(['kept']);
    expect(await verify()).toMatchObject({ ok: true });
  });
});

describe('the database itself', () => {
  it.each([
    ['UPDATE', "update audit_events set data = '{}'::jsonb where seq = 2"],
    ['DELETE', 'delete from audit_events where seq = 2'],
    ['TRUNCATE', 'truncate audit_events'],
    ['UPDATE of a checkpoint', "update audit_checkpoints set head_hash = repeat('0', 64)"],
    ['DELETE of a checkpoint', 'delete from audit_checkpoints'],
    ['TRUNCATE of checkpoints', 'truncate audit_checkpoints'],
  ])('refuses %s', async (_op, sql) => {
    const appended = await appendMany(3);
    expect(await createAuditCheckpoint(db.pool, { privateKey, clock })).toEqual({
      seq: 3,
      headHash: appended[2]?.hash,
    });
    await expect(db.pool.query(sql)).rejects.toThrow(/is not allowed/);
    expect(await listAuditEvents(db.pool, {})).toEqual(appended);
    expect(await verify()).toMatchObject({ ok: true, events: 3, checkpoint: { seq: 3 } });
  });
});

describe('listing and streaming', () => {
  it('filters by type, actor, subject, time and seq, in either order, a page at a time', async () => {
    const all = await appendMany(20);
    const seqs = (events: AuditEventRecord[]) => events.map((e) => e.seq);

    expect(seqs(await listAuditEvents(db.pool, { type: 'session.command' }))).toEqual([
      2, 7, 12, 17,
    ]);
    expect(seqs(await listAuditEvents(db.pool, { actorId: connectorId }))).toEqual([
      3, 7, 11, 15, 19,
    ]);
    expect(
      seqs(await listAuditEvents(db.pool, { subjectId: `req_${'5'.padStart(20, '0')}` })),
    ).toEqual([5]);
    const from = all[4]?.occurredAt;
    const to = all[7]?.occurredAt;
    expect(
      seqs(await listAuditEvents(db.pool, { ...(from && { from }), ...(to && { to }) })),
    ).toEqual([5, 6, 7]);
    expect(seqs(await listAuditEvents(db.pool, { afterSeq: 15, limit: 3 }))).toEqual([16, 17, 18]);
    expect(seqs(await listAuditEvents(db.pool, { order: 'desc', limit: 3 }))).toEqual([20, 19, 18]);
    expect(
      seqs(await listAuditEvents(db.pool, { order: 'desc', beforeSeq: 18, limit: 2 })),
    ).toEqual([17, 16]);
    expect(
      seqs(await listAuditEvents(db.pool, { actorId: connectorId, afterSeq: 7, limit: 2 })),
    ).toEqual([11, 15]);
    expect(await listAuditEvents(db.pool, {})).toHaveLength(20);
    await expect(listAuditEvents(db.pool, { limit: 0 })).rejects.toThrow(AppError);
    await expect(listAuditEvents(db.pool, { from: new Date('nonsense') })).rejects.toThrow(
      AppError,
    );
  });

  it('streams every event in seq order across batches, from any seq', async () => {
    await appendMany(23);
    const streamed: number[] = [];
    for await (const event of streamAuditEvents(db.pool, { batchSize: 5 }))
      streamed.push(event.seq);
    expect(streamed).toEqual(Array.from({ length: 23 }, (_, i) => i + 1));
    const tail: number[] = [];
    for await (const event of streamAuditEvents(db.pool, { fromSeq: 20, batchSize: 2 }))
      tail.push(event.seq);
    expect(tail).toEqual([20, 21, 22, 23]);
  });
});

describe('verification detects tampering', () => {
  const K = 16; // a user-actor event with a subject and a source address

  it('passes on an empty trail', async () => {
    expect(await verify()).toEqual({ ok: true, events: 0, head: null, checkpoint: null });
  });

  const oneByte = (column: string) =>
    `${column} = left(${column}, -1) || case when right(${column}, 1) = 'a' then 'b' else 'a' end`;

  it.each([
    [
      'a number in data',
      `data = jsonb_set(data, '{n}', to_jsonb((data->>'n')::int + 1))`,
      'hash_mismatch',
    ],
    [
      'a string deep in data',
      `data = jsonb_set(data, '{nested,list,7,deep}', '"ünïcödé 😀 中文 !"')`,
      'hash_mismatch',
    ],
    ['the type', oneByte('type'), 'hash_mismatch'],
    ['the code', `code = 'AL1001W'`, 'hash_mismatch'],
    [
      'occurred_at by a millisecond',
      `occurred_at = occurred_at + interval '1 millisecond'`,
      'hash_mismatch',
    ],
    [
      'occurred_at by a microsecond',
      `occurred_at = occurred_at + interval '1 microsecond'`,
      'hash_mismatch',
    ],
    ['the actor id', oneByte('actor_id'), 'hash_mismatch'],
    ['the actor kind', `actor_kind = 'connector'`, 'hash_mismatch'],
    ['the subject', oneByte('subject_id'), 'hash_mismatch'],
    ['the source address', oneByte('source_ip'), 'hash_mismatch'],
    [
      'the outcome',
      `outcome = case outcome when 'success' then 'failure' else 'success' end`,
      'hash_mismatch',
    ],
    ['the event id', oneByte('id'), 'hash_mismatch'],
    ['the stored hash', oneByte('hash'), 'hash_mismatch'],
    ['the stored prev_hash', oneByte('prev_hash'), 'prev_hash_mismatch'],
  ])('a change to %s names exactly that event', async (_what, assignment, reason) => {
    await appendMany(30);
    expect(await verify()).toMatchObject({ ok: true, events: 30 });

    await tamper(`update audit_events set ${assignment} where seq = ${K}`);

    const result = await verify();
    expect(result.ok).toBe(false);
    expect(result.firstBad).toMatchObject({ seq: K, id: await storedId(K), reason });
    expect(result.events).toBe(K - 1);
    expect(result.head?.seq).toBe(30);
  });

  it('an event deleted from the middle leaves a gap at its seq', async () => {
    await appendMany(30);
    await tamper(`delete from audit_events where seq = ${K}`);
    expect((await verify()).firstBad).toMatchObject({ seq: K, id: null, reason: 'seq_gap' });
  });

  it('an event deleted and the later ones renumbered breaks the link at its seq', async () => {
    await appendMany(30);
    const successorId = await storedId(K + 1);
    await tamper(
      `delete from audit_events where seq = ${K};
       update audit_events set seq = seq + 1000 where seq > ${K};
       update audit_events set seq = seq - 1001 where seq > 1000`,
    );
    expect((await verify()).firstBad).toMatchObject({
      seq: K,
      id: successorId,
      reason: 'prev_hash_mismatch',
    });
  });

  it('two events swapped are detected where the order changes', async () => {
    await appendMany(30);
    const laterId = await storedId(K + 1);
    await tamper(
      `update audit_events set seq = 100000 where seq = ${K};
       update audit_events set seq = ${K} where seq = ${K + 1};
       update audit_events set seq = ${K + 1} where seq = 100000`,
    );
    expect((await verify()).firstBad).toMatchObject({
      seq: K,
      id: laterId,
      reason: 'prev_hash_mismatch',
    });
  });

  it('a chain rewritten with recomputed hashes no longer matches the signed checkpoint', async () => {
    await appendMany(30);
    await createAuditCheckpoint(db.pool, { privateKey, clock });

    // The attacker knows the algorithm: change event K, then re-link everything after it.
    const events = await listAuditEvents(db.pool, { afterSeq: K - 1 });
    let prevHash = events[0]?.prevHash ?? GENESIS_HASH;
    const updates: string[] = [];
    for (const event of events) {
      const forged = {
        ...event,
        data: event.seq === K ? { ...event.data, n: 999 } : event.data,
        prevHash,
      };
      const hash = computeEventHash(prevHash, hashedFieldsOf(forged));
      updates.push(
        `update audit_events set data = '${JSON.stringify(forged.data).replace(/'/g, "''")}'::jsonb, prev_hash = '${prevHash}', hash = '${hash}' where seq = ${event.seq};`,
      );
      prevHash = hash;
    }
    await tamper(updates.join('\n'));

    expect((await verify()).firstBad).toMatchObject({
      seq: 30,
      id: await storedId(30),
      reason: 'checkpoint_mismatch',
    });
    // The forgery is internally consistent: only the checkpoint gives it away.
    await tamper('delete from audit_checkpoints');
    expect(await verify()).toMatchObject({ ok: true, events: 30 });
  });

  it('events deleted from the tail after a checkpoint are reported as truncation', async () => {
    await appendMany(30);
    await createAuditCheckpoint(db.pool, { privateKey, clock });
    await tamper('delete from audit_events where seq > 25');
    const result = await verify();
    expect(result).toMatchObject({ ok: false, events: 25, head: { seq: 25 } });
    expect(result.firstBad).toMatchObject({ seq: 26, id: null, reason: 'truncated' });

    await tamper('delete from audit_events');
    expect((await verify()).firstBad).toMatchObject({ seq: 1, id: null, reason: 'truncated' });
  });

  it('checks every checkpoint, not only the latest', async () => {
    await appendMany(10);
    await createAuditCheckpoint(db.pool, { privateKey, clock });
    await appendMany(10);
    await createAuditCheckpoint(db.pool, { privateKey, clock });
    expect(await verify()).toMatchObject({ ok: true, events: 20, checkpoint: { seq: 20 } });

    await tamper(
      `update audit_checkpoints set head_hash = (select hash from audit_events where seq = 9) where seq = 10`,
    );
    expect((await verify()).firstBad).toMatchObject({
      seq: 10,
      reason: 'checkpoint_signature_invalid',
    });
  });

  it('a checkpoint signed by another key is invalid', async () => {
    await appendMany(10);
    const other = generateKeyPairSync('ed25519');
    await createAuditCheckpoint(db.pool, { privateKey: other.privateKey, clock });
    const result = await verify();
    expect(result.firstBad).toMatchObject({
      seq: 10,
      id: await storedId(10),
      reason: 'checkpoint_signature_invalid',
    });
    expect(result.checkpoint).toBeNull();
  });

  it('a valid signature copied onto a forged checkpoint row is invalid', async () => {
    await appendMany(12);
    await createAuditCheckpoint(db.pool, { privateKey, clock });
    await tamper(
      `insert into audit_checkpoints (seq, head_hash, created_at, signature)
       select 40, head_hash, created_at, signature from audit_checkpoints where seq = 12`,
    );
    // Without the signature check this would read as truncation beyond seq 12.
    expect((await verify()).firstBad).toMatchObject({
      seq: 40,
      reason: 'checkpoint_signature_invalid',
    });
  });
});

describe('checkpoints', () => {
  it('signs the chain head once, as an EdDSA JWS of the checkpoint type', async () => {
    expect(await createAuditCheckpoint(db.pool, { privateKey, clock })).toBeNull();
    const first = await appendMany(5);
    expect(await createAuditCheckpoint(db.pool, { privateKey, clock })).toEqual({
      seq: 5,
      headHash: first[4]?.hash,
    });
    expect(await createAuditCheckpoint(db.pool, { privateKey, clock })).toBeNull();
    const more = await appendMany(3);
    expect(await createAuditCheckpoint(db.pool, { privateKey, clock })).toEqual({
      seq: 8,
      headHash: more[2]?.hash,
    });

    const { rows } = await db.superuserQuery(
      'select seq::int as seq, signature, created_at from audit_checkpoints order by seq',
    );
    const stored = rows as { seq: number; signature: string; created_at: Date }[];
    expect(stored.map((r) => r.seq)).toEqual([5, 8]);
    expect(decodeProtectedHeader(stored[1]?.signature ?? '')).toEqual({
      alg: 'EdDSA',
      typ: CHECKPOINT_JWS_TYPE,
    });
    expect(await verify()).toEqual({
      ok: true,
      events: 8,
      head: { seq: 8, hash: more[2]?.hash },
      checkpoint: { seq: 8, createdAt: stored[1]?.created_at.toISOString() },
    });
  });

  it('stores one checkpoint when two replicas checkpoint the same head at once', async () => {
    await appendMany(4);
    const results = await Promise.all([
      createAuditCheckpoint(db.pool, { privateKey, clock }),
      createAuditCheckpoint(db.pool, { privateKey, clock }),
    ]);
    expect(results.filter((r) => r !== null)).toHaveLength(1);
    const { rows } = await db.superuserQuery('select count(*)::int as n from audit_checkpoints');
    expect((rows as { n: number }[])[0]?.n).toBe(1);
  });

  it('refuses to sign a head whose chain does not extend the latest checkpoint', async () => {
    await appendMany(10);
    await createAuditCheckpoint(db.pool, { privateKey, clock });
    await appendMany(5);
    await tamper(`update audit_events set data = '{}'::jsonb where seq = 12`);
    await expect(createAuditCheckpoint(db.pool, { privateKey, clock })).rejects.toThrow(
      AuditChainBrokenError,
    );

    await tamper(`delete from audit_events where seq > 8`);
    await expect(createAuditCheckpoint(db.pool, { privateKey, clock })).rejects.toThrow(
      AuditChainBrokenError,
    );
    const { rows } = await db.superuserQuery('select seq::int as seq from audit_checkpoints');
    expect(rows).toEqual([{ seq: 10 }]);
  });

  it('refuses a key that is not an Ed25519 key of the right kind', async () => {
    await appendMany(1);
    await expect(createAuditCheckpoint(db.pool, { privateKey: publicKey, clock })).rejects.toThrow(
      /Ed25519 private key/,
    );
    await expect(verifyAuditTrail(db.pool, { checkpointPublicKey: privateKey })).rejects.toThrow(
      /Ed25519 public key/,
    );
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await expect(
      createAuditCheckpoint(db.pool, { privateKey: rsa.privateKey, clock }),
    ).rejects.toThrow(/Ed25519/);
  });
});
