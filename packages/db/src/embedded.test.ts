/**
 * The embedded PostgreSQL must not decide how its host process exits: a
 * program that starts it and ends normally exits 0, one that fails exits
 * non-zero, and the server is stopped either way.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const EMBEDDED = fileURLToPath(new URL('./embedded.ts', import.meta.url));
const dirs: string[] = [];

afterAll(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

/**
 * Runs a program that starts an embedded server and then either stops it and
 * lets the event loop run dry, or exits without stopping it; returns its exit
 * code and the server's port.
 */
async function runHost(
  exitCode: number,
  ending: 'stop' | 'exit',
): Promise<{ code: number | null; port: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'airlock-embedded-'));
  dirs.push(dir);
  const program = `
    import { startEmbeddedPostgres } from ${JSON.stringify(EMBEDDED)};
    const db = await startEmbeddedPostgres({ dataDir: ${JSON.stringify(dir)} });
    console.log(new URL(db.connectionString).port);
    process.exitCode = ${exitCode};
    if (${JSON.stringify(ending)} === 'stop') await db.stop();
    else process.exit();
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', program], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, port: Number(out.trim()) };
}

async function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function stopsListening(port: number): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (!(await accepts(port))) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

describe('embedded PostgreSQL', () => {
  it('leaves a clean exit clean and a failing exit failing, and stops the server either way', async () => {
    for (const ending of ['stop', 'exit'] as const) {
      const clean = await runHost(0, ending);
      expect({ ending, code: clean.code }).toEqual({ ending, code: 0 });
      expect(clean.port).toBeGreaterThan(0);
      expect(await stopsListening(clean.port)).toBe(true);

      const failing = await runHost(3, ending);
      expect({ ending, code: failing.code }).toEqual({ ending, code: 3 });
      expect(await stopsListening(failing.port)).toBe(true);
    }
  }, 120_000);
});
