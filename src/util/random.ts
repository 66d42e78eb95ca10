/**
 * Injected randomness. Production code uses {@link osRandom} (the OS CSPRNG through
 * WebCrypto); tests and the deterministic simulator use {@link seededRandom}. No code in
 * src calls the non-cryptographic Math random generator (a test scans for it).
 */
import { createHash, getRandomValues } from 'node:crypto';

export interface RandomSource {
  /** `n` fresh random bytes. */
  bytes(n: number): Uint8Array;
}

/** The operating system's CSPRNG. */
export const osRandom: RandomSource = {
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    // getRandomValues is limited to 65536 bytes per call.
    for (let o = 0; o < n; o += 65536) getRandomValues(out.subarray(o, Math.min(n, o + 65536)));
    return out;
  },
};

/**
 * Deterministic bytes from a seed: SHA-256 in counter mode. Reproducible, NOT for keys that
 * protect anything real; used by tests and `--seed` simulator runs.
 */
export function seededRandom(seed: string | number): RandomSource {
  let counter = 0;
  let pool = new Uint8Array(0);
  let poolOff = 0;
  const seedText = String(seed);
  return {
    bytes(n: number): Uint8Array {
      const out = new Uint8Array(n);
      let o = 0;
      while (o < n) {
        if (poolOff >= pool.length) {
          pool = new Uint8Array(createHash('sha256').update(`${seedText}:${counter++}`).digest());
          poolOff = 0;
        }
        const take = Math.min(n - o, pool.length - poolOff);
        out.set(pool.subarray(poolOff, poolOff + take), o);
        o += take;
        poolOff += take;
      }
      return out;
    },
  };
}

/**
 * Mixes extra entropy (for example the controller's LE Rand output, TRNG-seeded on the nRF53
 * network core) into a base source: each request returns SHA-256(base || extra || counter)
 * expanded to the length asked. The result is at least as unpredictable as the base alone.
 */
export function mixedRandom(base: RandomSource, extra: () => Uint8Array): RandomSource {
  let counter = 0;
  return {
    bytes(n: number): Uint8Array {
      const out = new Uint8Array(n);
      let o = 0;
      while (o < n) {
        const h = createHash('sha256');
        h.update(base.bytes(32));
        h.update(extra());
        h.update(String(counter++));
        const block = h.digest();
        const take = Math.min(n - o, block.length);
        out.set(block.subarray(0, take), o);
        o += take;
      }
      return out;
    },
  };
}

/** A uniformly distributed integer in [0, max) from a {@link RandomSource}. */
export function randomInt(rng: RandomSource, max: number): number {
  if (max <= 0 || max > 0x100000000) throw new RangeError(`randomInt max out of range: ${max}`);
  const limit = Math.floor(0x100000000 / max) * max;
  for (;;) {
    const b = rng.bytes(4);
    const v = ((b[0] as number) | ((b[1] as number) << 8) | ((b[2] as number) << 16)) + (b[3] as number) * 0x1000000;
    if (v < limit) return v % max;
  }
}
