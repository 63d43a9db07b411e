// What a login checks a client's password against: one user's credentials
// as the config, auth_query or a decoy (auth/mock-auth.ts) provides them.
// Its own file so the providers and the login (client/login.ts) import it
// without importing each other.

import type { AuthType } from '../../config/types.js';
import type { ScramSecret } from './scram-server.js';

/** PgCat's per-user `auth_type`: md5 (default), scram-sha-256 (beyond PgCat), or trust. */
export type ClientAuthMethod = AuthType;

/** How one user authenticates. */
export interface LoginEntry {
  password: string | null;
  scram: ScramSecret | null;
  authMethod: ClientAuthMethod;
  /**
   * Called once the client proved its password. After SCRAM it gets the
   * ClientKey recovered from the client's proof (auth_query passthrough logs
   * into servers with it); null after md5 or trust.
   */
  onAuthenticated?: (clientKey: Buffer | null) => void;
  /**
   * auth_query: the entry fetched anew, asked once when the password does
   * not match (it may have changed on the server since it was cached).
   */
  refresh?: () => Promise<LoginEntry>;
  /** Why no password can pass (unknown user or pool...): logged, never told to the client, which sees a wrong password. */
  unknown?: string;
}
