// Process-controlling commands: RELOAD, PAUSE, RESUME, SHUTDOWN, and SET
// (accepted so drivers' and ORMs' session setup does not fail, but ignored).

import { ADMIN_REFUSED, AdminError, type AdminContext, type AdminReply } from './context.js';
import { text } from './format.js';

/** SQLSTATE config_file_error: the new file was rejected, the running config stays. */
const CONFIG_FILE_ERROR = 'F0000';

export async function reload(ctx: AdminContext): Promise<AdminReply> {
  const failure = await ctx.reload();
  if (failure !== null) {
    throw new AdminError(CONFIG_FILE_ERROR, `RELOAD failed, the previous configuration is still in use: ${failure}`);
  }
  return { tag: 'RELOAD' };
}

/** `[db[, user]]`: commas and/or spaces between, identifiers may be double-quoted. */
export function poolTarget(verb: string, args: string): { database?: string; user?: string } {
  const parts = args.split(/[\s,]+/).filter((p) => p.length > 0).map(unquote);
  if (parts.length > 2) throw new AdminError(ADMIN_REFUSED, `usage: ${verb} [<db>[, <user>]]`);
  return { database: parts[0], user: parts[1] };
}

function unquote(identifier: string): string {
  return identifier.length >= 2 && identifier.startsWith('"') && identifier.endsWith('"')
    ? identifier.slice(1, -1).replace(/""/g, '"')
    : identifier;
}

/** Fails like PgCat (its words, its SQLSTATE) when a named pool does not exist, rather than silently doing nothing. */
function checkTarget(ctx: AdminContext, database?: string, user?: string): void {
  if (!database) return;
  const found = ctx.pools().some((e) => e.poolName === database && (!user || e.user.username === user));
  if (!found) {
    const who = user ? `database: ${database}, user: ${user}` : `database: ${database}`;
    throw new AdminError(ADMIN_REFUSED, `No pool configured for ${who}`);
  }
}

function targetTag(verb: string, database?: string, user?: string): string {
  if (!database) return verb;
  return user ? `${verb} ${database},${user}` : `${verb} ${database}`;
}

/**
 * Replies once no transaction is running on the matching pools (in session
 * mode: once their clients left), as PgBouncer does; queries arriving
 * meanwhile wait for RESUME.
 */
export async function pause(ctx: AdminContext, args: string): Promise<AdminReply> {
  const { database, user } = poolTarget('PAUSE', args);
  checkTarget(ctx, database, user);
  await ctx.pause(database, user);
  return { tag: targetTag('PAUSE', database, user) };
}

export function resume(ctx: AdminContext, args: string): AdminReply {
  const { database, user } = poolTarget('RESUME', args);
  checkTarget(ctx, database, user);
  ctx.resume(database, user);
  return { tag: targetTag('RESUME', database, user) };
}

export function shutdown(ctx: AdminContext): AdminReply {
  // After this reply is written (the session writes it in a microtask),
  // so the admin sees SHUTDOWN acknowledged before the pooler stops.
  setImmediate(() => ctx.shutdown());
  // PgCat's reply: one row, success = t (its python suite reads it with fetchall()).
  return { columns: [text('success')], rows: [['t']], tag: 'SHUTDOWN' };
}

export function ignoreSet(): AdminReply {
  return { tag: 'SET', notice: 'SET is ignored by the admin console: change settings in the config file, then RELOAD' };
}
