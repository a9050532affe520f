import { createPool } from '@airlock/db';
import { ManualClock } from '@airlock/domain';
import pg from 'pg';
import { createJobRunner, scheduleJob } from './src/index.ts';

const server = 'postgres://postgres@127.0.0.1:5432/test';
const name = `airlock_exit_${process.pid}`;
const admin = new pg.Client({ connectionString: server });
await admin.connect();
const tpl = (await admin.query(`select datname from pg_database where datname like 'airlock_tpl_%' limit 1`)).rows[0]?.datname;
await admin.query(`create table if not exists _x(a int)`).catch(() => undefined);
await admin.end();
// use a migrated copy of the schema
const { migrate } = await import('@airlock/db');
const a2 = new pg.Client({ connectionString: server }); await a2.connect(); await a2.query(`create database ${name}`); await a2.end();
const pool = createPool({ connectionString: server.replace('/test', `/${name}`) });
await migrate(pool, new URL('../../migrations/', import.meta.url).pathname);
const clock = new ManualClock('2030-01-01T00:00:00Z');
const mode = process.argv[2];
const redisUrl = mode === 'bullmq' ? 'redis://127.0.0.1:6379' : mode === 'redis-down' ? 'redis://127.0.0.1:1' : undefined;
const logs: string[] = [];
const log = { info: () => undefined, warn: (o: object, m?: string) => logs.push(`warn ${m} ${JSON.stringify(o)}`), error: (o: object, m?: string) => logs.push(`error ${m} ${JSON.stringify(o)}`) };
const runner = createJobRunner({ pool, clock, redisUrl, queueName: `exit-check-${process.pid}`, log, pollIntervalMs: 50, handlers: { 'x.run': async () => undefined } });
process.on('unhandledRejection', (e) => { console.log('UNHANDLED', e); });
await runner.start();
await scheduleJob(pool, { kind: 'x.run', payload: {}, runAt: clock.now() }, clock);
const t = Date.now();
try { console.log('runDue ->', await runner.runDue()); } catch (e) { console.log('runDue threw after', Date.now() - t, 'ms:', (e as Error).message); }
console.log('state', (await pool.query('select state, attempts from jobs')).rows);
const c = Date.now();
await runner.close();
console.log('close took', Date.now() - c, 'ms; logs:', logs.length, logs.slice(0, 3));
await pool.end();
const a3 = new pg.Client({ connectionString: server }); await a3.connect(); await a3.query(`drop database ${name} with (force)`); await a3.end();
const exitStart = Date.now();
process.on('exit', () => console.log('exited', Date.now() - exitStart, 'ms after cleanup'));
