/**
 * Keystroke echo latency from a process of its own, as a vendor's terminal is:
 * one `ssh -tt` session running `cat` at the asset's prompt (bench-gateway's
 * openEchoSession), one keystroke in flight at a time. Prints the samples
 * (milliseconds) as one JSON array on stdout. Used by bench:connector so that
 * the measuring terminal does not share an event loop with the broker it measures.
 *
 *   tsx scripts/echo-sampler.ts --target '<SshTarget as JSON>' [--samples 500] [--warmup 20] [--gap-ms 5]
 */
import { parseArgs } from 'node:util';
import type { SshTarget } from '../packages/test-support/src/ssh/index.js';
import { openEchoSession, runBenchmark, sleep } from './bench-gateway.js';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      target: { type: 'string' },
      samples: { type: 'string', default: '500' },
      warmup: { type: 'string', default: '20' },
      'gap-ms': { type: 'string', default: '5' },
    },
    strict: true,
  });
  if (values.target === undefined) throw new Error('--target is required');
  const target = JSON.parse(values.target) as SshTarget;
  const samples = Number(values.samples);
  const warmup = Number(values.warmup);
  const gapMs = Number(values['gap-ms']);
  const session = await openEchoSession(target, 'shell');
  const times: number[] = [];
  try {
    for (let i = 0; i < warmup + samples; i++) {
      const ms = await session.echo('x', i === 0 ? 30_000 : 10_000);
      if (i >= warmup) times.push(ms);
      await sleep(gapMs);
    }
  } finally {
    await session.close();
  }
  process.stdout.write(`${JSON.stringify(times)}\n`);
  return 0;
}

await runBenchmark(main);
