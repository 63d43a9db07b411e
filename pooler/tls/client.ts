// TLS toward clients (general.tls_certificate / general.tls_private_key).
//
// Postgres clients do not open with a TLS handshake: they send an SSLRequest
// in plain text and upgrade the same TCP connection when the server answers
// 'S'. So there is no tls.Server here; the login wraps the accepted socket in
// a server-side TLSSocket once it has answered 'S' (see client/login.ts).

import { readFileSync } from 'node:fs';
import type net from 'node:net';
import tls from 'node:tls';
import type { GeneralConfig } from '../../config/types.js';

export type ClientTlsSettings = Pick<GeneralConfig, 'tls_certificate' | 'tls_private_key'>;

function readPem(key: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`general.${key}: cannot read ${file}: ${(err as Error).message}`);
  }
}

/**
 * The pooler's TLS identity for clients, or null when TLS is not configured
 * (SSLRequest is then declined with 'N'). The files are read now, once: the
 * pooler builds a new context on start and on every reload, so replaced
 * certificates apply to the clients that connect after the reload. Throws
 * with an operator-facing message when a file is unreadable or the key does
 * not match the certificate.
 */
export function clientTlsContext(settings: ClientTlsSettings): tls.SecureContext | null {
  const { tls_certificate: certFile, tls_private_key: keyFile } = settings;
  if (certFile === null || keyFile === null) return null;
  const cert = readPem('tls_certificate', certFile);
  const key = readPem('tls_private_key', keyFile);
  try {
    return tls.createSecureContext({ cert, key });
  } catch (err) {
    throw new Error(`general.tls_certificate / general.tls_private_key (${certFile}, ${keyFile}): ${(err as Error).message}`);
  }
}

/**
 * Start the server side of a TLS handshake on a client socket that was just
 * sent 'S'. The handshake runs as the caller reads: the returned socket emits
 * decrypted 'data' once it is done, and 'error' if it fails.
 */
export function acceptTls(socket: net.Socket, secureContext: tls.SecureContext): tls.TLSSocket {
  const secure = new tls.TLSSocket(socket, { isServer: true, secureContext });
  // The login reader listens for errors only while it reads; between login
  // and the session (the pooler awaits the server parameters there), an
  // 'error' with no listener would crash the process. The plain socket has
  // the same guard in Pooler.accept.
  secure.on('error', () => secure.destroy());
  return secure;
}
