// A stand-in for the gateway's SFTP splice, for tests with real OpenSSH tools:
//
//   sftp -D "tsx sftp-relay.ts <events.jsonl> /usr/lib/openssh/sftp-server -d <dir>"
//
// sftp talks to this process over stdin/stdout; it spawns the real
// sftp-server and relays both directions through an SftpObserver. Like the
// gateway, it appends each operation to the journal and waits for that write
// to finish before forwarding the packet (write-ahead), and journals each
// transfer summary. Journal lines: {"event": "operation" | "result" | "transfer" | "error", ...}.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { appendFileSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { SftpObserver } from '../index.js';

const [journal, serverCommand, ...serverArgs] = process.argv.slice(2);
if (journal === undefined || serverCommand === undefined) {
  process.stderr.write('usage: sftp-relay <journal.jsonl> <sftp-server> [args...]\n');
  process.exit(2);
}

const line = (record: object): string => `${JSON.stringify(record)}\n`;
const server = spawn(serverCommand, serverArgs, { stdio: ['pipe', 'pipe', 'inherit'] });

const observer = new SftpObserver({
  onOperation: () => undefined, // journaled below, awaited, before the packet is forwarded
  onOperationResult: (result) => appendFileSync(journal, line({ event: 'result', result })),
  onTransfer: (summary) => appendFileSync(journal, line({ event: 'transfer', summary })),
  onProtocolError: (message) => {
    appendFileSync(journal, line({ event: 'error', message }));
    server.kill();
    process.exit(1);
  },
});

server.stdout.on('data', (data: Buffer) => process.stdout.write(observer.fromServer(data)));
server.on('exit', (code) => {
  observer.end();
  process.exitCode = code ?? 1;
});

async function relayClient(): Promise<void> {
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    for (const segment of observer.fromClient(chunk)) {
      if (segment.operation !== undefined) {
        await appendFile(journal!, line({ event: 'operation', op: segment.operation }));
      }
      if (!server.stdin.write(segment.data)) await once(server.stdin, 'drain');
    }
  }
  server.stdin.end();
}

relayClient().catch((err: unknown) => {
  process.stderr.write(`sftp-relay: ${String(err)}\n`);
  server.kill();
  process.exit(1);
});
