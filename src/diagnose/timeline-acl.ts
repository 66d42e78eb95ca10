/**
 * ACL data to L2CAP frames for the timeline: fragments reassembled per connection handle and
 * direction, each complete basic frame checked against its length field. Problems are reported, not
 * thrown: a continuation without a start, a start before the previous frame was complete, a length
 * field that disagrees with the bytes.
 *
 * Core 5.4 references: ACL data packets and the Packet_Boundary_Flag Vol 4 Part E 5.4.2; L2CAP basic
 * frames Vol 3 Part A 3.1.
 */
import { AclBoundary } from '../hci/acl.js';
import type { HciDirection } from './capture.js';
import type { PacketRef } from './timeline-model.js';

interface Reassembly {
  parts: Uint8Array[];
  have: number;
  need: number;
}

/** Reassembles L2CAP frames from ACL fragments, per handle and direction. */
export class AclReassembler {
  /** Key: handle << 1, plus 1 for controller->host. */
  private readonly reassembly = new Map<number, Reassembly>();

  /** `onProblem` hears about each fragment that cannot be placed (`at` is passed through from {@link frame}). */
  constructor(private readonly onProblem: (at: PacketRef, handle: number, message: string) => void) {}

  /**
   * Takes one ACL packet's data; returns the complete L2CAP frame (basic header included) when this
   * fragment completes one, else undefined.
   */
  frame(handle: number, dir: HciDirection, boundary: number, data: Uint8Array, at: PacketRef): Uint8Array | undefined {
    const key = (handle << 1) | (dir === 'host->controller' ? 0 : 1);
    let frame: Uint8Array | undefined;
    if (boundary === AclBoundary.Continuing) {
      const r = this.reassembly.get(key);
      if (!r) {
        this.onProblem(at, handle, `ACL continuation on handle 0x${handle.toString(16)} without a start fragment`);
        return undefined;
      }
      r.parts.push(data);
      r.have += data.length;
      if (r.need < 0 && r.have >= 4) r.need = 4 + l2capLength(r.parts);
      if (r.need >= 0 && r.have >= r.need) {
        frame = concat(r.parts, r.have);
        this.reassembly.delete(key);
      } else return undefined;
    } else {
      if (this.reassembly.has(key)) {
        this.onProblem(at, handle, `ACL start fragment on handle 0x${handle.toString(16)} before the previous L2CAP frame was complete (dropped)`);
        this.reassembly.delete(key);
      }
      const need = data.length >= 4 ? 4 + ((data[0] as number) | ((data[1] as number) << 8)) : -1;
      if (need >= 0 && data.length >= need) frame = data;
      else {
        this.reassembly.set(key, { parts: [data], have: data.length, need });
        return undefined;
      }
    }
    const len = (frame[0] as number) | ((frame[1] as number) << 8);
    if (frame.length !== 4 + len) {
      this.onProblem(at, handle, `L2CAP frame on handle 0x${handle.toString(16)}: length field ${len}, ${frame.length - 4} bytes`);
      return undefined;
    }
    return frame;
  }

  /** Forgets partial frames in both directions on `handle` (the connection ended or the handle was reused). */
  dropHandle(handle: number): void {
    this.reassembly.delete(handle << 1);
    this.reassembly.delete((handle << 1) | 1);
  }

  /** Forgets every partial frame (the host reset). */
  clear(): void {
    this.reassembly.clear();
  }
}

function l2capLength(parts: Uint8Array[]): number {
  const head = concat(parts, Math.min(4, parts.reduce((n, p) => n + p.length, 0)));
  return (head[0] as number) | ((head[1] as number) << 8);
}

function concat(parts: Uint8Array[], n: number): Uint8Array {
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    if (o >= n) break;
    const take = Math.min(p.length, n - o);
    out.set(take === p.length ? p : p.subarray(0, take), o);
    o += take;
  }
  return out;
}
