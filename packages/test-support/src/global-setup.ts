/**
 * Vitest global setup: finds (or starts) the PostgreSQL and Redis servers the
 * suite needs, and prepares a migrated template database that each test file
 * clones. Uses DATABASE_URL / REDIS_URL when set; otherwise starts an embedded
 * PostgreSQL and a `redis-server` from PATH. When a server cannot be had, the
 * tests that need it fail loudly (see database.ts, redis.ts) — never pass silently.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createPool,
  freePort,
  migrate,
  startEmbeddedPostgres,
  type EmbeddedDatabase,
} from '@airlock/db';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { MIGRATIONS_DIR } from './paths.js';

declare module 'vitest' {
  export interface ProvidedContext {
    airlockDatabaseUrl: string;
    airlockTemplateDatabase: string;
    airlockRedisUrl: string;
    airlockRedisProblem: string;
  }
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

async function startRedis(): Promise<{ url: string; child: ChildProcess } | { problem: string }> {
  const port = await freePort();
  return new Promise((resolve) => {
    const child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child.once('error', (err) =>
      resolve({
        problem: `REDIS_URL is unset and redis-server could not be started: ${err.message}`,
      }),
    );
    child.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('Ready to accept connections'))
        resolve({ url: `redis://127.0.0.1:${port}`, child });
    });
  });
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const cleanups: (() => Promise<void>)[] = [];
  let serverUrl = process.env.DATABASE_URL;
  if (serverUrl === undefined || serverUrl === '') {
    const dir = await mkdtemp(join(tmpdir(), 'airlock-test-pg-'));
    const embedded: EmbeddedDatabase = await startEmbeddedPostgres({
      dataDir: dir,
      database: 'postgres',
    });
    serverUrl = embedded.connectionString;
    cleanups.push(async () => {
      await embedded.stop();
      await rm(dir, { recursive: true, force: true });
    });
  }

  const template = `airlock_tpl_${process.pid}_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`create database ${template}`);
  const pool = createPool({ connectionString: withDatabase(serverUrl, template), max: 2 });
  try {
    await migrate(pool, MIGRATIONS_DIR);
  } finally {
    await pool.end();
  }
  cleanups.unshift(async () => {
    await admin.query(`drop database if exists ${template} with (force)`);
    await admin.end();
  });

  let redisUrl = process.env.REDIS_URL ?? '';
  let redisProblem = '';
  if (redisUrl === '') {
    const started = await startRedis();
    if ('problem' in started) {
      redisProblem = started.problem;
    } else {
      redisUrl = started.url;
      cleanups.push(async () => {
        started.child.kill('SIGTERM');
        await Promise.resolve();
      });
    }
  }

  project.provide('airlockDatabaseUrl', serverUrl);
  project.provide('airlockTemplateDatabase', template);
  project.provide('airlockRedisUrl', redisUrl);
  project.provide('airlockRedisProblem', redisProblem);

  return async () => {
    for (const cleanup of cleanups) await cleanup();
  };
}
