// Session state must not leak from one client to the next in transaction
// mode (issue 11, point 4). pool_size 1: client A does something that leaves
// state on its server connection and disconnects; client B, on the same
// server, must find it as fresh: its own role and session user, the default
// search_path and settings, no advisory lock, temp relation, prepared
// statement, cursor or LISTEN of A's, and no sequence value (lastval raises
// 55000). Each case is one A and one B.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { primaryShard } from './harness/pool-config.js';
import { parseConfig } from '../config/load.js';
import { FILE, GENERAL, minimal } from './harness/config-fixtures.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { startPostgres } from './harness/postgres.js';
import { freePort } from './harness/ports.js';
import { dataRow, firstError, frame, msg, RawClient, types, type RawMessage } from './harness/raw-client.js';

/** What B sees; every column must equal the fresh server's. */
const CHECK = `SELECT current_user AS role, session_user AS session_user,
  current_setting('search_path') AS search_path, current_setting('statement_timeout') AS statement_timeout,
  current_setting('TimeZone') AS timezone, current_setting('default_transaction_read_only') AS read_only,
  (SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS advisory_locks,
  (SELECT count(*) FROM pg_catalog.pg_class WHERE relnamespace = pg_my_temp_schema()) AS temp_relations,
  (SELECT count(*) FROM pg_catalog.pg_prepared_statements WHERE name NOT LIKE 'pglynx%') AS prepared,
  (SELECT count(*) FROM pg_catalog.pg_cursors) AS cursors,
  (SELECT count(*) FROM pg_catalog.pg_listening_channels()) AS listening,
  public.sequence_state() AS sequences`;

const SETUP = [
  'CREATE ROLE other',
  'CREATE SCHEMA evil',
  'CREATE SEQUENCE public.s',
  'GRANT ALL ON SEQUENCE public.s TO PUBLIC',
  // currval() and lastval() raise 55000 until the session used a sequence (setval sets currval only).
  `CREATE FUNCTION public.sequence_state() RETURNS text LANGUAGE plpgsql AS $$
   DECLARE state text := '';
   BEGIN
     BEGIN PERFORM pg_catalog.currval('public.s'); state := 'currval set';
     EXCEPTION WHEN object_not_in_prerequisite_state THEN state := 'currval unset'; END;
     BEGIN PERFORM pg_catalog.lastval(); RETURN state || ', lastval set';
     EXCEPTION WHEN object_not_in_prerequisite_state THEN RETURN state || ', lastval unset'; END;
   END $$`,
  // State changed where no pooler can see it: only server_reset_query_always helps.
  `CREATE FUNCTION public.leaky() RETURNS int LANGUAGE plpgsql AS $$
   BEGIN PERFORM set_config('search_path', 'evil', false); PERFORM pg_advisory_lock(4299); RETURN 1; END $$`,
  // A reported setting changed inside a function: the server's ParameterStatus tells.
  `CREATE FUNCTION public.read_only_default() RETURNS int LANGUAGE plpgsql AS $$
   BEGIN PERFORM set_config('default_transaction_read_only', 'on', false); RETURN 1; END $$`,
];

type Step = string | Buffer[];
interface Case {
  name: string;
  /** Simple Queries (a string), or raw frontend messages ending in Sync. */
  steps: Step[];
  /** The pool A and B use (default: plain). */
  pool?: 'plain' | 'cached' | 'always' | 'sharded';
}

const fnCall = (oid: number, arg: string): Buffer => {
  const value = Buffer.from(arg);
  const body = Buffer.alloc(4 + 2 + 2 + 2 + 4 + value.length + 2);
  let i = body.writeInt32BE(oid, 0);
  i = body.writeInt16BE(1, i); // one format code
  i = body.writeInt16BE(0, i); // text
  i = body.writeInt16BE(1, i); // one argument
  i = body.writeInt32BE(value.length, i);
  i += value.copy(body, i);
  body.writeInt16BE(0, i); // result as text
  return frame('F', body);
};

const cases = (advisoryLockOid: number): Case[] => [
  // The list.
  { name: "set_config('role', 'other', false)", steps: ["SELECT set_config('role', 'other', false)"] },
  { name: "set_config('search_path', 'evil', false)", steps: ["SELECT set_config('search_path', 'evil', false)"] },
  { name: 'SET after SELECT in one Query', steps: ['SELECT 1; SET search_path = evil'] },
  { name: 'BEGIN; SET; COMMIT in one Query', steps: ['BEGIN; SET search_path = evil; COMMIT'] },
  { name: 'SET inside DO', steps: ['DO $$BEGIN SET search_path = evil; END$$'] },
  { name: 'pg_advisory_lock', steps: ['SELECT pg_advisory_lock(4242)'] },
  { name: 'pg_advisory_lock inside DO', steps: ['DO $$BEGIN PERFORM pg_advisory_lock(4243); END$$'] },
  { name: 'SELECT INTO TEMP', steps: ['SELECT 1 AS x INTO TEMP t'] },
  { name: 'CREATE OR REPLACE TEMP VIEW', steps: ['CREATE OR REPLACE TEMP VIEW v AS SELECT 1'] },
  { name: 'nextval (currval / lastval)', steps: ["SELECT nextval('public.s')"] },
  // More.
  { name: 'SET ROLE', steps: ['SET ROLE other'] },
  { name: 'SET SESSION AUTHORIZATION', steps: ['SET SESSION AUTHORIZATION other'] },
  { name: 'LISTEN', steps: ['LISTEN chan'] },
  { name: 'PREPARE', steps: ['PREPARE p AS SELECT 1'] },
  { name: 'DECLARE WITH HOLD', steps: ['BEGIN', 'DECLARE c CURSOR WITH HOLD FOR SELECT 1', 'COMMIT'] },
  { name: 'CREATE TEMP TABLE', steps: ['CREATE TEMP TABLE tt (a int)'] },
  { name: 'CREATE TABLE pg_temp.x', steps: ['CREATE TABLE pg_temp.x (a int)'] },
  { name: 'temp sequence after SELECT in one Query', steps: ['SELECT 1; CREATE TEMP SEQUENCE ts'] },
  { name: 'setval', steps: ["SELECT setval('public.s', 42)"] },
  { name: 'pg_try_advisory_lock', steps: ['SELECT pg_try_advisory_lock(4244)'] },
  { name: 'advisory lock after SELECT in one Query', steps: ['SELECT 1; SELECT pg_advisory_lock_shared(4245)'] },
  { name: 'UPDATE pg_settings', steps: ["UPDATE pg_settings SET setting = 'evil' WHERE name = 'search_path'"] },
  { name: 'set_config in a CTE', steps: ["WITH x AS (SELECT set_config('statement_timeout', '1234', false)) SELECT * FROM x"] },
  { name: 'set_config with is_local as text false', steps: ["SELECT set_config('TimeZone', 'Asia/Tokyo', 'f')"] },
  { name: 'SET SESSION CHARACTERISTICS', steps: ['SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY'] },
  { name: 'comment before SET', steps: ['/* hi */ -- there\n SET statement_timeout = 1234'] },
  { name: 'nested comment before SET', steps: ['/* a /* nested */ comment */ SET search_path = evil'] },
  { name: 'form feed before SET', steps: ['\fSET search_path = evil'] },
  {
    name: 'set_config in extended protocol (unnamed Parse)',
    steps: [[msg.parse("SELECT set_config('search_path', $1, false)"), msg.bind(['evil']), msg.execute(), msg.sync()]],
  },
  {
    name: 'advisory lock in extended protocol (named Parse)',
    steps: [[msg.parse('SELECT pg_advisory_lock($1)', 'lk'), msg.bind(['4246'], 'lk'), msg.execute(), msg.sync()]],
  },
  {
    name: 'prepared statements cache: set_config, named Parse, Bind in the same batch',
    pool: 'cached',
    steps: [[msg.parse("SELECT set_config('role', $1, false)", 'sr'), msg.bind(['other'], 'sr'), msg.execute(), msg.sync()]],
  },
  {
    name: 'prepared statements cache: advisory lock, Parse answered by the pooler, Bind later',
    pool: 'cached',
    steps: [[msg.parse('SELECT pg_advisory_lock($1)', 'lk'), msg.sync()], [msg.bind(['4247'], 'lk'), msg.execute(), msg.sync()]],
  },
  { name: 'prepared statements cache: SET in one Query', pool: 'cached', steps: ['SELECT 1; SET search_path = evil'] },
  { name: 'fast-path FunctionCall of pg_advisory_lock', steps: [[fnCall(advisoryLockOid, '4248')]] },
  { name: 'a reported setting changed inside a function (ParameterStatus)', steps: ['SELECT public.read_only_default()'] },
  { name: 'SET ROLE inside DO', steps: ['DO $$BEGIN SET ROLE other; END$$'] },
  { name: 'server_reset_query_always: state changed inside a function', pool: 'always', steps: ['SELECT public.leaky()'] },
  // A sharded pool: a statement with no sharding key runs on default_shard (shard_0), B's check too.
  { name: 'sharded pool: set_config', pool: 'sharded', steps: ["SELECT set_config('search_path', 'evil', false)"] },
  { name: 'sharded pool: advisory lock after SELECT in one Query', pool: 'sharded', steps: ['SELECT 1; SELECT pg_advisory_lock(4249)'] },
];

async function run(c: RawClient, step: Step): Promise<RawMessage[]> {
  if (typeof step === 'string') return c.query(step);
  c.send(...step);
  return c.readUntilReady();
}

t.test('state left by one client is gone for the next (transaction mode, pool_size 1)', async (t) => {
  const pgc = await startPostgres({
    users: [{ name: 'app', password: 'pw', superuser: true }],
    databases: [{ name: 's0' }, { name: 's1' }],
    settings: { log_statement: 'all' },
    t,
  });
  for (const database of ['postgres', 's0', 's1']) {
    for (const sql of SETUP) if (database === 'postgres' || !sql.includes('ROLE')) await pgc.query(sql, [], database);
  }
  const [{ oid }] = await pgc.query<{ oid: number }>("SELECT 'pg_advisory_lock(bigint)'::regprocedure::oid::int AS oid");
  const server = (database: string) => primaryShard(pgc, database);
  const pool = (extra: Record<string, number | boolean | string>, databases = ['postgres']) => ({
    pool_mode: 'transaction' as const,
    ...extra,
    users: [{ username: 'app', password: 'pw', pool_size: 1 }],
    shards: databases.map(server),
  });
  // One pool (so one server connection) per case: a leak in one case cannot show up in the next.
  const kinds = {
    plain: () => pool({}),
    cached: () => pool({ prepared_statements_cache_size: 100 }),
    always: () => pool({ server_reset_query_always: true }),
    sharded: () => pool({ sharding_key_regex: '/\\* sharding_key: (-?\\d+) \\*/', default_shard: 'shard_0' }, ['s0', 's1']),
  };
  const all = cases(oid);
  const pools = Object.fromEntries(all.map((c, i) => [`case${i}`, kinds[c.pool ?? 'plain']()]));
  const port = await freePort();
  const pooler = await startPglynx(configToml({ port, pools: { fresh: pool({}), ...pools } }), { t, logLevel: 'warn' });
  t.notMatch(pooler.output(), /server_reset_query_always/, 'the key is known');
  const connect = (database: string): Promise<RawClient> => RawClient.connect({ host: '127.0.0.1', port: pooler.port, user: 'app', password: 'pw', database });

  const check = async (database: string): Promise<Record<string, string | null>> => {
    const b = await connect(database);
    const replies = await b.query(CHECK);
    b.end();
    const error = firstError(replies);
    if (error) throw new Error(`check failed: ${error.get('C')} ${error.get('M')}`);
    const desc = replies.find((m) => m.type === 'T')!;
    const names: string[] = [];
    let i = 2;
    for (let n = desc.body.readInt16BE(0); n > 0; n--) {
      const end = desc.body.indexOf(0, i);
      names.push(desc.body.toString('utf8', i, end));
      i = end + 19;
    }
    const row = dataRow(replies.find((m) => m.type === 'D')!.body);
    return Object.fromEntries(names.map((name, k) => [name, row[k]]));
  };

  const fresh = await check('fresh');
  t.equal(fresh.role, 'app');
  t.equal(fresh.sequences, 'currval unset, lastval unset');
  const start = Date.now();
  for (const [i, c] of all.entries()) {
    const database = `case${i}`;
    const a = await connect(database);
    for (const step of c.steps) {
      const replies = await run(a, step);
      t.equal(firstError(replies), null, `${c.name}: A's step runs (${types(replies)})`);
    }
    a.end();
    await a.closed;
    t.same(await check(database), fresh, `${c.name}: B finds a fresh session`);
  }
  t.ok(Date.now() - start < 20_000, 'the cases are fast');

  // Cost: statements that leave nothing behind cost no reset statement (the
  // server's log shows every statement the pooler sent).
  const quiet = [
    'SELECT 1',
    'SELECT pg_advisory_xact_lock(4300)',
    "SELECT set_config('statement_timeout', '1234', true)",
    "SELECT 'a dataset' OFFSET 0",
    'BEGIN; SET LOCAL search_path = evil; SELECT 1; COMMIT',
    "SELECT currval('public.s') IS NULL FROM (SELECT 1) x WHERE false",
    'CREATE TABLE IF NOT EXISTS public.u (a int, temperature int)',
    'UPDATE public.u SET a = 1, temperature = 2 WHERE false',
  ];
  const marker = `-- quiet-cases-${Date.now()}`;
  const c = await connect('fresh');
  t.equal(firstError(await c.query(`SELECT 1 ${marker}`)), null);
  for (const sql of quiet) t.equal(firstError(await c.query(sql)), null, `${sql} runs`);
  c.end();
  await c.closed;
  t.same(await check('fresh'), fresh, 'nothing leaked');
  const log = readFileSync(pgc.logPath, 'utf8');
  t.ok(log.includes(marker) && /pg_advisory_unlock_all/.test(log), "the log shows the pooler's statements (the resets of the cases above)");
  const after = log.slice(log.indexOf(marker));
  t.notMatch(after, /RESET ALL|DISCARD|pg_advisory_unlock_all/, 'and no reset was sent for them');
});

t.test('server_reset_query_always: [general] default false, a pool inherits it or overrides it', async (t) => {
  t.equal(parseConfig(minimal(), FILE).pools.app.server_reset_query_always, false, 'off by default');
  const on = `${GENERAL}server_reset_query_always = true\n`;
  t.equal(parseConfig(minimal({ general: on }), FILE).pools.app.server_reset_query_always, true, 'inherited from [general]');
  t.equal(parseConfig(minimal({ general: on, pool: 'server_reset_query_always = false\n' }), FILE).pools.app.server_reset_query_always, false, 'the pool wins');
  t.throws(() => parseConfig(minimal({ pool: 'server_reset_query_always = "yes"\n' }), FILE), /server_reset_query_always/, 'a boolean');
});
