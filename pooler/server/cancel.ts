// A CancelRequest goes to the server over a connection of its own, as libpq
// sends it: the server matches the process id and secret key and closes.
// Best effort by design (Postgres never answers it): the promise resolves
// when that connection ends, fails or times out.

import net from 'node:net';
import { cancelRequest } from '../protocol/messages/startup.js';
import { connectOptions } from './address.js';

export function sendCancelRequest(
  server: { host: string; port: number; connectTimeout: number },
  processId: number,
  secretKey: number,
): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(connectOptions(server.host, server.port));
    const done = (): void => {
      s.destroy();
      resolve();
    };
    s.setTimeout(server.connectTimeout, done);
    s.once('error', done);
    s.once('close', done);
    s.once('connect', () => s.end(cancelRequest(processId, secretKey)));
  });
}
