/**
 * Controller-to-host ACL reassembly: fragments of one L2CAP frame are joined using the basic L2CAP
 * header's length field (Core 5.4 Vol 3 Part A 3.1) and the Packet_Boundary_Flag (Core 5.4 Vol 4
 * Part E 5.4.2: 0b10 first fragment, 0b01 continuation; 0b00 and 0b11 are taken as starts too).
 * Bounded per connection. A continuation without a start, a start while a frame is pending, a
 * frame over the bound or fragments longer than the frame are reported and the partial frame is
 * dropped; nothing here throws. A frame that arrives in one fragment is handed on without a copy.
 */
import { AclBoundary } from './acl.js';

/** L2CAP basic header: length (2) + channel id (2). */
const L2CAP_HEADER = 4;

export type AclRxProblem =
  | 'continuation-without-start'
  | 'start-while-pending'
  | 'frame-too-large'
  | 'overflow';

export interface AclReassemblerOptions {
  /** Largest frame (L2CAP header + payload) accepted on any connection. Default 65535 + 4. */
  maxFrame?: number;
  onFrame: (handle: number, frame: Uint8Array) => void;
  onProblem: (handle: number, problem: AclRxProblem, detail: string) => void;
}

interface RxState {
  limit: number;
  /** Frame buffer once the header is known. */
  buf: Uint8Array | undefined;
  have: number;
  /** Header bytes while fewer than 4 arrived. */
  head: Uint8Array;
  headHave: number;
  pending: boolean;
  /** Dropping the rest of an oversized frame: its continuations are discarded quietly. */
  discarding: boolean;
}

export interface AclRxStats {
  frames: number;
  dropped: number;
}

export class AclReassembler {
  readonly maxFrame: number;
  private readonly states = new Map<number, RxState>();
  readonly stats: AclRxStats = { frames: 0, dropped: 0 };

  constructor(private readonly opts: AclReassemblerOptions) {
    this.maxFrame = opts.maxFrame ?? 0xffff + L2CAP_HEADER;
  }

  /** Sets the bound for one connection (for example from the L2CAP MTU); capped by `maxFrame`. */
  setLimit(handle: number, maxFrame: number): void {
    this.state(handle).limit = Math.min(this.maxFrame, Math.max(L2CAP_HEADER, maxFrame));
  }

  remove(handle: number): void {
    this.states.delete(handle);
  }

  reset(): void {
    this.states.clear();
  }

  /** Bytes held for a partial frame on `handle`. */
  pendingBytes(handle: number): number {
    const s = this.states.get(handle);
    if (!s || !s.pending) return 0;
    return s.buf ? s.have : s.headHave;
  }

  private state(handle: number): RxState {
    let s = this.states.get(handle);
    if (!s) {
      s = { limit: this.maxFrame, buf: undefined, have: 0, head: new Uint8Array(L2CAP_HEADER), headHave: 0, pending: false, discarding: false };
      this.states.set(handle, s);
    }
    return s;
  }

  private clear(s: RxState): void {
    s.buf = undefined;
    s.have = 0;
    s.headHave = 0;
    s.pending = false;
  }

  private problem(handle: number, s: RxState, problem: AclRxProblem, detail: string): void {
    this.stats.dropped++;
    this.clear(s);
    this.opts.onProblem(handle, problem, detail);
  }

  push(handle: number, boundary: number, data: Uint8Array): void {
    const s = this.state(handle);
    if (boundary === AclBoundary.Continuing) {
      this.continuation(handle, s, data);
      return;
    }
    s.discarding = false;
    if (s.pending) {
      const held = s.buf ? `${s.have} of ${s.buf.length}` : `${s.headHave} header`;
      this.problem(handle, s, 'start-while-pending', `a new frame started while ${held} byte(s) of the previous one were held; the partial frame was dropped`);
    }
    s.pending = true;
    this.append(handle, s, data);
  }

  private continuation(handle: number, s: RxState, data: Uint8Array): void {
    if (!s.pending) {
      if (s.discarding) return;
      this.stats.dropped++;
      this.opts.onProblem(handle, 'continuation-without-start', `continuation fragment of ${data.length} byte(s) with no frame started; dropped`);
      return;
    }
    this.append(handle, s, data);
  }

  /** Adds bytes to the pending frame on `s` (header first). */
  private append(handle: number, s: RxState, data: Uint8Array): void {
    let off = 0;
    if (!s.buf) {
      // Frame in one fragment, the common case: no copy.
      if (s.headHave === 0 && data.length >= L2CAP_HEADER) {
        const total = L2CAP_HEADER + ((data[0] as number) | ((data[1] as number) << 8));
        if (!this.checkTotal(handle, s, total)) return;
        if (data.length === total) {
          this.clear(s);
          this.emit(handle, data);
          return;
        }
        if (data.length > total) {
          this.problem(handle, s, 'overflow', `fragment of ${data.length} byte(s) is longer than its ${total}-byte frame; dropped`);
          return;
        }
        s.buf = new Uint8Array(total);
        s.buf.set(data, 0);
        s.have = data.length;
        return;
      }
      const take = Math.min(L2CAP_HEADER - s.headHave, data.length);
      s.head.set(data.subarray(0, take), s.headHave);
      s.headHave += take;
      off = take;
      if (s.headHave < L2CAP_HEADER) return;
      const total = L2CAP_HEADER + ((s.head[0] as number) | ((s.head[1] as number) << 8));
      if (!this.checkTotal(handle, s, total)) return;
      s.buf = new Uint8Array(total);
      s.buf.set(s.head, 0);
      s.have = L2CAP_HEADER;
    }
    const buf = s.buf;
    const n = data.length - off;
    if (s.have + n > buf.length) {
      this.problem(handle, s, 'overflow', `fragments add up to ${s.have + n} byte(s) for a ${buf.length}-byte frame; the partial frame was dropped`);
      return;
    }
    buf.set(off === 0 ? data : data.subarray(off), s.have);
    s.have += n;
    if (s.have === buf.length) {
      this.clear(s);
      this.emit(handle, buf);
    }
  }

  private checkTotal(handle: number, s: RxState, total: number): boolean {
    if (total <= s.limit) return true;
    this.problem(handle, s, 'frame-too-large', `frame of ${total} byte(s) exceeds the ${s.limit}-byte bound for this connection; dropped`);
    s.discarding = true;
    return false;
  }

  private emit(handle: number, frame: Uint8Array): void {
    this.stats.frames++;
    this.opts.onFrame(handle, frame);
  }
}
