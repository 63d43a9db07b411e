// Unit tests of Bind parameter values as pgml reads them (param-values.ts):
// text format as it is, binary format decoded by the statement's parameter
// types (int2/4/8, jsonb's version byte, text[]'s array format, text-like
// bytes), bad binary data refused with 22P03; and parameter types taken from
// a cast written on the parameter ($1::jsonb), as Postgres would type it.
import t from 'tap';
import { analyzePgml } from '../../pooler/pgml/analyze.js';
import { paramTexts } from '../../pooler/pgml/param-values.js';
import { parseParamTypes } from '../../pooler/pgml/rewrite.js';
import { parseBind } from '../../pooler/protocol/messages/bind.js';
import { Oid } from '../../pooler/protocol/codes.js';
import { msg } from '../harness/raw-client.js';

const bindOf = (values: unknown[]) => {
  const b = msg.bind(values);
  return parseBind(b, 0, b.length);
};

/** A one-dimensional text[] in binary format. */
function textArray(items: (string | null)[]): Buffer {
  const head = Buffer.alloc(20);
  head.writeInt32BE(1, 0);
  head.writeInt32BE(1, 4);
  head.writeInt32BE(Oid.text, 8);
  head.writeInt32BE(items.length, 12);
  head.writeInt32BE(1, 16);
  const parts = items.map((s) => {
    const len = Buffer.alloc(4);
    if (s === null) {
      len.writeInt32BE(-1);
      return len;
    }
    const body = Buffer.from(s);
    len.writeInt32BE(body.length);
    return Buffer.concat([len, body]);
  });
  return Buffer.concat([head, ...parts]);
}

t.test('text and binary values', async (t) => {
  const int4 = Buffer.alloc(4);
  int4.writeInt32BE(-7);
  const int8 = Buffer.alloc(8);
  int8.writeBigInt64BE(123n);
  const jsonb = Buffer.concat([Buffer.from([1]), Buffer.from('{"a": 1}')]);
  const bind = bindOf(['plain', int4, int8, jsonb, Buffer.from('héllo'), textArray(['a "q"', null, 'b\\c']), null]);
  t.same(paramTexts(bind, [0, Oid.int4, Oid.int8, Oid.jsonb, Oid.text, Oid.textArray, Oid.text]), ['plain', '-7', '123', '{"a": 1}', 'héllo', '{"a \\"q\\"",NULL,"b\\\\c"}', null]);
  t.same(paramTexts(bindOf([Buffer.from('raw')])), ['raw'], 'no types: bytes as text');
  t.throws(() => paramTexts(bindOf([Buffer.from([1, 2])]), [Oid.int4]), { code: '22P03' }, 'a short int4');
  t.throws(() => paramTexts(bindOf([Buffer.from('{}')]), [Oid.jsonb]), { code: '22P03' }, 'jsonb without its version byte');
});

t.test('a cast on a parameter types it', async (t) => {
  const sql = 'SELECT pgml.transform($1::jsonb, $2, $3::text[]), pgml.infer($4, $5, $6::int8)';
  const types = parseParamTypes([], analyzePgml(sql)!);
  t.same(types.slice(0, 6), [Oid.jsonb, Oid.jsonb, Oid.textArray, Oid.text, Oid.text, Oid.int8]);
});
