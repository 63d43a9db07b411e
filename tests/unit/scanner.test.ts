// The server-side scanner (pooler/protocol/scanner.ts): the bodies of
// watched message types reach the callback whole, wherever reads cut the
// stream; everything else is stepped over without a copy; a bad length is
// refused; between reads it tells where it stands in the current message.
import t from 'tap';
import { BackendScanner } from '../../pooler/protocol/scanner.js';
import { frame } from '../harness/raw-client.js';

const Z = 0x5a; // ReadyForQuery
const E = 0x45; // ErrorResponse
const D = 0x44; // DataRow
const ONE = 0x31; // ParseComplete (empty body)
const WATCHED = BackendScanner.watch([Z, E, ONE]);

/** Every watched message scanned from `stream` fed in `cuts`, as [type, hex body, end in the chunk]. */
function scanAll(stream: Buffer, cuts: number[]): [number, string][] {
  const scanner = new BackendScanner(WATCHED);
  const out: [number, string][] = [];
  let from = 0;
  for (const to of [...cuts, stream.length]) {
    const chunk = stream.subarray(from, to);
    scanner.scan(chunk, (type, body) => {
      out.push([type, body.toString('hex')]);
      // messageEnd: where the delivered message ends in this chunk.
      if (scanner.messageEnd < 0 || scanner.messageEnd > chunk.length) throw new Error(`messageEnd ${scanner.messageEnd} outside the chunk`);
    });
    from = to;
  }
  return out;
}

const STREAM = Buffer.concat([
  frame('1'),
  frame('D', Buffer.from('0001000000037879', 'hex')),
  frame('E', 'SERROR\0C42P01\0Mno such table\0\0'),
  frame('D', Buffer.alloc(300, 7)),
  frame('Z', 'I'),
]);

t.test('watched bodies arrive whole and in order; others are skipped', async (t) => {
  const whole = scanAll(STREAM, []);
  t.same(
    whole.map(([type]) => type),
    [ONE, E, Z],
    'ParseComplete, ErrorResponse, ReadyForQuery; no DataRow',
  );
  t.equal(whole[0]![1], '', 'an empty body is delivered as such');
  t.equal(Buffer.from(whole[1]![1], 'hex').toString(), 'SERROR\0C42P01\0Mno such table\0\0');
  t.equal(whole[2]![1], Buffer.from('I').toString('hex'));
});

t.test('every cut of the stream scans the same messages (headers and bodies split)', async (t) => {
  const whole = scanAll(STREAM, []);
  let bad = 0;
  for (let a = 1; a < STREAM.length; a++) {
    if (JSON.stringify(scanAll(STREAM, [a])) !== JSON.stringify(whole)) bad++;
    for (let b = a + 1; b < STREAM.length; b += 7) {
      if (JSON.stringify(scanAll(STREAM, [a, b])) !== JSON.stringify(whole)) bad++;
    }
  }
  t.equal(bad, 0, 'no cut (one or two per stream) changes what is delivered');
  t.same(scanAll(STREAM, Array.from({ length: STREAM.length - 1 }, (_, i) => i + 1)), whole, 'one byte per read');
});

t.test('messageEnd: the end of the delivered message in the current chunk', async (t) => {
  const stream = Buffer.concat([frame('Z', 'I'), frame('D', 'xx'), frame('Z', 'T')]);
  const scanner = new BackendScanner(WATCHED);
  const ends: number[] = [];
  scanner.scan(stream, () => ends.push(scanner.messageEnd));
  t.same(ends, [6, stream.length], 'each ReadyForQuery ends where its bytes end');
  // The second ReadyForQuery split after its type byte: delivered in the next chunk, ending at 5.
  const split = stream.length - 5;
  const late: number[] = [];
  const s2 = new BackendScanner(WATCHED);
  s2.scan(stream.subarray(0, split), () => late.push(s2.messageEnd));
  s2.scan(stream.subarray(split), () => late.push(s2.messageEnd));
  t.same(late, [6, 5]);
});

t.test('position between reads: the header bytes held and the body still to come', async (t) => {
  const scanner = new BackendScanner(WATCHED);
  const row = frame('D', Buffer.alloc(100));
  scanner.scan(row.subarray(0, 3), () => t.fail('nothing to deliver'));
  t.same(scanner.position, { header: row.subarray(0, 3), remaining: 0 }, 'three header bytes');
  scanner.scan(row.subarray(3, 40), () => t.fail('nothing to deliver'));
  t.same(scanner.position, { header: Buffer.alloc(0), remaining: 105 - 40 }, 'inside the body');
  scanner.scan(row.subarray(40), () => t.fail('nothing to deliver'));
  t.same(scanner.position, { header: Buffer.alloc(0), remaining: 0 }, 'at a boundary');
});

t.test('a large unwatched message is stepped over without a copy; a large watched one is gathered once', async (t) => {
  const big = frame('D', Buffer.alloc(8 << 20, 1));
  const error = frame('E', `SERROR\0M${'x'.repeat(1 << 20)}\0\0`);
  const stream = Buffer.concat([big, error, frame('Z', 'I')]);
  const allocUnsafe = Buffer.allocUnsafe;
  const copy = Buffer.prototype.copy;
  let allocated = 0;
  let copied = 0;
  Buffer.allocUnsafe = ((size: number) => {
    allocated += size;
    return allocUnsafe(size);
  }) as typeof Buffer.allocUnsafe;
  Buffer.prototype.copy = function (this: Buffer, ...args: Parameters<Buffer['copy']>): number {
    const n = copy.apply(this, args);
    copied += n;
    return n;
  };
  const seen: [number, number][] = [];
  try {
    const scanner = new BackendScanner(WATCHED);
    for (let at = 0; at < stream.length; at += 65536) {
      scanner.scan(stream.subarray(at, at + 65536), (type, body) => seen.push([type, body.length]));
    }
  } finally {
    Buffer.allocUnsafe = allocUnsafe;
    Buffer.prototype.copy = copy;
  }
  t.same(seen, [[E, error.length - 5], [Z, 1]]);
  t.equal(allocated, error.length - 5, 'one buffer, for the ErrorResponse body only');
  t.equal(copied, error.length - 5, 'bytes copied: the ErrorResponse body, once; none of the 8 MB DataRow');
});

t.test('a length below 4 is refused, in one read or split', async (t) => {
  const bad = Buffer.from([D, 0, 0, 0, 3]);
  t.throws(() => new BackendScanner(WATCHED).scan(bad, () => {}), /invalid message length 3/, 'whole header');
  const scanner = new BackendScanner(WATCHED);
  scanner.scan(bad.subarray(0, 2), () => {});
  t.throws(() => scanner.scan(bad.subarray(2), () => {}), /invalid message length 3/, 'header split over reads');
  t.throws(() => new BackendScanner(WATCHED).scan(Buffer.from([Z, 0xff, 0xff, 0xff, 0xff]), () => {}), /invalid message length -1/, 'negative');
});
