// How to open a server connection: where, with which credentials, over
// what (TLS, the DNS cache), and where to mirror its traffic. The pool, the
// role probe and auth_query all open theirs from these.

import type { Logger } from 'pino';
import type { LoginTarget } from './login.js';
import type { LookupFunction } from './dns-cache.js';
import type { ServerTlsSettings } from '../tls/server.js';

export interface ServerOptions extends LoginTarget {
  connectTimeout: number;
  keepAliveIdleMs: number;
  /** general.dns_cache_enabled: resolve through the shared cache. */
  lookup?: LookupFunction;
  /** general.server_tls / verify_server_certificate; plain text when absent. */
  tls?: ServerTlsSettings;
  /** Where to copy this server's traffic (the shard's `mirrors` for it). */
  mirrors?: { targets: ServerOptions[]; log: Logger | null };
}
