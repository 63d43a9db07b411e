// The raise of an extended batch (pooler/pgml/raise-batch.ts) and its
// replies: Parse/Bind/Execute before the client's Sync, whose
// ParseComplete/BindComplete the reply editor drops when its marked error
// follows, and whose absence (skipped after an earlier error) leaves the
// client's own replies untouched. Split at every byte.
import t from 'tap';
import { DescribeReplies } from '../../pooler/pgml/describe-replies.js';
import { PgmlTransformer } from '../../pooler/pgml/transformer.js';
import { isRaised, raiseMessages } from '../../pooler/pgml/raise-batch.js';
import type { EmbeddingProvider } from '../../pooler/pgml/rewrite.js';
import { errorResponse, parseErrorFields } from '../../pooler/protocol/messages/error.js';
import { MessageFramer } from '../../pooler/protocol/framer.js';
import { takeUnits, withStatementText } from '../../pooler/sharding/units.js';
import { serialize } from '../harness/pg-sasl.js';

const engine: EmbeddingProvider = { has: (m) => m === 'minilm', embed: async (_m, inputs) => inputs.map(() => Float32Array.from([1])) };

const be = (type: string, body: Buffer | string = Buffer.alloc(0)): Buffer => {
  const b = typeof body === 'string' ? Buffer.from(body, 'latin1') : body;
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(b.length + 4, 1);
  return Buffer.concat([head, b]);
};
const PC = be('1');
const BC = be('2');
const ready = be('Z', 'I');
const types = (buf: Buffer): string => {
  const f = new MessageFramer().push(buf);
  return f.messages.filter((_, i) => i % 3 === 0).map((c) => String.fromCharCode(c)).join('');
};
const atEveryByte = (r: DescribeReplies, stream: Buffer): Buffer => Buffer.concat([...stream].map((byte) => r.edit(Buffer.from([byte]))));
const ctx = () => ({ owed: 0, position: { header: Buffer.alloc(0), remaining: 0 } });

/** The DETAIL the raise carries, read back from its DO block. */
const mark = /DETAIL = '([^']*)'/.exec(raiseMessages('42704', 'x').toString('utf8'))![1];
const raisedError = be('E', `SERROR\0C42704\0Mno model\0D${mark}\0WPL/pgSQL function inline_code_block line 1 at RAISE\0\0`);

t.test('raiseMessages: Parse, Bind, Execute of the unnamed statement; the mark tells its error', async (t) => {
  t.equal(types(raiseMessages('42704', "it's $1")), 'PBE');
  t.ok(isRaised(parseErrorFields(raisedError.subarray(5))));
  t.notOk(isRaised(parseErrorFields(be('E', 'SERROR\0C22012\0Mdivision by zero\0\0').subarray(5))));
});

t.test('transformer: a refused Bind becomes the raise, the rest of the batch is dropped, its Sync kept', async (t) => {
  const pgml = new PgmlTransformer(engine);
  const first = new MessageFramer().push(
    Buffer.concat([
      serialize.parse({ name: 'bad', text: 'SELEC 1' }),
      serialize.parse({ name: 'q', text: 'SELECT pgml.embed($1, $2)' }),
      serialize.bind({ statement: 'q', values: ['nope', 'x'] }),
      serialize.execute(),
    ]),
  );
  t.equal(types(await pgml.transform(first.buffer, first.messages)), 'PPPBE', 'the Execute after the refused Bind is dropped');
  const later = new MessageFramer().push(Buffer.concat([serialize.describe({ type: 'P', name: '' }), serialize.sync(), serialize.query('SELECT 1')]));
  t.ok(pgml.involved(later.buffer, later.messages), 'still dropping up to the Sync');
  t.equal(types(await pgml.transform(later.buffer, later.messages)), 'SQ', "the client's Sync and what follows go on");
});

t.test('DescribeReplies: the raise ran, after client replies that look alike', async (t) => {
  const r = new DescribeReplies();
  r.raised(0, ctx);
  r.sync(false, 0, ctx);
  const client = Buffer.concat([PC, BC, be('D', Buffer.from([0, 0])), be('C', 'SELECT 1\0'), PC]);
  const out = atEveryByte(r, Buffer.concat([client, PC, BC, raisedError, ready]));
  t.same(out, Buffer.concat([client, errorResponse('42704', 'no model'), ready]), "the client's replies pass; the raise's are dropped, its error is the pooler's");
  t.notOk(r.active);
});

t.test('DescribeReplies: the raise skipped after the server failed the client', async (t) => {
  const r = new DescribeReplies();
  r.raised(0, ctx);
  r.sync(false, 0, ctx);
  const own = be('E', 'SERROR\0C22012\0Mdivision by zero\0\0');
  const stream = Buffer.concat([PC, BC, own, ready]);
  t.same(atEveryByte(r, stream), stream, "the client's ParseComplete, BindComplete and error as they came");
  t.notOk(r.active);
  // A notice between the raise's replies does not release them.
  const n = new DescribeReplies();
  n.raised(0, ctx);
  n.sync(false, 0, ctx);
  const notice = be('N', 'SNOTICE\0C00000\0Mhi\0\0');
  t.same(atEveryByte(n, Buffer.concat([PC, notice, BC, raisedError, ready])), Buffer.concat([notice, errorResponse('42704', 'no model'), ready]));
});

t.test("sharded units: the raise says nothing of where the unit runs, and a cross-shard plan leaves it as it is", async (t) => {
  const raise = raiseMessages('42704', 'no model');
  const stream = Buffer.concat([serialize.parse({ text: 'SELECT * FROM items WHERE id = $1' }), serialize.bind({ values: ['7'] }), serialize.execute(), raise, serialize.sync()]);
  const { units } = takeUnits(stream, new Map());
  t.equal(units.length, 1);
  t.equal(units[0]!.sql, 'SELECT * FROM items WHERE id = $1', "the client's statement routes the unit");
  t.same(units[0]!.params, ['7'], "the client's parameters, not the raise's Bind");
  const planned = withStatementText(units[0]!, 'SELECT 1');
  t.ok(planned.includes(raise.subarray(0, raise.readInt32BE(1) + 1)), "the raise's Parse is kept");
  t.equal(types(planned), 'PBEPBES');
});
