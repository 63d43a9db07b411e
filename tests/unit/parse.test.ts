// router/parse.ts without a server: one parse (and at most one scan) per
// statement text whatever is asked of it, the facts each reader gets, the
// parse error, the cache's bounds, and the hot-path pre-checks that keep
// ordinary texts away from the parser.
import t from 'tap';
import { changesSessionState } from '../../pooler/client/session-state.js';
import { analyzePgml, PgmlError } from '../../pooler/pgml/analyze.js';
import { canonicalStatements, relationsOf } from '../../pooler/plugins/sql.js';
import { classify, deallocation, sessionState } from '../../pooler/router/classify.js';
import { cachedStatements, MAX_CACHED_TEXT, parseCount, scanCount, statementOf } from '../../pooler/router/parse.js';
import { RoutingState } from '../../pooler/router/route.js';
import { Dirty, ALL_DIRTY } from '../../pooler/server/reset.js';
import { ShardingKeyFinder } from '../../pooler/sharding/keys.js';
import { planCrossShard, PlanError } from '../../pooler/sharding/plan.js';

/** Parses and scans that `fn` caused. */
function counted(fn: () => void): { parses: number; scans: number } {
  const p = parseCount();
  const s = scanCount();
  fn();
  return { parses: parseCount() - p, scans: scanCount() - s };
}

t.test('every reader of one text shares one parse and one scan', async (t) => {
  const sql = 'SELECT id, count(*) FROM parse_test_items WHERE id = $1 GROUP BY id ORDER BY id';
  const byId = new ShardingKeyFinder('parse_test_items.id');
  const byAny = new ShardingKeyFinder('*.id');
  const first = counted(() => {
    t.equal(classify(sql), 'read');
    t.equal(sessionState(sql), 0);
    t.equal(deallocation(sql), null);
    t.same(relationsOf(sql), [{ schema: null, name: 'parse_test_items' }]);
    t.same(canonicalStatements(sql), ['select id , count ( * ) from parse_test_items where id = $1 group by id order by id']);
    t.same(byId.find(sql), { kind: 'keys', values: [{ param: 1 }] });
    t.same(byAny.find(sql), { kind: 'keys', values: [{ param: 1 }] });
    t.equal(analyzePgml(sql), null);
    const plan = planCrossShard(sql);
    t.notOk(plan instanceof PlanError, 'a cross-shard plan');
  });
  t.same(first, { parses: 1, scans: 1 }, 'the first readers parse and scan once');
  const again = counted(() => {
    for (let i = 0; i < 100; i++) {
      classify(sql);
      sessionState(sql);
      relationsOf(sql);
      canonicalStatements(sql);
      byId.find(sql);
      byAny.find(sql);
      planCrossShard(sql);
    }
  });
  t.same(again, { parses: 0, scans: 0 }, 'then nothing is parsed or scanned again');
  t.equal(byId.find(sql), byId.find(sql), 'sharding keys are memoised per key spec');
  t.equal(new ShardingKeyFinder('parse_test_items.id').find(sql), byId.find(sql), 'the same spec from another pool shares them');
});

t.test('nothing is parsed until a feature asks, and a scan alone does not parse', async (t) => {
  const sql = 'select /* intercepted */ 42';
  const made = counted(() => statementOf(sql));
  t.same(made, { parses: 0, scans: 0 }, 'looking a text up costs no parse');
  const canonical = counted(() => t.same(canonicalStatements(sql), ['select 42']));
  t.same(canonical, { parses: 0, scans: 1 }, 'the canonical form needs the scanner only');
  const pgml = counted(() => t.equal(analyzePgml(sql), null));
  t.same(pgml, { parses: 0, scans: 0 }, 'a text without "pgml" never reaches the parser');
});

t.test('the facts', async (t) => {
  t.equal(statementOf('SELECT 1').kind, 'read');
  t.equal(statementOf('SELECT nextval(\'s\')').kind, 'write');
  t.equal(statementOf('SELECT * FROM t FOR UPDATE').kind, 'write');
  t.equal(statementOf('BEGIN READ ONLY').kind, 'begin_read_only');
  t.equal(statementOf('SELECT 1; SELECT 2').kind, 'read');
  t.equal(statementOf('SELECT 1; DELETE FROM t').kind, 'write');
  t.equal(statementOf('EXPLAIN ANALYZE DELETE FROM t').kind, 'write');

  t.equal(statementOf('BEGIN').opensTransaction, true);
  t.equal(statementOf('START TRANSACTION ISOLATION LEVEL SERIALIZABLE').opensTransaction, true);
  t.equal(statementOf('BEGIN; SELECT 1').opensTransaction, true, 'several statements');
  t.equal(statementOf('BEGIN; SELECT 1; COMMIT').opensTransaction, false, 'closed in the same text');
  t.equal(statementOf('SELECT 1').opensTransaction, false);

  t.equal(statementOf('SET search_path = x').sessionState, Dirty.Params);
  t.equal(statementOf('SET LOCAL search_path = x').sessionState, 0);
  t.equal(statementOf('SELECT pg_advisory_lock(1)').sessionState, Dirty.Advisory);
  t.equal(statementOf('PREPARE p AS SELECT 1; LISTEN c').sessionState, Dirty.Statements | Dirty.Listen);

  t.same(statementOf('DEALLOCATE p').deallocation, { all: false, name: 'p' });
  t.same(statementOf('DEALLOCATE ALL').deallocation, { all: true });
  t.equal(statementOf('DEALLOCATE p; SELECT 1').deallocation, null, 'only a lone DEALLOCATE');
  t.equal(statementOf('DEALLOCATE p; SELECT 1').dropsPrepared, true);
  t.equal(statementOf('DISCARD ALL').dropsPrepared, true);
  t.equal(statementOf('DISCARD PLANS').dropsPrepared, false);
  t.equal(statementOf('SELECT 1').dropsPrepared, false);

  t.equal(statementOf('INSERT INTO t VALUES (1)').soleStatementType, 'InsertStmt');
  t.equal(statementOf('SELECT 1; SELECT 2').soleStatementType, null);

  const keys = new ShardingKeyFinder('t.id').find("INSERT INTO t (id, v) VALUES (1, 'a'), ($1, 'é')");
  t.equal(keys.kind, 'insert');
  if (keys.kind === 'insert') t.same(keys.rows.map((r) => r.key), [{ text: '1' }, { param: 1 }]);

  const embed = statementOf("SELECT pgml.embed('m', $1)").pgml;
  t.equal(embed?.calls.length, 1);
  t.equal(embed?.calls[0].fn, 'embed');
});

t.test('a text that does not parse', async (t) => {
  const sql = 'SELECT 1 FROM parse_test WHERE';
  const s = statementOf(sql);
  t.equal(s.stmts, null);
  t.match(s.error, { message: 'syntax error at end of input', cursorPosition: sql.length });
  t.equal(s.kind, 'write', 'the primary will say what is wrong');
  t.equal(s.sessionState, ALL_DIRTY, 'whatever ran there is not seen: reset all');
  t.equal(s.relations, null);
  t.equal(s.deallocation, null);
  const plan = s.crossShardPlan;
  t.ok(plan instanceof PlanError && plan.code === '42601');
  t.same(new ShardingKeyFinder('t.id').find(sql), { kind: 'none' });
  t.same(counted(() => statementOf(sql).kind), { parses: 0, scans: 0 }, 'the failure is remembered too');
  t.equal(statementOf('SELECT 1').error, null);
});

t.test('a pgml call the pooler cannot serve throws every time, from one parse', async (t) => {
  const sql = 'SELECT pgml.embed(model_col, body) FROM parse_test_docs';
  let thrown: unknown;
  const first = counted(() => {
    try {
      analyzePgml(sql);
    } catch (err) {
      thrown = err;
    }
  });
  t.ok(thrown instanceof PgmlError, 'a PgmlError');
  t.equal(first.parses, 1);
  const again = counted(() => t.throws(() => analyzePgml(sql), { code: '0A000' }));
  t.same(again, { parses: 0, scans: 0 });
});

t.test('the cache is bounded; a long text is shared within a pass, not cached', async (t) => {
  const long = `SELECT 1 AS a${' '.repeat(MAX_CACHED_TEXT)}`;
  const size = cachedStatements();
  const once = counted(() => {
    statementOf(long).kind;
    statementOf(long).sessionState;
  });
  t.equal(once.parses, 1, 'the same long text twice in a row: one parse');
  t.equal(cachedStatements(), size, 'not in the cache');
  statementOf('SELECT 2').kind;
  t.equal(counted(() => statementOf('SELECT 2').kind && statementOf(long).kind).parses, 0, 'a short text in between does not take its slot');
  statementOf(`SELECT 2 AS b${' '.repeat(MAX_CACHED_TEXT)}`).kind;
  t.equal(counted(() => statementOf(long).kind).parses, 1, 'another long text does: parsed again');

  for (let i = 0; i < 5000; i++) statementOf(`SELECT ${i} AS bound_test`);
  t.ok(cachedStatements() <= 4096, `at most 4096 entries (${cachedStatements()})`);
  // Second chance: a text asked for keeps its place while new ones pass through.
  const hot = 'SELECT hot FROM parse_test';
  statementOf(hot).kind;
  const churn = counted(() => {
    for (let i = 0; i < 10_000; i++) {
      statementOf(`SELECT ${i} AS churn`);
      statementOf(hot).kind;
    }
  });
  t.equal(churn.parses, 0, 'a text in use is never evicted by passing ones');
});

t.test('texts that need no parse are not parsed', async (t) => {
  const texts = ['SELECT id FROM t WHERE id = 1', "UPDATE t SET v = 'x' WHERE id = 2", 'INSERT INTO t VALUES (1)', 'BEGIN', 'COMMIT'];
  const session = counted(() => {
    for (const text of texts) {
      const buf = Buffer.from(`${text}\0`);
      t.equal(changesSessionState(buf, 0, buf.length), 0, text);
    }
  });
  t.same(session, { parses: 0, scans: 0 }, 'the session-state byte pre-checks parse nothing');
  const stateful = Buffer.from('SET search_path = parse_test\0');
  t.equal(changesSessionState(stateful, 0, stateful.length), Dirty.Params, 'a SET is parsed');

  const query = (sql: string): Buffer => {
    const b = Buffer.alloc(6 + Buffer.byteLength(sql));
    b[0] = 0x51;
    b.writeInt32BE(b.length - 1, 1);
    b.write(sql, 5);
    return b;
  };
  const routing = new RoutingState();
  const off = { queryParser: false, readWriteSplitting: false, defaultRole: 'any' as const, primaryReads: true };
  const routed = counted(() => routing.route(query('SELECT routing_off FROM t'), off));
  t.same(routed, { parses: 0, scans: 0 }, 'routing with the parser off parses nothing');
  const on = counted(() => t.same(routing.route(query('SELECT routing_on FROM t'), { ...off, queryParser: true, readWriteSplitting: true }).role, 'replica'));
  t.equal(on.parses, 1, 'with read/write splitting a read is classified');
});
