// TLS toward Postgres servers (general.server_tls,
// general.verify_server_certificate), negotiated as libpq does: an
// SSLRequest in plain text, a one-byte answer, then a TLS handshake on the
// same TCP connection before the StartupMessage.
//
// verify off is libpq's sslmode=prefer: encrypt when the server can, carry
// on in plain text when it answers 'N', accept any certificate. verify on is
// sslmode=verify-full: the server must answer 'S' and present a chain that
// Node's CA store trusts (Mozilla's roots, plus NODE_EXTRA_CA_CERTS for a
// private CA), issued for the configured host.

import net from 'node:net';
import tls from 'node:tls';
import { sslRequest } from '../protocol/messages/startup.js';

export interface ServerTlsSettings {
  /** Send an SSLRequest before logging in (general.server_tls). */
  enabled: boolean;
  /** Require TLS and a trusted certificate for the host (general.verify_server_certificate). */
  verify: boolean;
}

export const NO_SERVER_TLS: ServerTlsSettings = { enabled: false, verify: false };

const ANSWER_SSL = 0x53; // 'S'
const ANSWER_NO_SSL = 0x4e; // 'N'

/**
 * Negotiate TLS on a freshly connected server socket. Resolves with the
 * socket to log in on (a TLSSocket, or the same socket in plain text when
 * the server declined and verification is off). On failure the socket is
 * destroyed and the promise rejects; it never waits longer than `timeoutMs`.
 */
export function negotiateServerTls(
  socket: net.Socket,
  host: string,
  port: number,
  settings: ServerTlsSettings,
  timeoutMs: number,
): Promise<net.Socket> {
  const where = `${host}:${port}`;
  return new Promise((resolve, reject) => {
    let settled = false;
    let secure: tls.TLSSocket | null = null;
    const settle = (err: Error | null, result?: net.Socket): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('error', onError);
      socket.removeListener('close', onClose);
      if (err) {
        secure?.destroy();
        socket.destroy();
        reject(err);
      } else resolve(result!);
    };
    const timer = setTimeout(
      () => settle(new Error(`timeout negotiating TLS with server ${where} after ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onError = (err: Error): void => settle(new Error(`could not negotiate TLS with server ${where}: ${err.message}`));
    const onClose = (): void => settle(new Error(`server ${where} closed the connection during TLS negotiation`));

    const onData = (chunk: Buffer): void => {
      socket.removeListener('data', onData);
      // The server sends nothing after its answer until it hears from us, so
      // more bytes in the same read were injected in plain text ahead of the
      // handshake (CVE-2021-23222): never read them as server messages.
      if (chunk.length !== 1) {
        settle(new Error(`received unencrypted data after SSL response from server ${where}`));
        return;
      }
      if (chunk[0] === ANSWER_NO_SSL) {
        if (settings.verify) settle(new Error(`server ${where} does not support SSL, and verify_server_certificate requires it`));
        else settle(null, socket);
        return;
      }
      if (chunk[0] !== ANSWER_SSL) {
        settle(new Error(`server ${where} sent an invalid response to SSL negotiation: 0x${chunk[0].toString(16)}`));
        return;
      }
      secure = tls.connect({
        socket,
        // checkServerIdentity matches `host` against the certificate's
        // names (IP SANs for an address); SNI is only for host names
        // (RFC 6066 forbids addresses there and Node warns about them).
        host,
        servername: net.isIP(host) ? undefined : host,
        rejectUnauthorized: settings.verify,
      });
      const upgraded = secure;
      upgraded.once('secureConnect', () => {
        upgraded.removeListener('error', onError);
        upgraded.removeListener('close', onClose);
        // The plain socket is now driven by the TLS layer; forward its rare
        // errors so none goes unhandled (that would crash the process).
        socket.on('error', (err) => upgraded.destroy(err));
        settle(null, upgraded);
      });
      upgraded.once('error', onError);
      upgraded.once('close', onClose);
    };

    socket.on('data', onData);
    socket.once('error', onError);
    socket.once('close', onClose);
    socket.write(sslRequest());
  });
}
