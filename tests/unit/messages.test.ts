// The message model without a server (pooler/protocol/): the serializer
// writes the bytes node-postgres's serializer writes (an independent
// oracle), its reused buffer never leaks one message into another, the
// cursor walks framed batches and raw buffers alike, and the typed views
// read back what the builders wrote, frontend and backend.
import t from 'tap';
import { serialize } from '../harness/pg-sasl.js';
import { Backend, Frontend, TxStatus } from '../../pooler/protocol/codes.js';
import { MessageCursor, MessageView, declaredLength, messageCount, messageType } from '../../pooler/protocol/cursor.js';
import { MessageFramer, ProtocolError } from '../../pooler/protocol/framer.js';
import { MessageBuilder } from '../../pooler/protocol/serializer.js';
import { bind, bindWithStatement, paramFormat, parseBind } from '../../pooler/protocol/messages/bind.js';
import { buildDataRow, dataRow, parseDataRow } from '../../pooler/protocol/messages/data-row.js';
import { errorResponse, noticeResponse } from '../../pooler/protocol/messages/error.js';
import { execute, FLUSH, SYNC, TERMINATE } from '../../pooler/protocol/messages/execute.js';
import { parameterDescription, parameterTypes } from '../../pooler/protocol/messages/parameter-description.js';
import { parse, parseNamed, parseWithSql } from '../../pooler/protocol/messages/parse.js';
import { passwordMessage, saslInitialResponse, saslResponse } from '../../pooler/protocol/messages/password.js';
import { query } from '../../pooler/protocol/messages/query.js';
import { buildRowDescription, field, parseRowDescription, rowDescription } from '../../pooler/protocol/messages/row-description.js';
import { commandComplete, commandTagIs, emptyQueryResponse } from '../../pooler/protocol/messages/rows.js';
import { cancelRequest, sslRequest, startupMessage } from '../../pooler/protocol/messages/startup.js';
import { parameterStatus, readyForQuery } from '../../pooler/protocol/messages/status.js';
import { close, describe, Target } from '../../pooler/protocol/messages/target.js';

t.test('frontend messages: the same bytes as pg-protocol writes', async (t) => {
  t.same(query('SELECT 1'), serialize.query('SELECT 1'));
  t.same(query('SELECT \'é\''), serialize.query('SELECT \'é\''), 'UTF-8 text');
  t.same(parse('s1', 'SELECT $1, $2', [23, 25]), serialize.parse({ name: 's1', text: 'SELECT $1, $2', types: [23, 25] }));
  t.same(parse('', 'SELECT 1'), serialize.parse({ text: 'SELECT 1' }));
  t.same(
    bind({ portal: 'p', statement: 's1', formats: [0, 0, 0], values: ['42', null, 'x'], resultFormats: Buffer.from([0, 1, 0, 0]) }),
    serialize.bind({ portal: 'p', statement: 's1', values: ['42', null, 'x'] }),
  );
  t.same(describe(Target.Statement, 's1'), serialize.describe({ type: 'S', name: 's1' }));
  t.same(describe(Target.Portal, ''), serialize.describe({ type: 'P' }));
  t.same(close(Target.Statement, 's1'), serialize.close({ type: 'S', name: 's1' }));
  t.same(execute('p', 10), serialize.execute({ portal: 'p', rows: 10 }));
  t.same(execute(), serialize.execute());
  t.same(SYNC, serialize.sync());
  t.same(FLUSH, serialize.flush());
  t.same(TERMINATE, serialize.end());
  t.same(passwordMessage('secret'), serialize.password('secret'));
  t.same(saslInitialResponse('SCRAM-SHA-256', 'n,,n=,r=abc'), serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', 'n,,n=,r=abc'));
  t.same(saslResponse('c=biws,r=abc,p=xyz'), serialize.sendSCRAMClientFinalMessage('c=biws,r=abc,p=xyz'));
  t.same(startupMessage({ user: 'u', database: 'd', application_name: 'a' }), serialize.startup({ user: 'u', database: 'd', application_name: 'a' }));
  t.same(sslRequest(), serialize.requestSsl());
  t.same(cancelRequest(1234, -5), serialize.cancel(1234, -5));
});

t.test('the builder reuses one buffer without leaking between messages', async (t) => {
  const b = new MessageBuilder();
  const first = b.begin(Frontend.Query).cstring('first').finish();
  const copy = Buffer.from(first);
  const second = b.begin(Frontend.Query).cstring('second, longer').finish();
  t.same(first, copy, 'a finished message is not overwritten by the next');
  t.equal(MessageView.of(second).sql(), 'second, longer');

  const big = 'x'.repeat(100_000);
  t.equal(MessageView.of(b.begin(Frontend.Query).cstring(big).finish()).sql(), big, 'grows past its initial size');
  t.equal(b.begin(Frontend.Query).cstring('after').finish().length, 11, 'and keeps working after growing');

  b.begin(Frontend.Query).cstring('abandoned'); // an exception left this open
  t.same(b.begin(Frontend.Sync).finish(), SYNC, 'a new message drops an abandoned one');

  b.begin(Backend.CommandComplete).cstring('SELECT 1').end();
  b.begin(Backend.ReadyForQuery).byte(TxStatus.Idle).end();
  t.same(b.take(), Buffer.concat([commandComplete('SELECT 1'), readyForQuery(TxStatus.Idle)]), 'several messages, one take');
  t.throws(() => b.end(), /no message is open/);
});

t.test('a cursor walks the framer\'s triples and reads each message', async (t) => {
  const batch = Buffer.concat([
    parse('s1', 'SELECT $1::int', [23]),
    bind({ portal: 'p1', statement: 's1', formats: [1], values: [Buffer.from([0, 0, 0, 7])], resultFormats: Buffer.from([0, 0]) }),
    describe(Target.Portal, 'p1'),
    execute('p1', 0),
    close(Target.Statement, 's1'),
    SYNC,
    query('BEGIN'),
  ]);
  const { buffer, messages } = new MessageFramer().push(batch);
  t.equal(messageCount(messages), 7);
  t.equal(messageType(messages, 0), Frontend.Parse);
  t.equal(messageType(messages, -1), Frontend.Query);
  t.equal(messageType(messages, 7), 0, 'past the end');

  const seen: unknown[] = [];
  const c = new MessageCursor();
  for (c.frames(buffer, messages); c.next(); ) {
    switch (c.type) {
      case Frontend.Parse:
        seen.push(['P', c.statementName(), c.sql(), c.paramTypes(), c.isNamedParse(), c.parseTail().length]);
        t.equal(buffer.toString('utf8', c.sqlStart(), c.sqlEnd()), 'SELECT $1::int');
        break;
      case Frontend.Bind: {
        const b = c.bind();
        seen.push(['B', c.portal(), c.statementName(), b.formats, b.values.map((v) => v?.readInt32BE(0)), paramFormat(b, 0)]);
        break;
      }
      case Frontend.Describe:
        seen.push(['D', c.target() === Target.Portal, c.portal(), c.statementName()]);
        break;
      case Frontend.Execute:
        seen.push(['E', c.portal()]);
        break;
      case Frontend.Close:
        seen.push(['C', c.statementName(), c.portal()]);
        break;
      case Frontend.Sync:
        seen.push(['S', c.length]);
        break;
      case Frontend.Query:
        seen.push(['Q', c.sql(), c.remaining]);
        break;
    }
  }
  t.same(seen, [
    ['P', 's1', 'SELECT $1::int', [23], true, 'SELECT $1::int'.length + 1 + 2 + 4],
    ['B', 'p1', 's1', [1], [7], 1],
    ['D', true, 'p1', null],
    ['E', 'p1'],
    ['C', 's1', null],
    ['S', 4],
    ['Q', 'BEGIN', 0],
  ]);

  // The same bytes walked without a framer: same messages, same bounds.
  const bounds: number[] = [];
  for (c.over(batch); c.next(); ) bounds.push(c.type, c.start, c.end);
  t.same(bounds, messages);
  t.equal(c.remaining, -1, 'remaining is only known for framed batches');
  t.equal(declaredLength(batch, 0), messages[2]! - 1);
});

t.test('malformed input: the cursor and the accessors refuse it', async (t) => {
  const refused = (fn: () => void, type: new (...args: never[]) => Error, what: string): void => {
    try {
      fn();
      t.fail(what);
    } catch (err) {
      t.ok(err instanceof type, `${what}: ${(err as Error).message}`);
    }
  };
  const q = query('SELECT 1');
  refused(() => {
    for (const c = new MessageCursor().over(q.subarray(0, q.length - 2)); c.next(); );
  }, ProtocolError, 'a message running past the end');
  refused(() => {
    for (const c = new MessageCursor().over(Buffer.concat([q, Buffer.from([0x51, 0])])); c.next(); );
  }, ProtocolError, 'a truncated header');
  const noTerminator = Buffer.from([Frontend.Parse, 0, 0, 0, 6, 0x61, 0x62]);
  refused(() => MessageView.of(noTerminator).sql(), ProtocolError, 'a Parse without its terminators');
  refused(() => MessageView.of(SYNC).sql(), TypeError, 'sql() of a Sync');
});

t.test('rewriting in place keeps every other byte', async (t) => {
  const p = parse('s1', 'SELECT 1', [25]);
  t.same(parseWithSql(p, 0, p.length, 'SELECT 2'), parse('s1', 'SELECT 2', [25]));
  t.same(parseNamed('g1', MessageView.of(p).parseTail()), parse('g1', 'SELECT 1', [25]));
  const b = bind({ portal: 'p', statement: 's1', formats: [0, 1], values: ['a', Buffer.from([1])], resultFormats: Buffer.from([0, 1, 0, 1]) });
  const renamed = bindWithStatement(b, 0, b.length, 'pglynx_0123');
  const parts = parseBind(renamed);
  t.equal(parts.statement, 'pglynx_0123');
  t.equal(parts.portal.toString(), 'p');
  t.same(parts.formats, [0, 1]);
  t.same(parts.values, [Buffer.from('a'), Buffer.from([1])]);
  t.same(parts.resultFormats, Buffer.from([0, 1, 0, 1]));
  t.same(bind({ ...parts, statement: 's1' }), b, 'parts write back to the same bytes');
});

t.test('backend messages read back what was written', async (t) => {
  const v = new MessageView();
  const row = dataRow(['1', null, 'é', 42, 7n]);
  t.same(v.at(row, 0, row.length).columns().map((c) => c?.toString() ?? null), ['1', null, 'é', '42', '7']);
  t.same(parseDataRow(row.subarray(5)).map((c) => c?.toString() ?? null), ['1', null, 'é', '42', '7']);
  const cells = [Buffer.from('a'), null, Buffer.from('ccc')];
  t.same(buildDataRow(cells, 2), dataRow(['a', null]), 'raw cells, first `width` of them');
  t.throws(() => parseDataRow(Buffer.from([0, 1, 0, 0, 0, 9, 1])), /DataRow/, 'a column past the end');

  const fields = [field('id', 20, 8), { name: 'big', tableOid: 0xfffffff0, attnum: 3, typeOid: 0x80000001, typlen: -1, typmod: 12, format: 1 }];
  const desc = buildRowDescription(fields);
  t.same(parseRowDescription(desc.subarray(5)), fields, 'OIDs past 2^31 survive (unsigned)');
  t.same(MessageView.of(desc).fields(), fields);
  t.same(
    parseRowDescription(rowDescription([{ name: 'n', type: 'int' }, { name: 't' }, { name: 'x', type: 'numeric' }]).subarray(5)).map((f) => [f.name, f.typeOid, f.typlen]),
    [['n', 20, 8], ['t', 25, -1], ['x', 1700, -1]],
  );

  const err = errorResponse('42P01', 'relation "x" does not exist', 'ERROR', 'some detail');
  const f = MessageView.of(err).errorFields();
  t.same([f.get('S'), f.get('V'), f.get('C'), f.get('M'), f.get('D')], ['ERROR', 'ERROR', '42P01', 'relation "x" does not exist', 'some detail']);
  t.equal(noticeResponse('hi')[0], Backend.NoticeResponse);

  const cc = commandComplete('DEALLOCATE ALL');
  t.equal(MessageView.of(cc).commandTag(), 'DEALLOCATE ALL');
  t.ok(commandTagIs(cc, 0, cc.length, Buffer.from('DEALLOCATE ALL\0')));
  t.notOk(commandTagIs(cc, 0, cc.length, Buffer.from('DISCARD ALL\0')));
  t.same(MessageView.of(parameterStatus('TimeZone', 'UTC')).parameter(), ['TimeZone', 'UTC']);
  t.equal(MessageView.of(readyForQuery(TxStatus.InTransaction)).txStatus(), TxStatus.InTransaction);
  t.same(emptyQueryResponse(), Buffer.from([Backend.EmptyQueryResponse, 0, 0, 0, 4]));

  const pd = parameterDescription([23, 1021, 3802]);
  t.same(parameterTypes(pd, 0, pd.length), [23, 1021, 3802]);
  t.equal(parameterTypes(pd.subarray(0, pd.length - 4), 0, pd.length - 4), null, 'count and length disagree');
});
