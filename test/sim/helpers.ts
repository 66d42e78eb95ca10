/**
 * A raw H:4 host for driving virtual controllers in tests: it writes command bytes, keeps every
 * packet the controller sends (as bytes and decoded), and waits on a VirtualClock.
 */
import { createMemoryTransportPair, type MemoryTransport } from '../../src/hci/memory-transport.js';
import { H4Framer, H4Type, encodeH4 } from '../../src/hci/h4.js';
import { Commands, decodeReturn, encodeCommand, type CommandName, type CommandParams, type CommandReturn } from '../../src/hci/commands.js';
import { decodeEvent, type EventName, type EventParams, type HciEvent } from '../../src/hci/events.js';
import { decodeAcl, encodeAcl, type AclPacket } from '../../src/hci/acl.js';
import { VirtualClock } from '../../src/util/clock.js';
import { fromHex, toHex } from '../../src/util/bytes.js';
import { VirtualAir, type VirtualAirOptions } from '../../src/sim/air.js';
import type { VirtualController, VirtualControllerOptions } from '../../src/sim/controller.js';

/**
 * Runs the clock until `done()` or `maxMs` of virtual time. A sentinel timer bounds the run:
 * VirtualClock.runUntil alone keeps waiting when timers exist beyond its limit.
 */
export async function runFor(clock: VirtualClock, done: () => boolean, maxMs: number): Promise<boolean> {
  let timedOut = false;
  const t = clock.setTimeout(() => {
    timedOut = true;
  }, maxMs);
  await clock.runUntil(() => done() || timedOut, maxMs + 1);
  clock.clearTimeout(t);
  return done();
}

export interface Received {
  /** Whole H:4 packet, type byte included. */
  bytes: Uint8Array;
  event?: HciEvent;
  acl?: AclPacket;
}

export class RawHost {
  readonly rx: Received[] = [];
  private readonly framer: H4Framer;

  constructor(
    readonly name: string,
    readonly transport: MemoryTransport,
    readonly clock: VirtualClock,
  ) {
    this.framer = new H4Framer({
      direction: 'host',
      onPacket: (p) => {
        const bytes = p.slice();
        const r: Received = { bytes };
        if (bytes[0] === H4Type.Event) {
          const d = decodeEvent(bytes.subarray(1));
          if (d.ok && d.event) r.event = d.event;
        } else if (bytes[0] === H4Type.Acl) {
          const d = decodeAcl(bytes.subarray(1));
          if (d.ok) r.acl = { ...d.packet, data: d.packet.data.slice() };
        }
        this.rx.push(r);
      },
      onError: (e) => {
        throw new Error(`${name}: controller sent bad H:4: ${e.message}`);
      },
    });
    transport.on('data', (chunk) => this.framer.push(chunk));
  }

  /** Index to pass as `from` to only look at what arrives after now. */
  mark(): number {
    return this.rx.length;
  }

  sendRaw(bytes: Uint8Array | string): void {
    void this.transport.write(typeof bytes === 'string' ? fromHex(bytes) : bytes).catch(() => undefined);
  }

  send<N extends CommandName>(name: N, params: CommandParams<N>): void {
    this.sendRaw(encodeH4(H4Type.Command, encodeCommand(name, params)));
  }

  sendAcl(handle: number, data: Uint8Array, boundary = 0): void {
    this.sendRaw(encodeH4(H4Type.Acl, encodeAcl(handle, boundary, data)));
  }

  /** Sends raw command bytes and returns the hex of every packet received until the Command Complete/Status. */
  async exchange(hex: string, maxMs = 1000): Promise<string> {
    const from = this.mark();
    const bytes = fromHex(hex);
    const opcode = (bytes[1] as number) | ((bytes[2] as number) << 8);
    this.sendRaw(bytes);
    await runFor(this.clock, () => this.replyIndex(opcode, from) >= 0, maxMs);
    await this.clock.advance(0);
    return this.rx
      .slice(from)
      .map((r) => toHex(r.bytes))
      .join(' ');
  }

  private replyIndex(opcode: number, from: number): number {
    for (let i = from; i < this.rx.length; i++) {
      const e = (this.rx[i] as Received).event;
      if (e && (e.name === 'CommandComplete' || e.name === 'CommandStatus') && e.params.opcode === opcode) return i;
    }
    return -1;
  }

  /** Sends a command and waits for its Command Complete (decoded returns) or Command Status. */
  async cmd<N extends CommandName>(name: N, params: CommandParams<N>, maxMs = 1000): Promise<{ status: number; ret: CommandReturn<N> | undefined }> {
    const from = this.mark();
    const opcode = Commands[name].opcode;
    this.send(name, params);
    const ok = await runFor(this.clock, () => this.replyIndex(opcode, from) >= 0, maxMs);
    if (!ok) throw new Error(`${this.name}: no answer to ${name}`);
    const e = (this.rx[this.replyIndex(opcode, from)] as Received).event as HciEvent;
    if (e.name === 'CommandStatus') return { status: e.params.status, ret: undefined };
    if (e.name !== 'CommandComplete') throw new Error('unreachable');
    const rp = e.params.returnParameters;
    const status = rp[0] as number;
    let ret: CommandReturn<N> | undefined;
    try {
      ret = decodeReturn(name, rp.subarray(1));
    } catch {
      ret = undefined;
    }
    return { status, ret };
  }

  /** Decoded events named `name` received at index >= from. */
  events<N extends EventName>(name: N, from = 0): EventParams<N>[] {
    const out: EventParams<N>[] = [];
    for (let i = from; i < this.rx.length; i++) {
      const e = (this.rx[i] as Received).event;
      if (e && e.name === name) out.push(e.params as EventParams<N>);
    }
    return out;
  }

  /** Waits (in virtual time) for an event named `name` at index >= from matching `pred`. */
  async waitFor<N extends EventName>(name: N, from = 0, pred: (p: EventParams<N>) => boolean = () => true, maxMs = 60_000): Promise<EventParams<N>> {
    let found: EventParams<N> | undefined;
    const check = (): boolean => {
      found = this.events(name, from).find(pred);
      return found !== undefined;
    };
    await runFor(this.clock, check, maxMs);
    if (!found) throw new Error(`${this.name}: no ${name} within ${maxMs} ms`);
    return found;
  }

  /** ACL packets received at index >= from. */
  aclPackets(from = 0): AclPacket[] {
    const out: AclPacket[] = [];
    for (let i = from; i < this.rx.length; i++) {
      const a = (this.rx[i] as Received).acl;
      if (a) out.push(a);
    }
    return out;
  }

  /** Completed-packet counts reported for `handle` at index >= from. */
  completed(handle: number, from = 0): number {
    let n = 0;
    for (const e of this.events('NumberOfCompletedPackets', from)) for (const h of e.handles) if (h.handle === handle) n += h.count;
    return n;
  }
}

export interface World {
  clock: VirtualClock;
  air: VirtualAir;
  ctrls: VirtualController[];
  hosts: RawHost[];
  close(): void;
}

export function makeWorld(
  n: number,
  opts: { seed?: string; air?: Partial<VirtualAirOptions>; controller?: VirtualControllerOptions; clock?: VirtualClock } = {},
): World {
  const clock = opts.clock ?? new VirtualClock();
  const air = new VirtualAir({ clock, seed: opts.seed ?? 'sim-test', ...(opts.air ?? {}) });
  const ctrls: VirtualController[] = [];
  const hosts: RawHost[] = [];
  const transports: MemoryTransport[] = [];
  for (let i = 0; i < n; i++) {
    const ctrl = air.createController(opts.controller ?? {});
    const [h, c] = createMemoryTransportPair(`host${i}`, `ctrl${i}`);
    ctrl.attach(c);
    ctrls.push(ctrl);
    hosts.push(new RawHost(`host${i}`, h, clock));
    transports.push(h, c);
  }
  return {
    clock,
    air,
    ctrls,
    hosts,
    close() {
      air.close();
      for (const t of transports) void t.close();
    },
  };
}

/** LE subevents 1-5 (default), 7 Data Length Change and 12 PHY Update Complete. */
export const TEST_LE_MASK = 0x000000000000085fn;
export const ENHANCED_CONN_BIT = 1n << 9n;
export const CONN_PARAM_REQ_BIT = 1n << 5n;

/** Reset, unmask events, use the static address from Zephyr Read Static Addresses as random address. */
export async function bringUp(host: RawHost, leMask = TEST_LE_MASK): Promise<string> {
  const r = await host.cmd('Reset', {});
  if (r.status !== 0) throw new Error('reset failed');
  await host.cmd('SetEventMask', { mask: 0x3fffffffffffffffn });
  await host.cmd('LeSetEventMask', { mask: leMask });
  const s = await host.cmd('ZephyrReadStaticAddresses', {});
  const addr = s.ret?.addresses[0]?.address;
  if (!addr) throw new Error('no static address');
  await host.cmd('LeSetRandomAddress', { address: addr });
  return addr;
}

export async function advertise(
  host: RawHost,
  opts: { type?: number; interval?: number; data?: Uint8Array; scanRsp?: Uint8Array; peerAddress?: string; filterPolicy?: number } = {},
): Promise<void> {
  const interval = opts.interval ?? 0x00a0;
  const p = await host.cmd('LeSetAdvertisingParameters', {
    intervalMin: interval,
    intervalMax: interval,
    advertisingType: opts.type ?? 0,
    ownAddressType: 1,
    peerAddressType: 1,
    peerAddress: opts.peerAddress ?? '00:00:00:00:00:00',
    channelMap: 7,
    filterPolicy: opts.filterPolicy ?? 0,
  });
  if (p.status !== 0) throw new Error(`adv params 0x${p.status.toString(16)}`);
  await host.cmd('LeSetAdvertisingData', { data: opts.data ?? fromHex('020106') });
  await host.cmd('LeSetScanResponseData', { data: opts.scanRsp ?? new Uint8Array(0) });
  const e = await host.cmd('LeSetAdvertisingEnable', { enable: true });
  if (e.status !== 0) throw new Error(`adv enable 0x${e.status.toString(16)}`);
}

export async function scan(host: RawHost, opts: { active?: boolean; dup?: boolean } = {}): Promise<void> {
  await host.cmd('LeSetScanParameters', { scanType: opts.active ? 1 : 0, interval: 0x0010, window: 0x0010, ownAddressType: 1, filterPolicy: 0 });
  await host.cmd('LeSetScanEnable', { enable: true, filterDuplicates: opts.dup ?? false });
}

/** LE Create Connection from `central` to the random address `peer`; resolves with both handles. */
export async function connect(
  central: RawHost,
  peripheral: RawHost,
  peer: string,
  opts: { interval?: number; latency?: number; timeout?: number } = {},
): Promise<{ c: number; p: number }> {
  const fromC = central.mark();
  const fromP = peripheral.mark();
  const interval = opts.interval ?? 24;
  const r = await central.cmd('LeCreateConnection', {
    scanInterval: 0x0060,
    scanWindow: 0x0030,
    initiatorFilterPolicy: 0,
    peerAddressType: 1,
    peerAddress: peer,
    ownAddressType: 1,
    connIntervalMin: interval,
    connIntervalMax: interval,
    maxLatency: opts.latency ?? 0,
    supervisionTimeout: opts.timeout ?? 400,
    minCeLength: 0,
    maxCeLength: 0,
  });
  if (r.status !== 0) throw new Error(`create connection 0x${r.status.toString(16)}`);
  const cc = await central.waitFor('LeConnectionComplete', fromC);
  const pc = await peripheral.waitFor('LeConnectionComplete', fromP);
  return { c: cc.handle, p: pc.handle };
}
