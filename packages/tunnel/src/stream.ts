/**
 * One stream (one TCP connection to an asset port) over its own WebSocket.
 * Binary frames carry bytes; a text frame `eof` says the sender will send no
 * more (TCP's FIN: `ssh -W` and `scp` half-close and still read the answer);
 * once both directions have ended the socket closes with 1000. Any other
 * close means the stream broke — on the broker, that the connector was lost.
 *
 * Backpressure both ways: writes complete only when the socket took them,
 * and a reader that cannot keep up pauses the WebSocket, which stops reading
 * from TCP, so a bulk transfer fills only its own connection's windows.
 */
import { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { CLOSE_CODES } from './protocol.js';

export const STREAM_EOF = 'eof';
const NORMAL_CLOSE = 1000;

export interface WebSocketStreamOptions {
  /** The socket closed other than cleanly, and not because this side destroyed the stream. */
  onAbnormalClose?(code: number): void;
}

export function webSocketStream(ws: WebSocket, options: WebSocketStreamOptions = {}): Duplex {
  let readEnded = false;
  let writeEnded = false;
  let destroyedHere = false;
  const closeIfDone = (): void => {
    if (readEnded && writeEnded && ws.readyState === ws.OPEN) ws.close(NORMAL_CLOSE);
  };
  const duplex = new Duplex({
    allowHalfOpen: true,
    read() {
      if (ws.isPaused) ws.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      if (ws.readyState !== ws.OPEN) {
        callback(new Error('the stream is closed'));
        return;
      }
      ws.send(chunk, { binary: true }, (err) => callback(err ?? null));
    },
    final(callback) {
      if (ws.readyState !== ws.OPEN) {
        callback();
        return;
      }
      ws.send(STREAM_EOF, { binary: false }, (err) => {
        writeEnded = true;
        closeIfDone();
        callback(err ?? null);
      });
    },
    destroy(err, callback) {
      if (ws.readyState !== ws.CLOSED && !(readEnded && writeEnded)) {
        destroyedHere = true;
        ws.terminate();
      }
      callback(err);
    },
  });
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) {
      if (data.toString('utf8') !== STREAM_EOF || readEnded) {
        ws.close(CLOSE_CODES.protocolError, 'unexpected text frame');
        return;
      }
      readEnded = true;
      duplex.push(null);
      closeIfDone();
      return;
    }
    if (readEnded) {
      ws.close(CLOSE_CODES.protocolError, 'data after eof');
      return;
    }
    if (!duplex.push(data)) ws.pause();
  });
  ws.on('close', (code: number) => {
    if (code !== NORMAL_CLOSE && !destroyedHere) options.onAbnormalClose?.(code);
    if (!readEnded) {
      readEnded = true;
      duplex.push(null);
    }
    if (!(writeEnded && readEnded) || code !== NORMAL_CLOSE) duplex.destroy();
  });
  ws.on('error', () => undefined);
  return duplex;
}
