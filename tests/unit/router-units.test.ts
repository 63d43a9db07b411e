// Unit tests of the router's pure parts: read/write classification with the
// real Postgres parser, PgCat's custom SQL, and load-balancing choices.
import t from 'tap';
import { classify } from '../../pooler/router/classify.js';
import { CustomSqlError, mayBeCustom, parseCustomCommand } from '../../pooler/router/custom-sql.js';
import { Balancer } from '../../pooler/pool/balancer.js';

t.test('read/write classification', async (t) => {
  const cases: [string, string][] = [
    ['SELECT * FROM t WHERE id = 1', 'read'],
    ['select 1; select 2', 'read'],
    ['SHOW search_path', 'read'],
    ['EXPLAIN SELECT * FROM t', 'read'],
    ['VALUES (1), (2)', 'read'],
    ['SELECT * FROM t FOR UPDATE', 'write'],
    ['SELECT * FROM t FOR SHARE', 'write'],
    ["SELECT nextval('s')", 'write'],
    ['SELECT * INTO t2 FROM t', 'write'],
    ['WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x', 'write'],
    ['INSERT INTO t VALUES (1)', 'write'],
    ['UPDATE t SET a = 1', 'write'],
    ['DELETE FROM t', 'write'],
    ['MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE', 'write'],
    ['CREATE TABLE x (a int)', 'write'],
    ['COPY t FROM STDIN', 'write'],
    ['EXPLAIN ANALYZE DELETE FROM t', 'write'],
    ['SELECT 1; DELETE FROM t', 'write'],
    ['BEGIN', 'begin'],
    ['BEGIN READ ONLY', 'begin_read_only'],
    ['START TRANSACTION READ ONLY', 'begin_read_only'],
    ['SET TRANSACTION READ ONLY', 'read'],
    ['COMMIT', 'read'],
    ['this is not sql', 'write'],
  ];
  for (const [sql, kind] of cases) t.equal(classify(sql), kind, sql);
});

t.test("PgCat's custom SQL", async (t) => {
  t.same(parseCustomCommand("SET SHARDING KEY TO '1234'"), { kind: 'set_sharding_key', key: '1234' });
  t.same(parseCustomCommand('set shard to 2;'), { kind: 'set_shard', shard: 2 });
  t.same(parseCustomCommand("SET SHARD TO 'any'"), { kind: 'set_shard', shard: 'any' });
  t.same(parseCustomCommand('SHOW SHARD'), { kind: 'show_shard' });
  t.same(parseCustomCommand("SET SERVER ROLE TO 'replica'"), { kind: 'set_server_role', role: 'replica' });
  t.same(parseCustomCommand('show server role'), { kind: 'show_server_role' });
  t.same(parseCustomCommand("SET PRIMARY READS TO 'off'"), { kind: 'set_primary_reads', value: 'off' });
  t.same(parseCustomCommand('SHOW PRIMARY READS;'), { kind: 'show_primary_reads' });
  t.equal(parseCustomCommand('SET search_path TO x'), null, 'ordinary SET is not ours');
  t.equal(parseCustomCommand('SHOW shared_buffers'), null);
  t.throws(() => parseCustomCommand("SET SERVER ROLE TO 'boss'"), { code: '22023' });
  t.ok(new CustomSqlError('x').code === '22023');
  t.throws(() => parseCustomCommand("SET SHARD TO 'x'"), { code: '22023' });
});

t.test('load balancing', async (t) => {
  const three = [{ busy: 0 }, { busy: 0 }, { busy: 0 }];
  const rr = new Balancer('round_robin');
  t.same([0, 1, 2, 3, 4, 5].map(() => rr.pick(three)), [0, 1, 2, 0, 1, 2], 'round robin cycles');
  const loc = new Balancer('loc');
  t.equal(loc.pick([{ busy: 3 }, { busy: 1 }, { busy: 2 }]), 1, 'loc picks the least busy');
  const random = new Balancer('random');
  const counts = [0, 0, 0];
  for (let i = 0; i < 3000; i++) counts[random.pick(three)]++;
  for (const c of counts) t.ok(Math.abs(c - 1000) <= 150, `random within ±15% of a third (${c})`);
  t.equal(random.pick([]), -1, 'no candidate');
});

t.test('mayBeCustom: only short SET / SHOW statements are decoded', async (t) => {
  const at = (sql: string): boolean => {
    const b = Buffer.from(sql);
    return mayBeCustom(b, 0, b.length);
  };
  t.ok(at('SET SHARD TO 1'));
  t.ok(at('  show server role'));
  t.ok(at('set\tsharding key to 5'));
  t.notOk(at('SELECT 1'), 'a SELECT is not decoded');
  t.notOk(at('SETTINGS'));
  t.notOk(at('SHOWING'));
  t.notOk(at(`SET application_name = '${'x'.repeat(2000)}'`), 'a long statement is not decoded');
});
