// The embedding cache of one model: LRU on the input text, bounded in bytes.
//
// A Map keeps insertion order, so the first key is the least recently used
// one and a hit moves its entry to the end: O(1) for get, set and eviction.
// The same input always gives the same vector for a given model, so entries
// never go stale; a model loaded again (reload with a new path) gets a new
// cache with its new Model.

/** Per-entry bookkeeping the vector and key do not account for (Map slot, object headers). */
const ENTRY_OVERHEAD = 96;

export class EmbeddingCache {
  private readonly entries = new Map<string, Float32Array>();
  private bytes = 0;
  hits = 0;
  misses = 0;

  constructor(private maxBytes: number) {}

  get size(): number {
    return this.entries.size;
  }

  get usedBytes(): number {
    return this.bytes;
  }

  /** The cached vector (the cache's own copy: do not hand it out), counting a hit or miss. */
  get(input: string): Float32Array | undefined {
    if (this.maxBytes === 0) return undefined;
    const v = this.entries.get(input);
    if (v === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.entries.delete(input);
    this.entries.set(input, v);
    return v;
  }

  /** Whether `input` is cached, without counting a hit or miss or touching its LRU place (the fleet's second level asks first). */
  has(input: string): boolean {
    return this.maxBytes > 0 && this.entries.has(input);
  }

  /** Stores a copy of `vector` (callers keep theirs), evicting the oldest entries to fit. */
  set(input: string, vector: Float32Array): void {
    const cost = entryBytes(input, vector);
    if (cost > this.maxBytes) return;
    const old = this.entries.get(input);
    if (old !== undefined) {
      this.entries.delete(input);
      this.bytes -= entryBytes(input, old);
    }
    this.entries.set(input, vector.slice());
    this.bytes += cost;
    this.evict();
  }

  /** New bound (reload); 0 empties and disables the cache. */
  resize(maxBytes: number): void {
    this.maxBytes = maxBytes;
    this.evict();
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }

  private evict(): void {
    for (const [key, v] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(key);
      this.bytes -= entryBytes(key, v);
    }
  }
}

function entryBytes(input: string, vector: Float32Array): number {
  // UTF-16 code units as V8 may store them; a conservative bound.
  return vector.byteLength + input.length * 2 + ENTRY_OVERHEAD;
}
