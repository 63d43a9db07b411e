// Reads of a logged-in client's plain socket without the Readable stream:
// libuv reads into one buffer shared by every such socket, and each read
// is copied out into a small Buffer taken from Node's pool before the
// session sees it.
//
// Why: with 'data' events every read costs a fresh 64 KB allocation in
// C++ (shrunk to the bytes read and wrapped in a new ArrayBuffer), then
// the stream's push, 'data' emit and a maybeReadMore tick. Node only
// offers user-supplied read buffers (`onread`) to sockets it creates with
// net.connect, not to accepted ones; the same machinery is switched on
// here through the socket's handle (`useUserBuffer`) and the three
// per-socket fields net.Socket keeps for it, found by their symbol names.
// Where any of that is missing (TLS, another Node version, bytes already
// buffered by the stream) the caller keeps 'data' events.
//
// One buffer serves all sockets because a read and its callback run
// together on the loop thread: the chunk is copied out before any other
// socket is read. The copy (a pool slice, memcpy of a few bytes for a
// typical query) keeps the old contract: each chunk is fresh memory that
// nobody else writes, so the framer, the queue and the server write may
// keep it as long as they need.

import type net from 'node:net';
import { TLSSocket } from 'node:tls';

/** As large as the chunks libuv reads by default. */
const READ_SIZE = 64 * 1024;

/** The Socket's fields for `onread` (lib/net.js), by their symbols. */
interface UserBufferFields {
  buffer: symbol;
  callback: symbol;
  generator: symbol;
}

interface StreamHandle {
  useUserBuffer?: (buffer: Uint8Array) => void;
}

/** Found on the first socket; null when this Node lacks them. */
let fields: UserBufferFields | null | undefined;
let shared: Buffer | null = null;

function findFields(socket: net.Socket): UserBufferFields | null {
  const symbols = Object.getOwnPropertySymbols(socket);
  const named = (description: string): symbol | undefined => symbols.find((s) => s.description === description);
  const buffer = named('kBuffer');
  const callback = named('kBufferCb');
  const generator = named('kBufferGen');
  return buffer && callback && generator ? { buffer, callback, generator } : null;
}

/**
 * Deliver the socket's reads to `onChunk` through the shared buffer.
 * False when it cannot (the caller listens to 'data' instead); nothing
 * is changed then.
 */
export function readIntoSharedBuffer(socket: net.Socket, onChunk: (chunk: Buffer) => void): boolean {
  if (socket instanceof TLSSocket || socket.readableLength > 0 || socket.destroyed) return false;
  const handle = (socket as unknown as { _handle?: StreamHandle | null })._handle;
  if (!handle || typeof handle.useUserBuffer !== 'function') return false;
  if (fields === undefined) fields = findFields(socket);
  if (fields === null) return false;
  const own = socket as unknown as Record<symbol, unknown>;
  // Each of these holds null on a socket made without `onread`; anything else is not the layout this relies on.
  if (own[fields.buffer] !== null || own[fields.generator] !== null) return false;
  const buffer = (shared ??= Buffer.allocUnsafe(READ_SIZE));
  own[fields.callback] = (bytes: number, into: Buffer): boolean => {
    const chunk = Buffer.allocUnsafe(bytes);
    into.copy(chunk, 0, 0, bytes);
    onChunk(chunk);
    return true; // pausing is the session's call (socket.pause stops the handle's reads)
  };
  own[fields.buffer] = buffer;
  handle.useUserBuffer(buffer);
  return true;
}
