// A pgml call the pooler must refuse at Bind (or Parse), in an
// extended-protocol batch where the server has already failed an earlier
// message: Postgres skips everything up to the Sync after its first error
// and answers the Sync with one ReadyForQuery, so the client must get the
// server's error, then ReadyForQuery, and nothing else (before the fix the
// pooler's raise was a simple Query that the skipping server ignored, with
// the client's Sync dropped: no ReadyForQuery ever came). When nothing failed
// before it, the refusal is the one error, read as the pooler's (no
// PL/pgSQL CONTEXT), with no reply to the messages that raise it.
// Real Postgres 15, a raw protocol client, prepared statements off and on.
import t from 'tap';
import { primaryShard } from './harness/pool-config.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { startPostgres } from './harness/postgres.js';
import { freePort } from './harness/ports.js';
import { dataRow, errorFields, firstError, msg, RawClient, types } from './harness/raw-client.js';

/** A statement whose model comes from a parameter: it parses, and fails at Bind for an unknown model. */
const BY_PARAM = "SELECT pgml.embed($1, 'x') AS e";

t.test('pgml refusals amid a failed extended batch', async (t) => {
  const pg = await startPostgres({
    auth: 'md5',
    users: [{ name: 'app', password: 'pw' }],
    databases: [{ name: 'shard0', owner: 'app' }, { name: 'shard1', owner: 'app' }],
    t,
  });
  const port = await freePort();
  const pool = (mode: string, cache: number) => ({
    pool_mode: mode,
    prepared_statements_cache_size: cache,
    users: [{ username: 'app', password: 'pw', pool_size: 2 }],
    shards: [primaryShard(pg)],
  });
  const pooler = await startPglynx(
    configToml({
      port,
      general: { prepared_statements: true },
      pools: {
        plain: pool('session', 0),
        prepared: pool('transaction', 100),
        sharded: {
          ...pool('transaction', 100),
          query_parser_enabled: true,
          sharding_function: 'pg_bigint_hash',
          automatic_sharding_key: 'items.id',
          shards: [0, 1].map((n) => primaryShard(pg, `shard${n}`)),
        },
      },
      extra: { models: { lexical: { builtin: 'hash-384' } } },
    }),
    { t, logLevel: 'warn' },
  );

  const titles: Record<string, string> = {
    plain: 'session mode, prepared statements off',
    prepared: 'transaction mode, prepared statements on',
    sharded: 'sharded pool',
  };
  for (const database of ['plain', 'prepared', 'sharded']) {
    await t.test(titles[database]!, async (t) => {
      const raw = await RawClient.connect({ host: '127.0.0.1', port: pooler.port, user: 'app', password: 'pw', database });
      t.teardown(() => raw.destroy());
      /** The connection still answers, in step. */
      const alive = async (): Promise<void> => {
        const r = await raw.query('SELECT 41 + 1');
        t.equal(types(r), 'TDCZ', 'the next query is answered in step');
        t.same(dataRow(r[1].body), ['42']);
      };

      await t.test('server error first, refused Bind later: the server error, then one ReadyForQuery', async (t) => {
        raw.send(
          msg.parse('SELEC broken', 's1'),
          msg.bind([], 's1'),
          msg.execute(),
          msg.parse(BY_PARAM, 's2'),
          msg.bind(['nope'], 's2'),
          msg.execute(),
          msg.sync(),
        );
        const r = await raw.readUntilReady();
        t.equal(types(r), 'EZ');
        t.equal(firstError(r)?.get('C'), '42601', "the server's (first) error");
        await alive();
      });

      await t.test('the same with the refused Bind in a later write than its Sync', async (t) => {
        raw.send(msg.parse('SELECT * FROM no_such_table', 's3'), msg.bind([], 's3'), msg.execute(), msg.parse(BY_PARAM, 's4'), msg.bind(['nope'], 's4'));
        await new Promise((resolve) => setTimeout(resolve, 200));
        raw.send(msg.execute(), msg.sync());
        const r = await raw.readUntilReady();
        t.equal(types(r), 'EZ');
        t.equal(firstError(r)?.get('C'), '42P01');
        await alive();
      });

      await t.test('refused at Parse (a constant unknown model) after a server error', async (t) => {
        // What the pool answers for the bad statement alone (a sharded pool's router refuses what it cannot parse: 0A000).
        raw.send(msg.parse('SELEC broken'), msg.bind(), msg.execute(), msg.sync());
        const alone = firstError(await raw.readUntilReady())?.get('C');
        t.equal(alone, database === 'sharded' ? '0A000' : '42601');
        raw.send(msg.parse('SELEC broken'), msg.parse("SELECT pgml.embed('nope', $1)"), msg.bind(['x']), msg.execute(), msg.sync());
        const r = await raw.readUntilReady();
        t.equal(types(r), 'EZ');
        t.equal(firstError(r)?.get('C'), alone, 'the same first error');
        await alive();
      });

      await t.test('pipelined with the next batch', async (t) => {
        raw.send(
          msg.parse('SELEC broken'),
          msg.parse(BY_PARAM, 's5'),
          msg.bind(['nope'], 's5'),
          msg.execute(),
          msg.sync(),
          msg.parse('SELECT 7'),
          msg.bind(),
          msg.execute(),
          msg.sync(),
        );
        const r = await raw.readUntilReady(2);
        t.equal(types(r), 'EZ12DCZ');
        t.same(dataRow(r.find((m) => m.type === 'D')!.body), ['7']);
      });

      await t.test('nothing failed before: the refusal alone, as the pooler error, no reply to its raise', async (t) => {
        raw.send(msg.parse('SELECT 1', 's6'), msg.bind([], 's6'), msg.execute(), msg.parse(BY_PARAM, 's7'), msg.describeStatement('s7'), msg.bind(['nope'], 's7'), msg.execute(), msg.sync());
        const r = await raw.readUntilReady();
        t.equal(types(r), '12DC1tTEZ');
        const f = firstError(r)!;
        t.equal(f.get('C'), '42704');
        t.match(f.get('M'), /model "nope" does not exist/);
        t.equal(f.get('W'), undefined, 'no PL/pgSQL CONTEXT');
        t.equal(r.find((m) => m.type === 't')!.body.readInt16BE(0), 1, "the Describe still shows the client's one parameter");
        await alive();
      });

      await t.test("the client's own statement failing last: its error, not taken for the raise", async (t) => {
        raw.send(msg.parse('SELECT 1 / (random() * 0)::int', 's10'), msg.bind([], 's10'), msg.execute(), msg.parse(BY_PARAM, 's11'), msg.bind(['nope'], 's11'), msg.execute(), msg.sync());
        const r = await raw.readUntilReady();
        t.equal(types(r), '12EZ', "the replies before the server's error, nothing of the skipped raise");
        t.equal(firstError(r)?.get('C'), '22012');
        t.equal(firstError(r)?.get('M'), 'division by zero', "the server's own error");
        raw.send(msg.parse('SELECT 1', 's12'), msg.bind([], 's12'), msg.parse(BY_PARAM, 's13'), msg.bind(['nope'], 's13'), msg.execute(), msg.sync());
        const p = await raw.readUntilReady();
        t.equal(types(p), '121EZ', "the client's ParseComplete/BindComplete pass, the raise's do not");
        t.equal(firstError(p)?.get('C'), '42704');
        await alive();
      });

      await t.test('sent while an earlier statement still runs', async (t) => {
        raw.send(msg.query('SELECT pg_sleep(0.3)'));
        await new Promise((resolve) => setTimeout(resolve, 100));
        raw.send(msg.parse(BY_PARAM, 's14'), msg.bind(['nope'], 's14'), msg.execute(), msg.sync());
        const r = await raw.readUntilReady(2);
        t.equal(types(r), 'TDCZ1EZ', 'the sleep, then the Parse answered and the refusal, nothing of its raise');
        const f = firstError(r)!;
        t.equal(f.get('C'), '42704');
        t.equal(f.get('W'), undefined, 'the pooler error: no PL/pgSQL CONTEXT');
        t.equal(f.get('D'), undefined, 'no DETAIL');
        await alive();
      });

      if (database === 'sharded') {
        // A sharded pool runs a batch at its Sync (the executor cuts units there): nothing is answered on Flush.
        await t.test('Flush before the Sync (sharded): nothing until the Sync, then the error and one ReadyForQuery', async (t) => {
          raw.send(msg.parse(BY_PARAM, 's15'), msg.bind(['nope'], 's15'), msg.execute(), msg.flush());
          await t.rejects(raw.next(300), 'nothing is answered on Flush');
          raw.send(msg.sync());
          const r = await raw.readUntilReady();
          t.equal(types(r), '1EZ', 'at the Sync: ParseComplete, the refusal, one ReadyForQuery');
          t.equal(firstError(r)?.get('C'), '42704');
          await alive();
        });
      } else {
        await t.test('Flush before the Sync: the error comes at once, ReadyForQuery at the Sync', async (t) => {
          raw.send(msg.parse(BY_PARAM, 's15'), msg.bind(['nope'], 's15'), msg.execute(), msg.flush());
          const e = await raw.readMessages('E');
          t.equal(types(e), '1E');
          t.equal(firstError(e)?.get('C'), '42704');
          raw.send(msg.sync());
          t.equal(types(await raw.readUntilReady()), 'Z', 'one ReadyForQuery, for the Sync');
          await alive();
        });
      }

      await t.test('inside a transaction: the first error aborts it, once', async (t) => {
        t.equal(types(await raw.query('BEGIN')), 'CZ');
        raw.send(msg.parse('SELEC broken'), msg.parse(BY_PARAM, 's8'), msg.bind(['nope'], 's8'), msg.execute(), msg.sync());
        const r = await raw.readUntilReady();
        t.equal(types(r), 'EZ');
        t.equal(firstError(r)?.get('C'), '42601');
        t.equal(r[1].body.toString(), 'E', 'ReadyForQuery: in a failed transaction');
        raw.send(msg.parse(BY_PARAM, 's9'), msg.bind(['nope'], 's9'), msg.execute(), msg.sync());
        const again = await raw.readUntilReady();
        t.equal(types(again), 'EZ');
        t.equal(errorFields(again[0].body).get('C'), '25P02', 'in the failed transaction the server refuses first, as it would the client');
        t.equal(types(await raw.query('ROLLBACK')), 'CZ');
        await alive();
      });
    });
  }
});
