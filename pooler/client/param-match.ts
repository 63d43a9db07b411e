// Whether a server already has the session parameters a client expects
// (application_name, TimeZone...), checked at every checkout. Comparing the
// maps walks and allocates per parameter; instead each side keeps a
// fingerprint of its tracked values, rebuilt only when they change (the
// client's on a ParameterStatus it follows, the server's when its
// paramsVersion moves), so a checkout compares two strings.
//
// Equal fingerprints mean every parameter the client has, the server has
// with the same value; unequal ones (the server reports a parameter the
// client never set) fall back to the exact comparison.

import { TRACKED_PARAMETERS, parameterSyncQuery } from '../server/params.js';
import type { ServerConnection } from '../server/connection.js';

const ABSENT = '\u0000';
const SEPARATOR = '\u0001';

function fingerprint(params: Map<string, string>): string {
  let print = '';
  for (const name of TRACKED_PARAMETERS) print += (params.get(name) ?? ABSENT) + SEPARATOR;
  return print;
}

/** Servers' fingerprints, for the paramsVersion they were taken at. */
const serverPrints = new WeakMap<ServerConnection, { version: number; print: string }>();

export class ParamMatch {
  private clientVersion = -1;
  private clientPrint = '';

  /** True when `server` needs no SET for `client` (whose map changed `clientVersion` times). */
  matches(client: Map<string, string>, clientVersion: number, server: ServerConnection): boolean {
    if (this.clientVersion !== clientVersion) {
      this.clientPrint = fingerprint(client);
      this.clientVersion = clientVersion;
    }
    let known = serverPrints.get(server);
    if (known === undefined || known.version !== server.paramsVersion) {
      known = { version: server.paramsVersion, print: fingerprint(server.params) };
      serverPrints.set(server, known);
    }
    return known.print === this.clientPrint || parameterSyncQuery(client, server.params) === null;
  }
}
