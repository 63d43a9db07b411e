// A Query that makes the server raise a given error. When the pooler must
// fail a statement while a server is attached (inside a transaction, or
// amid an extended-protocol batch), the error has to come from the server,
// in order with the replies before it and with the same effect on the
// transaction (aborted) as a real error would have.
//
// The server adds the DO block's PL/pgSQL CONTEXT and its own source
// location to the error; the session records each raise it forwards and
// hands the client the pooler's ErrorResponse instead (pgml/describe-replies.ts).

import { query } from './query.js';

export function raiseQuery(code: string, message: string): Buffer {
  // Dollar signs would end the DO body's quoting; quotes are doubled.
  const text = message.replace(/\$/g, '').replace(/'/g, "''");
  const sqlstate = /^[0-9A-Z]{5}$/.test(code) ? code : 'XX000';
  return query(`DO $pglynx$ BEGIN RAISE EXCEPTION '%', '${text}' USING ERRCODE = '${sqlstate}'; END $pglynx$`);
}
