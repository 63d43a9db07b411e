// Admin console commands. Placeholder dispatcher: SHOW VERSION only.

import { SqlState } from '../protocol/codes.js';
import { AdminError, type AdminContext, type AdminReply } from './context.js';

export async function runAdminCommand(sql: string, ctx: AdminContext): Promise<AdminReply> {
  const words = sql.trim().toLowerCase().split(/\s+/);
  if (words[0] === 'show' && words[1] === 'version') {
    return { columns: [{ name: 'version' }], rows: [[`PgLynx ${ctx.version}`]], tag: 'SHOW' };
  }
  throw new AdminError(SqlState.FeatureNotSupported, `unsupported admin command: ${sql}`);
}
