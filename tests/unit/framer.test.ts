// The client-side framer: whole messages out of arbitrary reads, a bad
// length refused at its header, and a large message joined once (the cost
// of a message split over many reads grows with its size, not its square).
import t from 'tap';
import { serialize } from '../harness/pg-sasl.js';
import { MessageFramer } from '../../pooler/protocol/framer.js';

/** Every message framed from `stream` fed in `cuts`, as [type, bytes] pairs. */
function frameAll(stream: Buffer, cuts: number[]): [number, string][] {
  const framer = new MessageFramer();
  const out: [number, string][] = [];
  let from = 0;
  for (const to of [...cuts, stream.length]) {
    const { buffer, messages } = framer.push(stream.subarray(from, to));
    for (let i = 0; i < messages.length; i += 3) out.push([messages[i], buffer.toString('hex', messages[i + 1], messages[i + 2])]);
    from = to;
  }
  t.equal(framer.pendingBytes, 0, 'nothing left over');
  return out;
}

t.test('every split point of a stream frames the same messages', async (t) => {
  const stream = Buffer.concat([serialize.query('SELECT 1'), serialize.parse({ name: 's', text: 'SELECT $1' }), serialize.sync(), serialize.query('')]);
  const whole = frameAll(stream, []);
  t.equal(whole.length, 4);
  for (let a = 1; a < stream.length; a++) {
    t.same(frameAll(stream, [a]), whole, `one cut at ${a}`);
    for (let b = a + 1; b < stream.length; b += 3) t.same(frameAll(stream, [a, b]), whole, `cuts at ${a}, ${b}`);
  }
  t.same(
    frameAll(stream, Array.from({ length: stream.length - 1 }, (_, i) => i + 1)),
    whole,
    'one byte per read (headers split too)',
  );
});

t.test('a length over the limit is refused when its header arrives, even split', async (t) => {
  const framer = new MessageFramer(1024);
  const header = Buffer.from([0x51, 0, 0, 0x10, 0]); // Query of 4096 bytes
  t.same(framer.push(header.subarray(0, 2)).messages, []);
  t.throws(() => framer.push(header.subarray(2)), /invalid message length 4096/);
  t.throws(() => new MessageFramer().push(Buffer.from([0x51, 0, 0, 0, 2])), /invalid message length 2 /, 'length below 4');
});

t.test('many messages in one read: framed in place, no copy', async (t) => {
  const one = [serialize.parse({ name: '', text: 'SELECT $1' }), serialize.bind({ values: ['1'] }), serialize.execute(), serialize.sync()];
  const chunk = Buffer.concat(Array.from({ length: 500 }, () => one).flat());
  const { buffer, messages } = new MessageFramer().push(chunk);
  t.equal(buffer, chunk, 'the ranges point into the read itself');
  t.equal(messages.length, 2000 * 3, '2000 messages');
  t.same(messages.slice(0, 12).filter((_, i) => i % 3 === 0), [0x50, 0x42, 0x45, 0x53], 'Parse, Bind, Execute, Sync');
  t.equal(messages.at(-1), chunk.length, 'the last one ends at the end of the read');
});

t.test('an unfinished message then whole ones: the whole ones wait behind it, in order', async (t) => {
  const framer = new MessageFramer();
  const a = serialize.query('SELECT 1');
  const rest = Buffer.concat([serialize.query('SELECT 2'), serialize.sync()]);
  t.same(framer.push(a.subarray(0, 7)).messages, [], 'half a Query');
  const { buffer, messages } = framer.push(Buffer.concat([a.subarray(7), rest]));
  const texts = [];
  for (let i = 0; i < messages.length; i += 3) texts.push(buffer.toString('latin1', messages[i + 1]!, messages[i + 2]!));
  t.same(texts, [a.toString('latin1'), serialize.query('SELECT 2').toString('latin1'), serialize.sync().toString('latin1')]);
});

t.test('a length at the limit is taken; one over it is refused', async (t) => {
  const limit = 64;
  const at = Buffer.concat([Buffer.from([0x51, 0, 0, 0, limit]), Buffer.alloc(limit - 4, 0x61)]);
  t.same(new MessageFramer(limit).push(at).messages, [0x51, 0, at.length]);
  const over = Buffer.from([0x51, 0, 0, 0, limit + 1]);
  t.throws(() => new MessageFramer(limit).push(over), /invalid message length 65/);
  t.throws(() => new MessageFramer().push(Buffer.from([0x51, 0xff, 0xff, 0xff, 0xfc])), /invalid message length -4/, 'negative');
});

t.test('a large message in small reads is held in pieces and joined once', async (t) => {
  const text = 'x'.repeat(8 << 20);
  const query = serialize.query(`SELECT length('${text}')`);
  const stream = Buffer.concat([query, serialize.sync()]);
  const framer = new MessageFramer();
  const concat = Buffer.concat;
  let joins = 0;
  let joinedBytes = 0;
  Buffer.concat = ((list: readonly Uint8Array[], total?: number) => {
    const b = concat(list, total);
    joins += 1;
    joinedBytes += b.length;
    return b;
  }) as typeof Buffer.concat;
  const framed: number[] = [];
  let reads = 0;
  try {
    for (let at = 0; at < stream.length; at += 65536) {
      reads += 1;
      const { messages } = framer.push(stream.subarray(at, at + 65536));
      for (let i = 0; i < messages.length; i += 3) framed.push(messages[i]);
      if (framed.length === 0) t.equal(framer.pendingBytes, Math.min(at + 65536, stream.length), 'held while incomplete');
    }
  } finally {
    Buffer.concat = concat;
  }
  t.same(framed, [0x51, 0x53], 'Query then Sync');
  t.ok(reads > 100, `${reads} reads`);
  t.equal(joins, 1, 'one join for the whole message, not one per read');
  t.equal(joinedBytes, stream.length, `bytes copied to join: the stream's ${stream.length}, once`);
});
