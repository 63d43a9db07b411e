// Where a server is reached: host and port over TCP, or, as libpq does, a
// host that is an absolute directory names the Unix socket
// `<dir>/.s.PGSQL.<port>` (a local Postgres's socket, the embedded backend).

import net from 'node:net';
import { join } from 'node:path';
import type { LookupFunction } from './dns-cache.js';

export function isSocketDir(host: string): boolean {
  return host.startsWith('/');
}

/** net.connect options for a server address. */
export function connectOptions(host: string, port: number, lookup?: LookupFunction): net.NetConnectOpts {
  if (isSocketDir(host)) return { path: join(host, `.s.PGSQL.${port}`) };
  return lookup ? { host, port, lookup } : { host, port };
}

/** Open a connection to a server, failing with a message naming it after `timeoutMs`; `onread` as net.connect's. */
export function openServerSocket(host: string, port: number, timeoutMs: number, lookup?: LookupFunction, onread?: net.OnReadOpts): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const options = connectOptions(host, port, lookup);
    if (onread) options.onread = onread;
    const socket = net.connect(options);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(new Error(`could not connect to server ${host}:${port}: ${err.message}`));
    };
    const timer = setTimeout(() => fail(new Error(`timeout after ${timeoutMs} ms`)), timeoutMs);
    socket.once('error', fail);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', fail);
      resolve(socket);
    });
  });
}
