// What reaches the client besides the server's bytes as they are: replies
// edited for pgml rewrites and for errors the pooler has a server raise
// (describe-replies.ts), and the pgml.embed / pgml.transform rewrite of the
// client's batches, computed in the engine before the batch runs (later
// batches queue behind it, so the client's messages stay in order).

import { SqlState } from '../protocol/codes.js';
import { MessageFramer } from '../protocol/framer.js';
import { raiseQuery } from '../protocol/messages/raise.js';
import type { EmbeddingProvider } from '../pgml/rewrite.js';
import { PgmlTransformer } from '../pgml/transformer.js';
import { AT_BOUNDARY, replyContext, type ReplyContext } from '../pgml/describe-replies.js';
import type { SessionCore } from './session-core.js';
import { streamHost } from './stream-host.js';

/** Where rewritten batches go (the batch walk). */
export interface BatchSink {
  walk(buffer: Buffer, messages: number[]): void;
}

export class ClientReplies {
  private pgml: PgmlTransformer | null = null;
  /** Batches being rewritten or queued behind one, and their bytes. */
  private pendingRewrites = 0;
  private pendingBytes = 0;
  private rewriteChain: Promise<void> = Promise.resolve();

  constructor(
    private readonly s: SessionCore,
    private readonly sink: BatchSink,
    /** Called when a rewrite starts or ends (the session re-reads its reading rule). */
    private readonly holdsChanged: () => void,
  ) {}

  /**
   * Batches wait behind a pgml rewrite past `limit` bytes: the client's
   * socket is not read until they have run. Below it the socket is still
   * read (later batches queue behind the rewrite, in order), so a client
   * that leaves mid-generation is seen at once and its generation stops.
   */
  heldBeyond(limit: number): boolean {
    return this.pendingRewrites > 0 && this.pendingBytes > limit;
  }

  /** What the reply editor knows of the reply stream when an edit is recorded. */
  private readonly context = (): ReplyContext | null => {
    const s = this.s;
    // A sharded executor writes whole messages; while it runs units, what it still owes is not known here.
    if (s.settings.sharding) return s.sharded?.busy ? null : { owed: 0, position: AT_BOUNDARY };
    return replyContext(s.checkout.server, s.queuedSyncs);
  };

  /** Rewrite the batch for pgml when it calls it (true: taken, it is walked later); false: walk it now. */
  rewrite(buffer: Buffer, messages: number[]): boolean {
    const engine = this.s.settings.pgml;
    if (!engine) return false;
    const pgml = (this.pgml ??= this.transformer(engine));
    if (this.pendingRewrites > 0 || pgml.involved(buffer, messages)) {
      this.rewriteThenWalk(pgml, buffer, messages);
      return true;
    }
    pgml.observe(buffer, messages);
    return false;
  }

  private transformer(engine: EmbeddingProvider): PgmlTransformer {
    return new PgmlTransformer(engine, this.s.replyEdits, this.context, streamHost(this.s, this.sink));
  }

  private rewriteThenWalk(pgml: PgmlTransformer, buffer: Buffer, messages: number[]): void {
    const bytes = messages[messages.length - 1] - messages[1];
    this.pendingRewrites += 1;
    this.pendingBytes += bytes;
    this.holdsChanged();
    this.rewriteChain = this.rewriteChain.then(async () => {
      try {
        let out: Buffer;
        if (pgml.involved(buffer, messages)) out = await pgml.transform(buffer, messages);
        else {
          pgml.observe(buffer, messages);
          out = buffer.subarray(messages[1], messages[messages.length - 1]);
        }
        if (this.s.closed || out.length === 0) return;
        const framed = new MessageFramer().push(out);
        this.sink.walk(framed.buffer, framed.messages);
      } catch (err) {
        this.s.log.error({ err }, 'pgml rewrite failed');
        this.s.terminate(SqlState.InternalError, `pgml: ${(err as Error).message}`);
      } finally {
        this.pendingRewrites -= 1;
        this.pendingBytes -= bytes;
        this.holdsChanged();
      }
    });
  }

  /** CancelRequest or the client left: pgml generation in progress stops (57014). */
  cancel(): void {
    this.pgml?.cancel();
  }

  /** Have the server raise an error for the pooler (raise.ts), in order; the client gets it as the pooler's. */
  raise(code: string, message: string, out: { forward(bytes: Buffer, syncs: number): void }): void {
    this.s.replyEdits.sync(true, 0, this.context);
    out.forward(raiseQuery(code, message), 1);
  }

  /**
   * Bytes from the attached server, for the client (backpressure: the
   * server is not read while the client's socket is full). True when the
   * chunk is done with (handed to the kernel, no edit keeps it), so the
   * server connection may reuse its read buffer.
   */
  fromServer(chunk: Buffer): boolean {
    const s = this.s;
    // A dying server's FATAL is not here: the connection holds it back (see server-lost.ts).
    if (s.replyEdits.active) {
      chunk = s.replyEdits.edit(chunk);
      if (chunk.length === 0) return false;
    }
    s.pool.stats.totals.sent += chunk.length;
    s.repliedSinceSend = true;
    const server = s.checkout.server;
    if (!s.socket.write(chunk) && server) {
      server.pauseReading();
      s.socket.once('drain', () => server.resumeReading());
      return false;
    }
    return !s.replyEdits.active && s.socket.writableLength === 0;
  }

  /** Whole replies the sharded executor composed, for the client. */
  fromShards(bytes: Buffer): void {
    const s = this.s;
    if (s.replyEdits.active) bytes = s.replyEdits.edit(bytes);
    s.pool.stats.totals.sent += bytes.length;
    s.socket.write(bytes);
  }
}
