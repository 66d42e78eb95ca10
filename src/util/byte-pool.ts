/**
 * Small byte arrays carved out of shared slabs, as Node's Buffer pool does for Buffers.
 *
 * Every fresh ArrayBuffer costs a backing-store allocation and garbage-collector bookkeeping
 * (about 0.5 to 1 µs on the benchmark machine, whatever its size); a view into a slab costs a
 * small object (about 50 ns). The data path takes its per-PDU memory from here: a kept value
 * received on a link ({@link copyBytes}) and every outgoing packet (src/hci/acl-tx.ts).
 *
 * A view's `buffer` is its slab, shared with other views: use `byteOffset` and `length`, never
 * the whole `buffer`. A view keeps its slab (8 KiB) alive as long as it lives, so only arrays up
 * to {@link POOLED_MAX} bytes come from the pool; larger ones get a buffer of their own. Bytes are
 * handed out once and start as zero, as in a new Uint8Array.
 */

/** Bytes per slab (Node's Buffer.poolSize). */
const SLAB_BYTES = 8 * 1024;
/**
 * Largest array taken from a slab: an attribute value is at most 512 bytes (Core 5.4 Vol 3 Part F
 * 3.2.9); an outgoing ACL packet of an ATT_MTU 517 PDU is 517 + 4 + 5 bytes.
 */
export const POOLED_MAX = 1024;

let slab = new ArrayBuffer(SLAB_BYTES);
let used = 0;

/** The constructor of a Uint8Array or a subclass of it, called as `new View(buffer, byteOffset, length)`. */
export type ViewConstructor<V extends Uint8Array> = new (buffer: ArrayBuffer, byteOffset: number, length: number) => V;

/**
 * A view of `length` fresh bytes made by `View`, with `before` more fresh bytes reserved in front
 * of it in the same buffer (for headers written later: see src/hci/acl-tx.ts).
 */
export function pooledView<V extends Uint8Array>(View: ViewConstructor<V>, length: number, before = 0): V {
  const n = before + length;
  if (n > POOLED_MAX) return new View(new ArrayBuffer(n), before, length);
  if (used + n > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    used = 0;
  }
  const view = new View(slab, used + before, length);
  // Keep each array 8-byte aligned, as Node's pool does.
  used += (n + 7) & ~7;
  return view;
}

/** A copy of `src` that shares no memory with it (the caller may keep it; no one else writes to it). */
export function copyBytes(src: Uint8Array): Uint8Array {
  const out = pooledView(Uint8Array, src.length);
  out.set(src);
  return out;
}
