// What a client is told once it is in: AuthenticationOk, a ParameterStatus
// per server parameter (the client's own tracked startup parameters win),
// BackendKeyData, ReadyForQuery. Every client of a pool that sent the same
// tracked parameters (application_name...) is told the same, so that part
// is built once and kept with the pool's server parameters: a login copies
// it and writes its keys after it (one allocation, one write).

import { Backend, TxStatus } from '../protocol/codes.js';
import { authenticationOk } from '../protocol/messages/auth.js';
import { parameterStatus } from '../protocol/messages/status.js';
import { trackedName } from '../server/params.js';

/** What clients of one pool with the same tracked startup parameters share. */
export interface SharedGreeting {
  /** The tracked parameters the client was told: what every server it borrows must match (the session gets a copy). */
  readonly tracked: ReadonlyMap<string, string>;
  /** AuthenticationOk and the ParameterStatus messages. */
  readonly prefix: Buffer;
}

const AUTHENTICATION_OK = authenticationOk();
/** BackendKeyData (13 bytes) then ReadyForQuery idle (6 bytes). */
const KEYS_AND_READY = 13 + 6;

/** Greetings by the pool's server parameters (a new Map per pool: a reload's pools start afresh), then by the client's tracked parameters. */
const shared = new WeakMap<ReadonlyMap<string, string>, Map<string, SharedGreeting>>();
/** Distinct client parameter sets kept per pool (application_name may differ per client): cleared when full. */
const MAX_PER_POOL = 1000;

/** The shared part of the greeting for a client of the pool whose servers report `serverParams`. */
export function sharedGreeting(serverParams: ReadonlyMap<string, string>, clientTracked: ReadonlyMap<string, string>): SharedGreeting {
  let byClient = shared.get(serverParams);
  if (!byClient) shared.set(serverParams, (byClient = new Map()));
  let key = '';
  for (const [k, v] of clientTracked) key += `${k}\0${v}\0`;
  let g = byClient.get(key);
  if (!g) {
    if (byClient.size >= MAX_PER_POOL) byClient.clear();
    g = buildShared(serverParams, clientTracked);
    byClient.set(key, g);
  }
  return g;
}

function buildShared(serverParams: ReadonlyMap<string, string>, clientTracked: ReadonlyMap<string, string>): SharedGreeting {
  const params = new Map(serverParams);
  for (const [k, v] of clientTracked) params.set(k, v);
  const tracked = new Map<string, string>();
  for (const [k, v] of params) if (trackedName(k) === k) tracked.set(k, v);
  return { tracked, prefix: statusPrefix(params) };
}

function statusPrefix(params: ReadonlyMap<string, string>): Buffer {
  const parts = [AUTHENTICATION_OK];
  for (const [k, v] of params) parts.push(parameterStatus(k, v));
  return Buffer.concat(parts);
}

/** `prefix` (AuthenticationOk and ParameterStatus messages), then this client's BackendKeyData and ReadyForQuery. */
export function greetingFrom(prefix: Buffer, processId: number, secretKey: number): Buffer {
  const out = Buffer.allocUnsafe(prefix.length + KEYS_AND_READY);
  let at = prefix.copy(out, 0);
  out[at] = Backend.BackendKeyData;
  out.writeInt32BE(12, at + 1);
  out.writeInt32BE(processId, at + 5);
  out.writeInt32BE(secretKey, at + 9);
  at += 13;
  out[at] = Backend.ReadyForQuery;
  out.writeInt32BE(5, at + 1);
  out[at + 5] = TxStatus.Idle;
  return out;
}

/** The whole greeting for `params` (the admin console's, built per login: it is rare). */
export function greeting(params: ReadonlyMap<string, string>, processId: number, secretKey: number): Buffer {
  return greetingFrom(statusPrefix(params), processId, secretKey);
}
