// Which client batches may be pipelined (pooler/client/pipeline-unit.ts):
// the text-only shortcut for plain SELECTs must never call a text a read
// that the parser would not, and whole batches are judged message by message.
import t from 'tap';
import '../harness/pg-protocol-hook.js';
import { mayPipeline, plainRead, unitKey } from '../../pooler/client/pipeline-unit.js';
import { SlowStatements } from '../../pooler/pool/slow-statements.js';
import { PipelineQueue } from '../../pooler/server/pipeline.js';
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
/** No text known slow (a pool with pipeline_max_wait_ms 1 that has seen nothing). */
const NONE_SLOW = new SlowStatements(() => 1);
const ext = (sql: string, name = ''): Buffer =>
  unit(parse(name, sql), bind({ portal: '', statement: name, formats: [], values: [], resultFormats: Buffer.alloc(2) }), execute(), SYNC);

t.test('mayPipeline: whole batches', async (t) => {
  t.ok(mayPipeline(query('SELECT 1'), null, false, NONE_SLOW), 'a simple read');
  t.notOk(mayPipeline(query("UPDATE t SET x = 1"), null, false, NONE_SLOW), 'a write, writes off');
  t.ok(mayPipeline(query("UPDATE t SET x = 1"), null, true, NONE_SLOW), 'a write, pipeline_writes on');
  t.notOk(mayPipeline(query('BEGIN'), null, true, NONE_SLOW), 'BEGIN never');
  t.notOk(mayPipeline(query('COPY t FROM STDIN'), null, true, NONE_SLOW), 'COPY never');
  t.notOk(mayPipeline(query('LISTEN c'), null, true, NONE_SLOW), 'LISTEN never');
  t.ok(mayPipeline(ext('SELECT $1::int'), null, false, NONE_SLOW), 'an unnamed extended read ending in Sync');
  t.notOk(mayPipeline(unit(parse('', 'SELECT 1'), bind({ portal: '', statement: '', formats: [], values: [], resultFormats: Buffer.alloc(2) }), execute()), null, false, NONE_SLOW), 'no Sync yet: the batch is open');
  t.notOk(mayPipeline(ext('SELECT 1', 'named'), null, false, NONE_SLOW), 'a named statement without the shared cache');
  const statements = new ClientStatements(10);
  t.ok(mayPipeline(ext('SELECT 1', 'named'), statements, false, NONE_SLOW), 'a named statement with the shared cache');
  statements.define('p1', parse('p1', 'SELECT x FROM t WHERE id = $1').subarray(5 + 3));
  const bindOnly = unit(bind({ portal: '', statement: 'p1', formats: [], values: [], resultFormats: Buffer.alloc(2) }), execute(), SYNC);
  t.ok(mayPipeline(bindOnly, statements, false, NONE_SLOW), 'a Bind of a known read statement (pgbench -M prepared)');
  t.notOk(mayPipeline(unit(bind({ portal: '', statement: 'nope', formats: [], values: [], resultFormats: Buffer.alloc(2) }), execute(), SYNC), statements, false, NONE_SLOW), 'a Bind of an unknown statement');
});

t.test('SlowStatements: texts that run past pipeline_max_wait_ms are learned, smoothed and forgotten', async (t) => {
  const slow = new SlowStatements(() => 1);
  slow.observe('SELECT 1', 0.4);
  t.equal(slow.size, 0, 'a fast text is not kept');
  slow.observe('SELECT pg_sleep(0.01)', 10);
  t.ok(slow.has('SELECT pg_sleep(0.01)'), 'one run past the bound marks it');
  slow.observe('SELECT pg_sleep(0.01)', 0.5);
  t.ok(slow.has('SELECT pg_sleep(0.01)'), 'one fast run does not clear a smoothed 10 ms');
  slow.observe('SELECT late', 3);
  for (let i = 0; i < 8; i++) slow.observe('SELECT late', 0.3);
  t.notOk(slow.has('SELECT late'), 'a text that was late once is forgotten after a few fast runs');
  for (let i = 0; i < 600; i++) {
    slow.observe(`SELECT ${i}, pg_sleep(1)`, 5);
    for (let j = 0; j < 60; j++) slow.observe('SELECT 1', 0.1); // the typical unit stays fast
  }
  t.equal(slow.size, 512, 'bounded: the oldest learned go first');
  t.notOk(slow.has('SELECT 0, pg_sleep(1)'), 'the first learned went');
  t.ok(slow.has('SELECT 599, pg_sleep(1)'), 'the last learned stays');
});

t.test('SlowStatements: slow means slow beside the pool\'s typical unit, not past 1 ms on a loaded machine', async (t) => {
  const slow = new SlowStatements(() => 1);
  for (let i = 0; i < 500; i++) slow.observe(`SELECT abalance FROM pgbench_accounts WHERE aid = ${i}`, 3);
  t.equal(slow.size, 0, 'every unit takes ~3 ms (a loaded machine): none is slow');
  slow.observe('SELECT abalance FROM pgbench_accounts WHERE aid = $1', 4.5);
  t.notOk(slow.has('SELECT abalance FROM pgbench_accounts WHERE aid = $1'), 'a little late is not slow');
  slow.observe('SELECT pg_sleep(0.01)', 12);
  t.ok(slow.has('SELECT pg_sleep(0.01)'), 'four times the typical unit is');
});

t.test('mayPipeline: a text known slow is never pipelined, in any protocol', async (t) => {
  const slow = new SlowStatements(() => 1);
  slow.observe('SELECT 1', 0.3);
  slow.observe('SELECT pg_sleep(0.01)', 10);
  t.notOk(mayPipeline(query('SELECT pg_sleep(0.01)'), null, false, slow), 'simple Query');
  t.notOk(mayPipeline(ext('SELECT pg_sleep(0.01)'), null, false, slow), 'extended, unnamed');
  const statements = new ClientStatements(10);
  statements.define('s1', parse('s1', 'SELECT pg_sleep(0.01)').subarray(5 + 3));
  const bindOnly = unit(bind({ portal: '', statement: 's1', formats: [], values: [], resultFormats: Buffer.alloc(2) }), execute(), SYNC);
  t.notOk(mayPipeline(bindOnly, statements, false, slow), 'a Bind of the slow named statement');
  t.ok(mayPipeline(query('SELECT 1'), null, false, slow), 'other texts still are');
  t.equal(unitKey(bindOnly, statements), 'SELECT pg_sleep(0.01)', "a Bind's key is its statement's text");
  t.equal(unitKey(ext('SELECT $1::int'), null), 'SELECT $1::int', "an extended unit's key is its Parse text");
  t.equal(unitKey(query('SELECT 2'), null), 'SELECT 2', "a Query's key is its text");
});

t.test('PipelineQueue measures each head from its start to its last ReadyForQuery', async (t) => {
  const seen: [string, number][] = [];
  const q = new PipelineQueue<string>({ observe: (key, ms) => seen.push([key, ms]) });
  q.start('SELECT slow', 100);
  q.push('b', 1, 'SELECT fast');
  q.push('c', 1, null);
  t.equal(q.advance(112).owner, 'b', 'the unit behind becomes the head');
  t.same(seen, [['SELECT slow', 12]], 'the head ran 12 ms');
  t.equal(q.headSince, 112, 'the next head starts where the last ended');
  q.advance(112.5);
  t.same(seen[1], ['SELECT fast', 0.5], 'then the next one');
  q.finishHead(113);
  t.equal(seen.length, 2, 'a unit without a key is not measured');
});
