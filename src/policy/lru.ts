/**
 * A least-recently-used map bounded both by entry count and by the total length of its keys
 * (keys are SQL texts, so the second bound is what keeps memory in check).
 */
export class LruCache<V> {
  private readonly map = new Map<string, V>();
  private keyChars = 0;

  constructor(
    private readonly maxEntries: number,
    private readonly maxKeyChars: number,
  ) {}

  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      // Map iteration order is insertion order: re-inserting makes it the most recent.
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  set(key: string, value: V): void {
    if (this.maxEntries <= 0 || key.length > this.maxKeyChars) return;
    if (this.map.delete(key)) this.keyChars -= key.length;
    this.map.set(key, value);
    this.keyChars += key.length;
    while (this.map.size > this.maxEntries || this.keyChars > this.maxKeyChars) {
      const oldest = this.map.keys().next();
      if (oldest.done) break;
      this.map.delete(oldest.value);
      this.keyChars -= oldest.value.length;
    }
  }

  get size(): number {
    return this.map.size;
  }

  clear(): void {
    this.map.clear();
    this.keyChars = 0;
  }
}
