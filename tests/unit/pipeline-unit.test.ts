// Which client batches may be pipelined (pooler/client/pipeline-unit.ts):
// the text-only shortcut for plain SELECTs must never call a text a read
// that the parser would not, and whole batches are judged message by message.
import t from 'tap';
import '../harness/pg-protocol-hook.js';
import { mayPipeline, plainRead } from '../../pooler/client/pipeline-unit.js';
import { statementOf } from '../../pooler/router/parse.js';
import { query } from '../../pooler/protocol/messages/query.js';
import { parse } from '../../pooler/protocol/messages/parse.js';
import { bind } from '../../pooler/protocol/messages/bind.js';
import { SYNC, execute } from '../../pooler/protocol/messages/execute.js';
import { ClientStatements } from '../../pooler/prepared/statements.js';

const TEXTS = [
  'SELECT abalance FROM pgbench_accounts WHERE aid = 42;',
  'select 1',
  '  SELECT\n* FROM t WHERE x = $1',
  "SELECT 'a;b'",
  'SELECT 1; SELECT 2',
  'SELECT 1; SET search_path = evil',
  'SELECT * FROM t FOR UPDATE',
  'SELECT * FROM t FOR SHARE',
  'SELECT * INTO t2 FROM t',
  "SELECT nextval('s')",
  'SELECT pg_advisory_lock(1)',
  "SELECT set_config('role', 'x', false)",
  'SELECT * FROM pg_temp.t',
  'WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d',
  'SELECT txid_current()',
  "SELECT pg_notify('c', 'x')",
  'SELECT 1 -- ; trailing comment',
  'SELECT format($$%s$$, 1)',
  'INSERT INTO t VALUES (1)',
  'BEGIN',
];

t.test('plainRead never says read where the parser would not', async (t) => {
  for (const sql of TEXTS) {
    if (plainRead(sql)) t.equal(statementOf(sql).pipelineKind, 'read', `parser agrees: ${sql}`);
  }
  t.ok(plainRead('SELECT abalance FROM pgbench_accounts WHERE aid = 42;'), "pgbench -S's text needs no parse");
  for (const sql of ['SELECT * FROM t FOR UPDATE', "SELECT nextval('s')", 'SELECT 1; SET search_path = evil', 'SELECT pg_advisory_lock(1)']) {
    t.notOk(plainRead(sql), `not by the shortcut: ${sql}`);
  }
});

const unit = (...m: Buffer[]): Buffer => Buffer.concat(m);
const ext = (sql: string, name = ''): Buffer =>
  unit(parse(name, sql), bind({ portal: '', statement: name, formats: [], values: [], resultFormats: Buffer.alloc(2) }), execute(), SYNC);

t.test('mayPipeline: whole batches', async (t) => {
  t.ok(mayPipeline(query('SELECT 1'), null, false), 'a simple read');
  t.notOk(mayPipeline(query("UPDATE t SET x = 1"), null, false), 'a write, writes off');
  t.ok(mayPipeline(query("UPDATE t SET x = 1"), null, true), 'a write, pipeline_writes on');
  t.notOk(mayPipeline(query('BEGIN'), null, true), 'BEGIN never');
  t.notOk(mayPipeline(query('COPY t FROM STDIN'), null, true), 'COPY never');
  t.notOk(mayPipeline(query('LISTEN c'), null, true), 'LISTEN never');
  t.ok(mayPipeline(ext('SELECT $1::int'), null, false), 'an unnamed extended read ending in Sync');
  t.notOk(mayPipeline(unit(parse('', 'SELECT 1'), bind({ portal: '', statement: '', formats: [], values: [], resultFormats: Buffer.alloc(2) }), execute()), null, false), 'no Sync yet: the batch is open');
  t.notOk(mayPipeline(ext('SELECT 1', 'named'), null, false), 'a named statement without the shared cache');
  const statements = new ClientStatements(10);
  t.ok(mayPipeline(ext('SELECT 1', 'named'), statements, false), 'a named statement with the shared cache');
  statements.define('p1', parse('p1', 'SELECT x FROM t WHERE id = $1').subarray(5 + 3));
  const bindOnly = unit(bind({ portal: '', statement: 'p1', formats: [], values: [], resultFormats: Buffer.alloc(2) }), execute(), SYNC);
  t.ok(mayPipeline(bindOnly, statements, false), 'a Bind of a known read statement (pgbench -M prepared)');
  t.notOk(mayPipeline(unit(bind({ portal: '', statement: 'nope', formats: [], values: [], resultFormats: Buffer.alloc(2) }), execute(), SYNC), statements, false), 'a Bind of an unknown statement');
});
