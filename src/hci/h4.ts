/**
 * H:4, the UART transport layer: every HCI packet is preceded by one packet-type byte.
 * Core 5.4 Vol 4 Part A 2 (packet indicators) and Vol 4 Part E 5.4 (packet formats).
 *
 * {@link H4Framer} is a pure incremental parser: bytes in (split anywhere), whole packets out.
 * It never throws on bad input: a byte that cannot start a packet, or a header whose length
 * is impossible, is reported through `onError` and the framer resynchronises one byte later.
 */

/** H:4 packet indicators. Core 5.4 Vol 4 Part A 2. */
export const H4Type = {
  Command: 0x01,
  Acl: 0x02,
  Sco: 0x03,
  Event: 0x04,
  Iso: 0x05,
} as const;
export type H4Type = (typeof H4Type)[keyof typeof H4Type];

const TYPE_NAMES: Record<number, string> = {
  [H4Type.Command]: 'Command',
  [H4Type.Acl]: 'ACL',
  [H4Type.Sco]: 'SCO',
  [H4Type.Event]: 'Event',
  [H4Type.Iso]: 'ISO',
};

/** `'Command'`, `'ACL'`, ... or `'0x07'` for anything else. */
export function h4TypeName(type: number): string {
  return TYPE_NAMES[type] ?? `0x${type.toString(16).padStart(2, '0')}`;
}

export function isH4Type(b: number): b is H4Type {
  return b >= 0x01 && b <= 0x05;
}

/**
 * Header size after the type byte. Core 5.4 Vol 4 Part E 5.4.1 (command: opcode 2 + length 1),
 * 5.4.2 (ACL: handle/flags 2 + length 2), 5.4.3 (SCO: handle 2 + length 1), 5.4.4 (event:
 * code 1 + length 1), 5.4.5 (ISO: handle/flags 2 + length 2, 14 bits used).
 */
export const H4_HEADER_SIZE: Readonly<Record<H4Type, number>> = {
  [H4Type.Command]: 3,
  [H4Type.Acl]: 4,
  [H4Type.Sco]: 3,
  [H4Type.Event]: 2,
  [H4Type.Iso]: 4,
};

/** Parameter/payload length announced by a complete header; `h` is the type byte's index. */
function payloadLength(type: H4Type, d: Uint8Array, h: number): number {
  switch (type) {
    case H4Type.Command:
    case H4Type.Sco:
      return d[h + 3] as number;
    case H4Type.Event:
      return d[h + 2] as number;
    case H4Type.Acl:
      return (d[h + 3] as number) | ((d[h + 4] as number) << 8);
    case H4Type.Iso:
      // ISO_Data_Load_Length is 14 bits; the top two bits are RFU. Core 5.4 Vol 4 Part E 5.4.5.
      return ((d[h + 3] as number) | ((d[h + 4] as number) << 8)) & 0x3fff;
  }
}

/** Which side of the wire the framer sits on, i.e. which packets it may legitimately receive. */
export type H4Direction = 'host' | 'controller';

/** Default packet types accepted: a host receives events and data, a controller commands and data. */
export const H4_DEFAULT_ACCEPT: Readonly<Record<H4Direction, readonly H4Type[]>> = {
  host: [H4Type.Event, H4Type.Acl, H4Type.Iso],
  controller: [H4Type.Command, H4Type.Acl, H4Type.Iso],
};

export type H4FramerError =
  | {
      /** A byte where a packet-type byte was expected is not one this side accepts. */
      kind: 'bad-type';
      /** Offset of the byte in the whole stream pushed so far (0-based). */
      offset: number;
      byte: number;
      message: string;
    }
  | {
      /** The header announces a length above the configured maximum. */
      kind: 'bad-length';
      offset: number;
      /** The type byte and header. */
      bytes: Uint8Array;
      packetType: H4Type;
      length: number;
      max: number;
      message: string;
    }
  | {
      /** A data packet names a connection handle above 0x0EFF (reserved). Core 5.4 Vol 4 Part E 5.4.2. */
      kind: 'bad-header';
      offset: number;
      bytes: Uint8Array;
      packetType: H4Type;
      message: string;
    }
  | {
      /** {@link H4Framer.abandonPartial} gave up on a packet that never completed. */
      kind: 'stalled';
      offset: number;
      /** The bytes of the abandoned partial packet (rescanned from the second byte on). */
      bytes: Uint8Array;
      packetType: H4Type;
      expected: number;
      message: string;
    };

export interface H4FramerOptions {
  direction: H4Direction;
  /** Called once per complete packet: type byte + header + payload. Views into pushed chunks when possible. */
  onPacket: (packet: Uint8Array) => void;
  onError?: (err: H4FramerError) => void;
  /** Packet types this side accepts; defaults to {@link H4_DEFAULT_ACCEPT}. Add SCO here for BR/EDR. */
  accept?: readonly H4Type[];
  /** Largest ACL data length accepted (27..1021 is usual; LE Read Buffer Size tells). Default 1021. */
  maxAclLength?: number;
  /** Largest ISO data load accepted. Default 4095+12 (SDU plus time stamp and SDU header). */
  maxIsoLength?: number;
  /** Largest command parameter length (255 by format). */
  maxCommandLength?: number;
  /** Largest event parameter length (255 by format). */
  maxEventLength?: number;
  /** Largest SCO data length (255 by format). */
  maxScoLength?: number;
  /** Reject ACL/ISO packets whose connection handle is above 0x0EFF. Default true. */
  checkHandles?: boolean;
}

/** Highest valid connection handle. Core 5.4 Vol 4 Part E 5.4.2. */
const MAX_HANDLE = 0x0eff;

export interface H4FramerStats {
  packets: number;
  /** Bytes skipped while resynchronising. */
  discardedBytes: number;
  errors: number;
}

/**
 * Incremental H:4 parser. `push` any split of the byte stream; the same packets come out.
 * A packet lying inside one chunk is delivered as a view of that chunk (no copy; the chunk itself
 * when it holds exactly that packet): a consumer
 * that keeps a packet beyond the callback must not let the chunk's owner reuse it (transports
 * here never reuse their chunks). A packet spanning chunks is assembled into a fresh buffer.
 */
export class H4Framer {
  readonly direction: H4Direction;
  private readonly onPacket: (packet: Uint8Array) => void;
  private readonly onError: (err: H4FramerError) => void;
  private readonly acceptMask: boolean[] = [false, false, false, false, false, false];
  private readonly maxLen: Record<H4Type, number>;
  private readonly checkHandles: boolean;

  /** Stream offset of the next byte pushed. */
  private streamOffset = 0;

  // Partial packet (spanning chunks). hdr holds type + header while the header is incomplete.
  private readonly hdr = new Uint8Array(5);
  private hdrHave = 0;
  private partialType: H4Type | 0 = 0;
  private partialOffset = 0;
  private body: Uint8Array | undefined;
  private bodyHave = 0;

  private callbackError: { err: unknown } | undefined;

  readonly stats: H4FramerStats = { packets: 0, discardedBytes: 0, errors: 0 };

  constructor(opts: H4FramerOptions) {
    this.direction = opts.direction;
    this.onPacket = opts.onPacket;
    this.onError = opts.onError ?? (() => {});
    for (const t of opts.accept ?? H4_DEFAULT_ACCEPT[opts.direction]) this.acceptMask[t] = true;
    this.maxLen = {
      [H4Type.Command]: Math.min(255, opts.maxCommandLength ?? 255),
      [H4Type.Acl]: Math.min(0xffff, opts.maxAclLength ?? 1021),
      [H4Type.Sco]: Math.min(255, opts.maxScoLength ?? 255),
      [H4Type.Event]: Math.min(255, opts.maxEventLength ?? 255),
      [H4Type.Iso]: Math.min(0x3fff, opts.maxIsoLength ?? 4095 + 12),
    };
    this.checkHandles = opts.checkHandles ?? true;
  }

  /** Bytes held for a packet not yet complete. */
  get pendingBytes(): number {
    if (this.partialType === 0) return 0;
    return this.body ? this.bodyHave : this.hdrHave;
  }

  /**
   * Feeds bytes. Complete packets go to `onPacket` in order, problems to `onError`. If a callback
   * throws, the rest of the chunk is still parsed and the first exception is rethrown at the end.
   */
  push(chunk: Uint8Array): void {
    const base = this.streamOffset;
    this.streamOffset += chunk.length;
    this.feed(chunk, base);
    const ce = this.callbackError;
    if (ce) {
      this.callbackError = undefined;
      throw ce.err;
    }
  }

  /** Drops any partial packet silently (after flushing the transport, before HCI Reset). */
  reset(): void {
    this.partialType = 0;
    this.hdrHave = 0;
    this.body = undefined;
    this.bodyHave = 0;
  }

  /**
   * Gives up on a partial packet that never completed (a stray byte that looked like a type
   * byte makes the framer wait for a length that will never come; the caller notices through a
   * command timeout). Reports `stalled`, then rescans the held bytes from the second one, which
   * may deliver the packets hidden behind the stray byte. Returns whether anything was held.
   */
  abandonPartial(): boolean {
    if (this.partialType === 0) return false;
    const type = this.partialType;
    const offset = this.partialOffset;
    let held: Uint8Array;
    let expected: number;
    if (this.body) {
      held = this.body.slice(0, this.bodyHave);
      expected = this.body.length;
    } else {
      held = this.hdr.slice(0, this.hdrHave);
      expected = 1 + H4_HEADER_SIZE[type];
    }
    this.reset();
    this.report({
      kind: 'stalled',
      offset,
      bytes: held,
      packetType: type,
      expected,
      message: `abandoned a partial ${h4TypeName(type)} packet at stream offset ${offset}: ${held.length} of ${expected} byte(s) arrived; rescanning from the next byte`,
    });
    this.stats.discardedBytes += 1;
    this.feed(held.subarray(1), offset + 1);
    const ce = this.callbackError;
    if (ce) {
      this.callbackError = undefined;
      throw ce.err;
    }
    return true;
  }

  private report(err: H4FramerError): void {
    this.stats.errors++;
    try {
      this.onError(err);
    } catch (e) {
      this.callbackError ??= { err: e };
    }
  }

  private deliver(packet: Uint8Array): void {
    this.stats.packets++;
    try {
      this.onPacket(packet);
    } catch (e) {
      this.callbackError ??= { err: e };
    }
  }

  private badType(byte: number, offset: number): void {
    this.stats.discardedBytes++;
    const why = isH4Type(byte)
      ? `${h4TypeName(byte)} packets do not travel towards the ${this.direction}`
      : 'not an H:4 packet type';
    this.report({
      kind: 'bad-type',
      offset,
      byte,
      message: `skipped byte 0x${byte.toString(16).padStart(2, '0')} at stream offset ${offset}: ${why}`,
    });
  }

  /**
   * Checks a complete header at d[h]. Returns the payload length, or -1 after reporting the
   * problem (the caller then skips the type byte and rescans).
   */
  private checkHeader(type: H4Type, d: Uint8Array, h: number, offset: number): number {
    const len = payloadLength(type, d, h);
    const max = this.maxLen[type];
    const hs = H4_HEADER_SIZE[type];
    if (len > max) {
      this.stats.discardedBytes++;
      this.report({
        kind: 'bad-length',
        offset,
        bytes: d.slice(h, h + 1 + hs),
        packetType: type,
        length: len,
        max,
        message: `${h4TypeName(type)} header at stream offset ${offset} announces ${len} byte(s), more than the ${max} allowed; skipping one byte and rescanning`,
      });
      return -1;
    }
    if (this.checkHandles && (type === H4Type.Acl || type === H4Type.Iso)) {
      const handle = ((d[h + 1] as number) | ((d[h + 2] as number) << 8)) & 0x0fff;
      if (handle > MAX_HANDLE) {
        this.stats.discardedBytes++;
        this.report({
          kind: 'bad-header',
          offset,
          bytes: d.slice(h, h + 1 + hs),
          packetType: type,
          message: `${h4TypeName(type)} header at stream offset ${offset} names connection handle 0x${handle.toString(16)}, above 0x0eff; skipping one byte and rescanning`,
        });
        return -1;
      }
    }
    return len;
  }

  /** Parses `d`, whose first byte sits at stream offset `base`. */
  private feed(d: Uint8Array, base: number): void {
    let i = 0;
    const n = d.length;
    // Finish a packet started in an earlier chunk.
    if (this.partialType !== 0) {
      i = this.continuePartial(d, base);
      if (i < 0) return; // still incomplete, everything consumed
    }
    while (i < n) {
      const t = d[i] as number;
      if (!this.acceptMask[t]) {
        this.badType(t, base + i);
        i++;
        continue;
      }
      const type = t as H4Type;
      const hs = H4_HEADER_SIZE[type];
      if (n - i < 1 + hs) {
        // Header incomplete: hold it.
        this.partialType = type;
        this.partialOffset = base + i;
        this.hdr.set(d.subarray(i, n), 0);
        this.hdrHave = n - i;
        return;
      }
      const len = this.checkHeader(type, d, i, base + i);
      if (len < 0) {
        i++;
        continue;
      }
      const total = 1 + hs + len;
      if (n - i >= total) {
        // A chunk that is exactly one packet (a memory transport, often a serial read) goes as it is.
        this.deliver(i === 0 && total === n ? d : d.subarray(i, i + total));
        i += total;
        continue;
      }
      // Payload incomplete: assemble into a fresh buffer.
      const body = new Uint8Array(total);
      body.set(d.subarray(i, n), 0);
      this.partialType = type;
      this.partialOffset = base + i;
      this.body = body;
      this.bodyHave = n - i;
      return;
    }
  }

  /**
   * Continues the held partial packet with `d`. Returns the index in `d` where parsing of new
   * packets resumes, or -1 when `d` was consumed entirely.
   */
  private continuePartial(d: Uint8Array, base: number): number {
    const type = this.partialType as H4Type;
    let i = 0;
    const n = d.length;
    if (!this.body) {
      const need = 1 + H4_HEADER_SIZE[type];
      const take = Math.min(need - this.hdrHave, n);
      this.hdr.set(d.subarray(0, take), this.hdrHave);
      this.hdrHave += take;
      i = take;
      if (this.hdrHave < need) return -1;
      const offset = this.partialOffset;
      const len = this.checkHeader(type, this.hdr, 0, offset);
      if (len < 0) {
        // Rescan the header bytes after the type byte, then the rest of this chunk.
        const again = this.hdr.slice(1, need);
        this.reset();
        this.feed(again, offset + 1);
        if (this.partialType !== 0) {
          this.feedRest(d, i, base);
          return -1;
        }
        return i;
      }
      const body = new Uint8Array(need + len);
      body.set(this.hdr.subarray(0, need), 0);
      this.body = body;
      this.bodyHave = need;
    }
    const body = this.body;
    const take = Math.min(body.length - this.bodyHave, n - i);
    body.set(d.subarray(i, i + take), this.bodyHave);
    this.bodyHave += take;
    i += take;
    if (this.bodyHave < body.length) return -1;
    this.reset();
    this.deliver(body);
    return i;
  }

  /** Parses d[i..] after a rescan left a new partial packet. */
  private feedRest(d: Uint8Array, i: number, base: number): void {
    if (i < d.length) this.feed(d.subarray(i), base + i);
  }
}

/** `type` followed by `body` (header and payload) as one H:4 packet. */
export function encodeH4(type: H4Type, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + body.length);
  out[0] = type;
  out.set(body, 1);
  return out;
}
