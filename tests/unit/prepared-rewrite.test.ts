// Prepared statements shared across server connections, without a server
// (pooler/prepared/): a client's names become pooled names from the text
// and types; a Parse the server already holds runs under a scratch name; a
// Bind or Describe of a statement the server lacks gets its Parse first,
// whose reply the client never sees; Close keeps the shared statement; the
// reply filter drops exactly the replies the pooler caused, retires what an
// error skipped, and follows DEALLOCATE ALL; Parse-only batches can be
// answered by the pooler.
import t from 'tap';
import { serialize } from '../harness/pg-sasl.js';
import { ReplyFilter, PARSE_COMPLETE, CLOSE_COMPLETE } from '../../pooler/prepared/replies.js';
import { deferrableParses, defineDeferred, rewriteForServer } from '../../pooler/prepared/rewrite.js';
import { ClientStatements, globalName, ServerStatements } from '../../pooler/prepared/statements.js';
import { Dirty } from '../../pooler/server/reset.js';

const parse = (text: string, name = '', types: number[] = []): Buffer => serialize.parse({ name, text, types });
const bind = (statement = '', portal = ''): Buffer => serialize.bind({ statement, portal, values: [] });
const describe = (type: 'S' | 'P', name = ''): Buffer => serialize.describe({ type, name });
const close = (type: 'S' | 'P', name: string): Buffer => serialize.close({ type, name });
const sync = (): Buffer => serialize.sync();
const execute = (): Buffer => serialize.execute();

/** The Parse body after the name: what pooled names are derived from. */
const tailOf = (text: string, types: number[] = []): Buffer => {
  const p = parse(text, '', types);
  return p.subarray(6); // type, length, empty name's NUL
};

const cstr = (b: Buffer, at: number): [string, number] => {
  const end = b.indexOf(0, at);
  return [b.toString('utf8', at, end), end + 1];
};
/** Whole messages in `bytes`, each with its type byte and length. */
function messagesIn(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += 1 + bytes.readInt32BE(at + 1)) out.push(bytes.subarray(at, at + 1 + bytes.readInt32BE(at + 1)));
  return out;
}
/** Messages as short strings: "P name|text", "B portal|statement", "C S name", "D S name", "S"... */
function readable(bytes: Buffer): string[] {
  return messagesIn(bytes).map((m) => {
    const c = String.fromCharCode(m[0]!);
    if (c === 'P') {
      const [name, at] = cstr(m, 5);
      return `P ${name}|${cstr(m, at)[0]}`;
    }
    if (c === 'B') {
      const [portal, at] = cstr(m, 5);
      return `B ${portal}|${cstr(m, at)[0]}`;
    }
    if (c === 'C' || c === 'D') return `${c} ${String.fromCharCode(m[5]!)} ${cstr(m, 6)[0]}`;
    return c;
  });
}

const setup = (capacity = 10): { client: ClientStatements; server: ServerStatements; filter: ReplyFilter } => {
  const server = new ServerStatements(capacity);
  return { client: new ClientStatements(100), server, filter: new ReplyFilter(server) };
};
const send = (filter: ReplyFilter, client: ClientStatements, ...messages: Buffer[]): string[] =>
  readable(rewriteForServer(Buffer.concat(messages), client, filter));

const SELECT = 'SELECT * FROM t WHERE id = $1';
const G = globalName(tailOf(SELECT, [20]));

t.test('pooled names: the same text and types give the same name, anything else another', async (t) => {
  t.match(G, /^pglynx_[0-9a-f]{20}$/);
  t.equal(globalName(tailOf(SELECT, [20])), G);
  t.not(globalName(tailOf(SELECT, [23])), G, 'other parameter types');
  t.not(globalName(tailOf(`${SELECT} `)), G, 'other text');
});

t.test("a client's Parse is sent under the pooled name; its ParseComplete reaches the client", async (t) => {
  const { client, server, filter } = setup();
  t.same(send(filter, client, parse(SELECT, 'mine', [20]), bind('mine'), execute(), sync()), [`P ${G}|${SELECT}`, `B |${G}`, 'E', 'S']);
  t.equal(client.get('mine')?.globalName, G);
  t.equal(filter.dropping, false, 'nothing to drop');
  t.equal(filter.onReply(PARSE_COMPLETE), false, 'ParseComplete kept');
  filter.onReady();
  t.ok(server.has(G), 'the server holds it once confirmed');
});

t.test('a Parse the server already has runs under a scratch name; the scratch Close reply is dropped', async (t) => {
  const { client, server, filter } = setup();
  server.sent(G);
  server.confirmed(G);
  const out = send(filter, client, parse(SELECT, 'again', [20]), sync());
  t.same(out, ['C S pglynx_scratch', `P pglynx_scratch|${SELECT}`, 'S'], 'the pooled statement is not parsed twice');
  t.equal(filter.onReply(CLOSE_COMPLETE), true, 'CloseComplete of the scratch: dropped');
  t.equal(filter.onReply(PARSE_COMPLETE), false, 'ParseComplete: the client asked for it');
  t.equal(client.get('again')?.globalName, G, 'the client name maps to the pooled one');
});

t.test('Bind and Describe of a statement the server lacks: Parse first, its reply dropped', async (t) => {
  const { client, filter } = setup();
  client.define('s', tailOf(SELECT, [20]));
  const out = send(filter, client, describe('S', 's'), bind('s', 'p1'), describe('P', 'p1'), execute(), sync());
  t.same(out, [`P ${G}|${SELECT}`, `D S ${G}`, `B p1|${G}`, 'D P p1', 'E', 'S'], 'one Parse, then names rewritten; the portal untouched');
  t.equal(filter.dropping, true);
  t.equal(filter.onReply(PARSE_COMPLETE), true, 'the added ParseComplete is dropped');
  t.equal(filter.onReply(PARSE_COMPLETE), false, 'none other expected');
});

t.test('Bind on a server that has it: only the name changes; the statement marks the server dirty', async (t) => {
  const { client, server, filter } = setup();
  const def = client.define('set', tailOf("SELECT set_config('x.y', $1, false)"));
  server.sent(def.globalName);
  server.confirmed(def.globalName);
  const conn = { dirty: 0 };
  const out = readable(rewriteForServer(Buffer.concat([bind('set'), execute(), sync()]), client, filter, false, conn));
  t.same(out, [`B |${def.globalName}`, 'E', 'S']);
  t.equal(conn.dirty & Dirty.Params, Dirty.Params, 'set_config(..., false) leaves session state to reset');
});

t.test('unnamed statements and unknown names pass through untouched', async (t) => {
  const { client, filter } = setup();
  const messages = [parse('SELECT 1'), bind(), describe('S', 'nobody'), execute(), sync()];
  t.same(send(filter, client, ...messages), ['P |SELECT 1', 'B |', 'D S nobody', 'E', 'S']);
  t.equal(filter.onReply(PARSE_COMPLETE), false, "the unnamed Parse's reply is the client's");
});

t.test("Close of a client's statement: the shared one stays; the client still gets CloseComplete", async (t) => {
  const { client, server, filter } = setup();
  send(filter, client, parse(SELECT, 'mine', [20]), sync());
  filter.onReply(PARSE_COMPLETE);
  filter.onReady();
  t.same(send(filter, client, close('S', 'mine'), sync()), ['C S pglynx_void', 'S'], 'a no-op Close instead');
  t.equal(client.get('mine'), undefined, 'the client name is gone');
  t.ok(server.has(G), 'the pooled statement is still on the server for others');
  t.equal(filter.onReply(CLOSE_COMPLETE), false, 'its CloseComplete reaches the client');
  t.same(send(filter, client, close('P', 'portal'), sync()), ['C P portal', 'S'], 'a portal Close is as sent');
});

t.test('the server cache is bounded: the oldest statement is closed, its reply dropped', async (t) => {
  const { client, server, filter } = setup(1);
  send(filter, client, parse('SELECT 1', 'a'), sync());
  filter.onReply(PARSE_COMPLETE);
  filter.onReady();
  const first = client.get('a')!.globalName;
  const out = send(filter, client, parse('SELECT 2', 'b'), sync());
  t.same(out, [`P ${client.get('b')!.globalName}|SELECT 2`, `C S ${first}`, 'S']);
  t.equal(filter.onReply(PARSE_COMPLETE), false);
  t.equal(filter.onReply(CLOSE_COMPLETE), true, "the eviction's CloseComplete is dropped");
  t.equal(server.evicted, 1);
});

t.test('an error skips to Sync: ReadyForQuery retires the replies that will never come', async (t) => {
  const { client, server, filter } = setup();
  client.define('s', tailOf(SELECT, [20]));
  send(filter, client, bind('s'), execute(), sync());
  t.equal(filter.dropping, true, 'an added ParseComplete is expected');
  // The Parse failed: ErrorResponse, then ReadyForQuery, no ParseComplete.
  t.equal(filter.onError(Buffer.from('SERROR\0C42601\0Msyntax error\0\0')), false, "any error but 26000 is the client's");
  filter.onReady();
  t.equal(filter.dropping, false, 'nothing left to drop');
  t.equal(server.has(G), false, 'not believed prepared');
});

t.test('DEALLOCATE ALL / DISCARD ALL seen in a CommandComplete empties the server view, and the client names if the client sent it', async (t) => {
  for (const tag of ['DEALLOCATE ALL', 'DISCARD ALL']) {
    const { client, server, filter } = setup();
    send(filter, client, parse(SELECT, 'mine', [20]), sync());
    filter.onReply(PARSE_COMPLETE);
    filter.onReady();
    const complete = Buffer.concat([Buffer.from('C'), Buffer.alloc(4), Buffer.from(`${tag}\0`)]);
    complete.writeInt32BE(complete.length - 1, 1);
    filter.onCommandComplete(complete, 0, complete.length, true);
    t.equal(server.size, 0, `${tag}: the server has none`);
    t.equal(client.get('mine'), undefined, `${tag}: the client's names are gone too`);
  }
  const { client, server, filter } = setup();
  send(filter, client, parse(SELECT, 'mine', [20]), sync());
  filter.onReply(PARSE_COMPLETE);
  filter.onReady();
  const other = Buffer.from('C\0\0\0\x13DEALLOCATE abc\0', 'latin1'); // as long as DEALLOCATE ALL
  filter.onCommandComplete(other, 0, other.length, true);
  t.equal(server.size, 1, 'another tag changes nothing');
  const pooler = Buffer.from('C\0\0\0\x13DEALLOCATE ALL\0', 'latin1');
  filter.onCommandComplete(pooler, 0, pooler.length, false);
  t.equal(server.size, 0, "the pooler's own DEALLOCATE ALL empties the server view");
  t.ok(client.get('mine'), 'but leaves the client its names (they are prepared again at use)');
});

t.test('a pooled statement lost by the server (26000) is healed once: the unit runs again', async (t) => {
  const { client, server, filter } = setup();
  const def = client.define('s', tailOf(SELECT, [20]));
  server.sent(def.globalName);
  server.confirmed(def.globalName);
  const unit = Buffer.concat([bind('s'), execute(), sync()]);
  rewriteForServer(unit, client, filter, true);
  t.ok(filter.retryable, 'a whole unit relying on a pooled statement at an idle boundary can run again');
  const error = Buffer.from(`SERROR\0C26000\0Mprepared statement "${def.globalName}" does not exist\0\0`);
  t.equal(filter.onError(error), true, 'the error is kept from the client');
  t.equal(server.has(def.globalName), false, 'forgotten');
  filter.onReady();
  const retry = filter.takeRetry();
  t.same(retry.messages, unit, 'the unit as the client sent it');
  t.same(readable(rewriteForServer(retry.messages, retry.client, filter)), [`P ${def.globalName}|${SELECT}`, `B |${def.globalName}`, 'E', 'S'], 'run again with its Parse first');
  const notPooled = Buffer.from('SERROR\0C26000\0Mprepared statement "theirs" does not exist\0\0');
  t.equal(filter.onError(notPooled), false, "a 26000 for a client's own name reaches the client");
});

t.test('Parse-only batches can be answered by the pooler; their statements are recorded', async (t) => {
  const frame = (...messages: Buffer[]): [number[], Buffer] => {
    const buffer = Buffer.concat(messages);
    const triples: number[] = [];
    let at = 0;
    for (const m of messages) {
      triples.push(m[0]!, at, at + m.length);
      at += m.length;
    }
    return [triples, buffer];
  };
  t.equal(deferrableParses(...frame(parse('SELECT 1', 'a'), parse('SELECT 2', 'b'), sync())), true);
  t.equal(deferrableParses(...frame(parse('SELECT 1', 'a'), sync())), true);
  t.equal(deferrableParses(...frame(parse('SELECT 1'), sync())), false, 'an unnamed statement lives on one server only');
  t.equal(deferrableParses(...frame(parse('SELECT 1', 'a'), bind('a'), sync())), false, 'a Bind needs a server');
  t.equal(deferrableParses(...frame(parse('SELECT 1', 'a'))), false, 'no Sync yet');
  t.equal(deferrableParses(...frame(sync())), false, 'a bare Sync');
  const client = new ClientStatements(100);
  t.equal(defineDeferred(...frame(parse('SELECT 1', 'a'), parse(SELECT, 'b', [20]), sync()), client), 2);
  t.equal(client.get('b')?.globalName, G);
  t.ok(client.get('a'));
});
