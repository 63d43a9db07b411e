// Which SET / RESET texts a transaction-mode client keeps across
// transactions (pooler/router/session-sets.ts), how their values are
// written back as SQL, and the statements that bring a server to a
// client's kept parameters (pooler/client/session-sets.ts).
import t from 'tap';
import '../harness/pg-protocol-hook.js';
import { statementOf } from '../../pooler/router/parse.js';
import { setsMatch, setsSyncQuery } from '../../pooler/client/session-sets.js';

t.test('kept: plain SET / RESET, values as SQL that reads back the same', async (t) => {
  t.same(statementOf('SET search_path = kept, public').sessionSets, [{ name: 'search_path', value: "'kept', 'public'" }]);
  t.same(statementOf("SET work_mem TO '64MB'").sessionSets, [{ name: 'work_mem', value: "'64MB'" }]);
  t.same(statementOf('SET statement_timeout = 0').sessionSets, [{ name: 'statement_timeout', value: '0' }], 'a zero');
  t.same(statementOf('SET random_page_cost = 1.5').sessionSets, [{ name: 'random_page_cost', value: '1.5' }]);
  t.same(statementOf('SET x.y = -5').sessionSets, [{ name: 'x.y', value: '-5' }], 'a custom parameter');
  t.same(statementOf("SET SESSION Work_Mem = 'it''s'").sessionSets, [{ name: 'work_mem', value: "'it''s'" }], 'names lower-cased, quotes doubled');
  t.same(statementOf('RESET work_mem').sessionSets, [{ name: 'work_mem', value: null }]);
  t.same(statementOf('SET work_mem TO DEFAULT').sessionSets, [{ name: 'work_mem', value: null }]);
  t.same(statementOf('RESET ALL').sessionSets, [{ all: true }]);
  t.same(statementOf("SET a.b = 1; SET work_mem = '1MB'").sessionSets, [{ name: 'a.b', value: '1' }, { name: 'work_mem', value: "'1MB'" }], 'several');
});

t.test('not kept: the check-in reset undoes them as before', async (t) => {
  for (const sql of [
    "SET LOCAL work_mem = '1MB'",
    'SET ROLE other',
    "SET SESSION AUTHORIZATION 'x'",
    'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE',
    "SET application_name = 'x'", // reported: followed through ParameterStatus
    "SET TIME ZONE 'UTC'",
    'SET work_mem FROM CURRENT',
    "SET work_mem = '1MB'; SELECT 1",
    "SELECT set_config('work_mem', '1MB', false)",
  ]) {
    t.equal(statementOf(sql).sessionSets, null, sql);
  }
});

t.test('the statements that bring a server to the client\'s kept parameters', async (t) => {
  const client = new Map([['work_mem', "'8MB'"], ['x.y', '1']]);
  t.equal(setsSyncQuery(client, new Map()), "SET work_mem = '8MB';SET x.y = 1;", 'a fresh server');
  t.equal(setsSyncQuery(client, new Map([['work_mem', "'8MB'"], ['x.y', '1']])), '', 'nothing to do');
  t.equal(setsSyncQuery(new Map(), new Map([['search_path', "'evil'"]])), 'RESET search_path;', "another client's value is reset");
  t.equal(setsSyncQuery(new Map([['Odd"Name', '1']]), new Map()), 'SET "Odd""Name" = 1;', 'an odd name is quoted');
  t.ok(setsMatch(new Map(), new Map()), 'none on either side');
  t.notOk(setsMatch(new Map(), new Map([['a.b', '1']])), 'the server has one the client has not');
  t.notOk(setsMatch(client, new Map([['work_mem', "'9MB'"], ['x.y', '1']])), 'a different value');
});
