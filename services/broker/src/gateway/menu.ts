import type { Connection, ServerChannel } from 'ssh2';
import type { BrokerContext } from '../context.js';
import { findGrants } from '../features/grants/repository.js';
import type { UserRecord } from '../features/users/repository.js';

/** `ssh alice@broker`: what alice may reach now, and how. */
export async function grantsMenu(
  ctx: BrokerContext,
  user: UserRecord,
  brokerAddress: string,
): Promise<string> {
  const now = ctx.clock.now();
  const grants = await findGrants(ctx.pool, { userId: user.id, activeAt: now });
  const lines = [`Airlock — signed in as ${user.username}.`, ''];
  if (grants.length === 0) {
    lines.push(
      'You have no active grants right now. Request access in the console or with POST /api/v1/requests.',
    );
  } else {
    lines.push('Active grants:');
    for (const g of grants) {
      lines.push(
        `  ${g.assetName.padEnd(24)} until ${g.notAfter.toISOString()}  [${g.capabilities.join(', ')}]`,
      );
    }
    lines.push('', 'Connect with:');
    for (const g of grants)
      lines.push(
        `  ssh -p ${brokerAddress.split(':').at(-1) ?? '2222'} ${user.username}+${g.assetName}@${brokerAddress.split(':')[0] ?? 'broker'}`,
      );
  }
  return `${lines.join('\r\n')}\r\n`;
}

export function serveMenu(
  ctx: BrokerContext,
  connection: Connection,
  user: UserRecord,
  brokerAddress: string,
): void {
  const reply = (channel: ServerChannel): void => {
    grantsMenu(ctx, user, brokerAddress)
      .then((text) => {
        channel.write(text);
        channel.exit(0);
        channel.end();
      })
      .catch(() => {
        channel.exit(1);
        channel.end();
      });
  };
  connection.on('session', (accept) => {
    const session = accept();
    session.on('pty', (ok) => ok?.());
    session.on('shell', (ok) => reply(ok()));
    session.on('exec', (ok) => reply(ok()));
    session.on('subsystem', (_ok, reject) => reject?.());
  });
  connection.on('tcpip', (_accept, reject) => reject());
}
