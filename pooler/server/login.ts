// Logging into a Postgres server: StartupMessage, authentication, then the
// ParameterStatus / BackendKeyData burst up to the first ReadyForQuery.

import type net from 'node:net';
import { startupMessage } from '../protocol/messages/startup.js';
import { Backend } from '../protocol/codes.js';
import { MessageFramer } from '../protocol/framer.js';
import { parseErrorFields } from '../protocol/messages/error.js';
import { parseBackendKeyData, parseParameterStatus } from '../protocol/messages/status.js';
import { MessageCursor } from '../protocol/cursor.js';
import { ServerAuthenticator } from '../auth/server-auth.js';

export interface LoginTarget {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string | null;
  /** Extra startup parameters (e.g. application_name). */
  startupParams?: Record<string, string>;
}

export interface LoginResult {
  params: Map<string, string>;
  processId: number;
  secretKey: number;
}

/** The server refused the login; `code` is its SQLSTATE when it sent one. */
export class ServerLoginError extends Error {
  constructor(message: string, readonly code: string | null = null) {
    super(message);
  }
}

export function login(socket: net.Socket, target: LoginTarget, timeoutMs: number): Promise<LoginResult> {
  return new Promise((resolve, reject) => {
    const framer = new MessageFramer();
    const cursor = new MessageCursor();
    const auth = new ServerAuthenticator(target.user, target.password);
    const result: LoginResult = { params: new Map(), processId: 0, secretKey: 0 };
    let settled = false;
    // Authentication steps are async (SCRAM key derivation); keep order.
    let chain = Promise.resolve();

    const finish = (err: Error | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('error', onError);
      socket.removeListener('close', onClose);
      if (err) reject(err);
      else resolve(result);
    };
    const timer = setTimeout(
      () => finish(new ServerLoginError(`timeout logging into server ${target.host}:${target.port} after ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onError = (err: Error): void => finish(err);
    const onClose = (): void => finish(new ServerLoginError(`server ${target.host}:${target.port} closed the connection during login`));

    const handle = async (type: number, body: Buffer): Promise<void> => {
      switch (type) {
        case Backend.Authentication: {
          const reply = await auth.respond(body);
          if (reply) socket.write(reply);
          break;
        }
        case Backend.ParameterStatus: {
          const [k, v] = parseParameterStatus(body);
          result.params.set(k, v);
          break;
        }
        case Backend.BackendKeyData:
          [result.processId, result.secretKey] = parseBackendKeyData(body);
          break;
        case Backend.ErrorResponse: {
          const f = parseErrorFields(body);
          throw new ServerLoginError(`server ${target.host}:${target.port}: ${f.get('M') ?? 'login failed'}`, f.get('C') ?? null);
        }
        case Backend.ReadyForQuery:
          finish(null);
          break;
        default:
          break; // NoticeResponse and NegotiateProtocolVersion need no answer
      }
    };

    const onData = (chunk: Buffer): void => {
      let batch;
      try {
        batch = framer.push(chunk);
      } catch (err) {
        finish(err as Error);
        return;
      }
      const { buffer, messages } = batch;
      for (const m = cursor.frames(buffer, messages); m.next(); ) {
        const type = m.type;
        const body = Buffer.from(m.body());
        chain = chain.then(() => (settled ? undefined : handle(type, body))).catch((err: Error) => finish(err));
      }
    };

    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.write(startupMessage({ user: target.user, database: target.database, ...target.startupParams }));
  });
}
