// Results computed from statement text (parse trees, classifications),
// cached because applications send the same few texts over and over and a
// parse costs tens of microseconds. Bounded: at most `capacity` texts of at
// most MAX_CACHED_TEXT characters; longer texts are computed every time
// (they are rare and costly to keep).

export const MAX_CACHED_TEXT = 8192;

/** A small least-recently-used cache (a Map keeps insertion order). */
export class Lru<V> {
  private readonly map = new Map<string, V>();

  constructor(private readonly capacity: number) {}

  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v === undefined) return undefined;
    this.map.delete(key);
    this.map.set(key, v);
    return v;
  }

  set(key: string, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value as string);
  }

  get size(): number {
    return this.map.size;
  }
}

/** `compute`, remembered per text (a throw is not remembered). */
export function memoizeByText<V>(capacity: number, compute: (sql: string) => V): (sql: string) => V {
  const cache = new Lru<V>(capacity);
  return (sql) => {
    if (sql.length > MAX_CACHED_TEXT) return compute(sql);
    const hit = cache.get(sql);
    if (hit !== undefined) return hit;
    const v = compute(sql);
    cache.set(sql, v);
    return v;
  };
}
