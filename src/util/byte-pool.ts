/**
 * Copies of small byte arrays carved out of shared slabs, as Node's Buffer pool does for Buffers.
 *
 * Every fresh ArrayBuffer costs a backing-store allocation and garbage-collector bookkeeping
 * (about 0.5 to 1 µs on the benchmark machine, whatever its size); a view into a slab costs a
 * small object (about 50 ns). A kept value received on a link (an attribute value a peer wrote)
 * is copied here rather than with `slice()`. The copy is a plain Uint8Array whose `buffer` is
 * the slab: it keeps its slab (8 KiB) alive as long as it lives, so only arrays up to
 * {@link POOLED_MAX} bytes come from the pool; larger ones get their own buffer.
 */

/** Bytes per slab (Node's Buffer.poolSize). */
const SLAB_BYTES = 8 * 1024;
/** Largest copy taken from a slab: an attribute value is at most 512 bytes (Core 5.4 Vol 3 Part F 3.2.9). */
export const POOLED_MAX = 512;

let slab = new ArrayBuffer(SLAB_BYTES);
let used = 0;

/** A copy of `src` that shares no memory with it (the caller may keep it; no one else writes to it). */
export function copyBytes(src: Uint8Array): Uint8Array {
  const n = src.length;
  if (n > POOLED_MAX) return src.slice();
  if (used + n > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    used = 0;
  }
  const out = new Uint8Array(slab, used, n);
  // Keep each copy 8-byte aligned, as Node's pool does.
  used += (n + 7) & ~7;
  out.set(src);
  return out;
}
