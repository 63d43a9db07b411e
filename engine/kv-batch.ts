// The KV caches of a batch of sequences, kept as the decoder's own
// past/present tensors between steps instead of one array per sequence.
//
// Each step's present ([rows, heads, width, headDim] per layer) becomes the
// next step's past as it is: a decode step over an unchanged batch copies no
// cache in JS at all (it used to pad every sequence's cache into a batch
// tensor and cut every present back out, four passes over all the caches per
// step). A row's tokens are the columns its mask marks; columns are
// right-aligned (left padding), every step appends the same number of
// columns to every row, and rows that do not take part in a step (idle, or
// freed) just get masked-out columns. Sequences join a batch by having their
// columns copied into a free row, and leave by freeing theirs; the batch is
// rebuilt (each participant's columns packed right-aligned into fresh
// tensors) only when that does not fit or too much of it is waste.

/** One sequence's cache: `length` tokens, held by row `row` of `batch` (null while empty). */
export interface KvCache {
  length: number;
  batch: KvBatch | null;
  row: number;
}

export class KvBatch {
  constructor(
    /** Per layer: key, then value, each [rows.length, heads, width, headDim]. */
    public tensors: Float32Array[],
    /** [rows.length, width]: 1 where the row's column holds one of its tokens. */
    public mask: Uint8Array,
    public width: number,
    /** The cache each row holds; null for a free row. */
    readonly rows: (KvCache | null)[],
    private readonly heads: number,
    private readonly headDim: number,
  ) {}

  static empty(size: number, width: number, tensors: number, heads: number, headDim: number): KvBatch {
    return new KvBatch(
      Array.from({ length: tensors }, () => new Float32Array(size * heads * width * headDim)),
      new Uint8Array(size * width),
      width,
      new Array<KvCache | null>(size).fill(null),
      heads,
      headDim,
    );
  }

  /** Columns from the row's first token to the end (its tokens and any holes between them). */
  span(row: number): number {
    const m = this.mask;
    const base = row * this.width;
    for (let c = 0; c < this.width; c++) if (m[base + c]) return this.width - c;
    return 0;
  }

  /** Marks `row` free (its columns masked out); it can take another sequence. */
  free(row: number): void {
    this.rows[row] = null;
    this.mask.fill(0, row * this.width, (row + 1) * this.width);
  }

  /**
   * Copies row `from` of `src` into row `to` of this batch: its last `span`
   * columns, right-aligned (span ≤ this.width), and the mask with them.
   */
  copyRow(src: KvBatch, from: number, to: number, span: number): void {
    const H = this.heads;
    const D = this.headDim;
    const W = this.width;
    const sw = src.width;
    this.mask.fill(0, to * W, (to + 1) * W);
    this.mask.set(src.mask.subarray(from * sw + sw - span, (from + 1) * sw), to * W + W - span);
    for (let t = 0; t < this.tensors.length; t++) {
      const dst = this.tensors[t]!;
      const s = src.tensors[t]!;
      for (let h = 0; h < H; h++) {
        const at = ((to * H + h) * W + W - span) * D;
        // Zero the padding left of the copy: a reused row may hold an old sequence's values.
        dst.fill(0, ((to * H + h) * W) * D, at);
        const sAt = ((from * H + h) * sw + sw - span) * D;
        dst.set(s.subarray(sAt, sAt + span * D), at);
      }
    }
  }

  /** Copies only the masked columns of row `from` of `src`, packed right-aligned, into row `to` (this batch's width ≥ their count). */
  packRow(src: KvBatch, from: number, to: number): void {
    const H = this.heads;
    const D = this.headDim;
    const W = this.width;
    const sw = src.width;
    // Runs of consecutive token columns in the source row.
    const runs: [number, number][] = [];
    const m = src.mask;
    for (let c = 0; c < sw; c++) {
      if (!m[from * sw + c]) continue;
      const last = runs[runs.length - 1];
      if (last && last[0] + last[1] === c) last[1]++;
      else runs.push([c, 1]);
    }
    const count = runs.reduce((n, r) => n + r[1], 0);
    this.mask.fill(1, to * W + W - count, (to + 1) * W);
    for (let t = 0; t < this.tensors.length; t++) {
      const dst = this.tensors[t]!;
      const s = src.tensors[t]!;
      for (let h = 0; h < H; h++) {
        let at = ((to * H + h) * W + W - count) * D;
        for (const [c, n] of runs) {
          const sAt = ((from * H + h) * sw + c) * D;
          dst.set(s.subarray(sAt, sAt + n * D), at);
          at += n * D;
        }
      }
    }
  }
}
