// Client socket reads through the shared buffer (pooler/client/socket-reads.ts):
// on this Node an accepted plain socket takes the fast path; every chunk is
// memory of its own (a later read, of this socket or another, never changes
// it); pause() stops the reads and resume() brings what was held back; the
// peer's end still ends the socket ('end', then 'close'); a TLS socket is
// left to 'data' events.
import t from 'tap';
import net from 'node:net';
import { TLSSocket } from 'node:tls';
import { once } from 'node:events';
import { readIntoSharedBuffer } from '../../pooler/client/socket-reads.js';

/** A connected pair: `accepted` is the server side, as the pooler gets it. */
async function pair(): Promise<{ accepted: net.Socket; peer: net.Socket; close: () => void }> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const peer = net.connect(port, '127.0.0.1');
  const [accepted] = (await once(server, 'connection')) as [net.Socket];
  await once(peer, 'connect');
  peer.setNoDelay(true);
  return {
    accepted,
    peer,
    close: () => {
      peer.destroy();
      accepted.destroy();
      server.close();
    },
  };
}

/** Resolves once `chunks` holds `bytes` bytes in all. */
function until(chunks: Buffer[], bytes: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = (): void => {
      if (chunks.reduce((n, c) => n + c.length, 0) >= bytes) resolve();
      else if (Date.now() - started > 5000) reject(new Error(`only ${chunks.reduce((n, c) => n + c.length, 0)} of ${bytes} bytes`));
      else setTimeout(poll, 5);
    };
    poll();
  });
}

t.test('chunks of two sockets are their own memory, in order', async (t) => {
  const a = await pair();
  const b = await pair();
  t.teardown(() => {
    a.close();
    b.close();
  });
  const fromA: Buffer[] = [];
  const fromB: Buffer[] = [];
  t.ok(readIntoSharedBuffer(a.accepted, (c) => fromA.push(c)), 'a plain accepted socket takes the shared buffer');
  t.ok(readIntoSharedBuffer(b.accepted, (c) => fromB.push(c)));
  let sentA = '';
  let sentB = '';
  for (let i = 0; i < 20; i++) {
    const x = `a${i}-`.repeat(3);
    const y = `B${i}+`.repeat(5);
    sentA += x;
    sentB += y;
    a.peer.write(x);
    await until(fromA, sentA.length);
    b.peer.write(y);
    await until(fromB, sentB.length);
  }
  t.equal(Buffer.concat(fromA).toString(), sentA, 'every chunk of a still holds what a sent');
  t.equal(Buffer.concat(fromB).toString(), sentB, 'and of b');
  t.ok(fromA.length > 1, 'several reads went through the one buffer');
});

t.test('pause holds reads back, resume brings them; the peer ending ends the socket', async (t) => {
  const p = await pair();
  t.teardown(p.close);
  const chunks: Buffer[] = [];
  t.ok(readIntoSharedBuffer(p.accepted, (c) => chunks.push(c)));
  p.peer.write('one');
  await until(chunks, 3);
  p.accepted.pause();
  p.peer.write('two');
  await new Promise((r) => setTimeout(r, 100));
  t.equal(Buffer.concat(chunks).toString(), 'one', 'nothing read while paused');
  p.accepted.resume();
  await until(chunks, 6);
  t.equal(Buffer.concat(chunks).toString(), 'onetwo');
  const events: string[] = [];
  p.accepted.on('end', () => events.push('end'));
  const closed = once(p.accepted, 'close').then(() => events.push('close'));
  p.peer.end();
  await closed;
  t.same(events, ['end', 'close']);
});

t.test('TLS sockets and sockets with bytes already buffered keep the stream', async (t) => {
  const p = await pair();
  t.teardown(p.close);
  t.notOk(readIntoSharedBuffer(new TLSSocket(p.accepted), () => {}), 'TLS: the TLS layer reads');
  const q = await pair();
  t.teardown(q.close);
  q.accepted.pause();
  q.peer.write('early');
  await new Promise((r) => setTimeout(r, 50));
  q.accepted.read(0); // the stream fetches what arrived into its own buffer
  await new Promise((r) => setTimeout(r, 50));
  if (q.accepted.readableLength > 0) t.notOk(readIntoSharedBuffer(q.accepted, () => {}), 'bytes in the stream: left to it');
  else t.pass('nothing buffered on this run');
});
