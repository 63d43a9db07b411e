// What auth_query works with, apart from the code that fetches it
// (auth-query.ts) and the cache in front of it (auth-query-cache.ts), so
// neither imports the other's file for a type.

import type { ServerOptions } from '../server/options.js';
import type { ScramSecret } from './scram-server.js';

/** What the server stores for a role, in a form the login can check. */
export type StoredSecret = { kind: 'md5'; hash: string } | { kind: 'scram'; secret: ScramSecret };

/** Where and how to run a pool's auth_query: the pool's server, logged into as auth_query_user. */
export interface AuthQueryTarget {
  server: ServerOptions;
  query: string;
}
