/**
 * Test doubles for the doctor: a fake machine (file system, user, processes) described as data,
 * a scripted HCI Reset responder, and a "serial line" that simulates the controller's line
 * settings (baud rate, flow control) on top of any transport with the paced link.
 */
import type { DoctorEnv, DoctorFs, DoctorUser, ControllerSession } from '../../src/doctor/env.js';
import type { LinkSettings, PortCandidate } from '../../src/doctor/types.js';
import type { Transport } from '../../src/hci/transport.js';
import { createMemoryTransportPair } from '../../src/hci/memory-transport.js';
import { PacedTransport } from '../../src/hci/paced-link.js';
import { H4Framer, H4Type, encodeH4 } from '../../src/hci/h4.js';
import { TransportError } from '../../src/hci/transport-errors.js';
import type { Clock } from '../../src/util/clock.js';
import { seededRandom } from '../../src/util/random.js';

export interface FakeMachine {
  /** Regular files: path -> content. */
  files?: Record<string, string>;
  /** Directories: path -> entries. */
  dirs?: Record<string, string[]>;
  /** Symbolic links: path -> target as stored (readlink). */
  links?: Record<string, string>;
  /** Canonical paths (realpath); paths not listed resolve to themselves if they exist. */
  real?: Record<string, string>;
  /** Device nodes and other paths that exist, with owner/group/mode. */
  nodes?: Record<string, { uid: number; gid: number; mode: number; access?: 'ok' | 'denied' }>;
  user?: DoctorUser;
}

export function fakeFs(m: FakeMachine): DoctorFs {
  const exists = (p: string): boolean =>
    (m.files?.[p] ?? m.dirs?.[p] ?? m.links?.[p] ?? m.nodes?.[p] ?? m.real?.[p]) !== undefined;
  return {
    readdir: async (p) => m.dirs?.[p]?.slice(),
    readFile: async (p) => m.files?.[p],
    readlink: async (p) => m.links?.[p],
    realpath: async (p) => m.real?.[p] ?? (exists(p) ? p : undefined),
    stat: async (p) => {
      const real = m.real?.[p] ?? p;
      const n = m.nodes?.[real];
      return n ? { uid: n.uid, gid: n.gid, mode: n.mode } : undefined;
    },
    access: async (p) => {
      const real = m.real?.[p] ?? p;
      const n = m.nodes?.[real];
      if (!n) return 'missing';
      return n.access ?? 'ok';
    },
  };
}

export interface FakeEnvParts {
  clock: Clock;
  machine?: FakeMachine;
  platform?: string;
  /** Default: returns no ports. A function that throws simulates a missing udevadm. */
  listPorts?: () => Promise<PortCandidate[]>;
  openPort?: (path: string, s: LinkSettings) => Promise<Transport>;
  openController?: (t: Transport, o: { timeoutMs: number }) => Promise<ControllerSession>;
}

export function fakeEnv(p: FakeEnvParts): DoctorEnv {
  const m = p.machine ?? {};
  return {
    clock: p.clock,
    platform: p.platform ?? 'linux',
    fs: fakeFs(m),
    user: () => m.user ?? { name: 'alice', uid: 1000, groups: [1000] },
    listPorts: p.listPorts ?? (async () => []),
    openPort:
      p.openPort ??
      (async (path) => {
        throw new TransportError('not-found', path, `serial port ${path} not found`);
      }),
    openController:
      p.openController ??
      (async () => {
        throw new Error('no controller in this test');
      }),
  };
}

/** How a scripted controller reacts to HCI Reset. */
export type ResponderMode = { kind: 'answer'; status?: number } | { kind: 'silent' } | { kind: 'noise'; bytes: Uint8Array } | { kind: 'assert'; file: string; line: number };

/** Command Complete for HCI Reset: `04 0E 04 01 03 0C <status>`. */
export function resetComplete(status = 0): Uint8Array {
  return encodeH4(H4Type.Event, Uint8Array.of(0x0e, 0x04, 0x01, 0x03, 0x0c, status));
}

/** hci_uart's assert report: `04 FF len AA <file> 00 <line u32>` (samples/bluetooth/hci_uart/src/main.c). */
export function hciUartAssert(file: string, line: number): Uint8Array {
  const name = new TextEncoder().encode(file);
  const params = new Uint8Array(1 + name.length + 1 + 4);
  params[0] = 0xaa;
  params.set(name, 1);
  const o = 1 + name.length + 1;
  params[o] = line & 0xff;
  params[o + 1] = (line >> 8) & 0xff;
  params[o + 2] = (line >> 16) & 0xff;
  params[o + 3] = (line >>> 24) & 0xff;
  return encodeH4(H4Type.Event, Uint8Array.of(0xff, params.length, ...params));
}

/**
 * A minimal scripted controller: parses H:4 commands from whichever transport is attached and
 * reacts to HCI Reset (opcode 0x0C03) as told; its parser state survives re-attaching, as a real
 * controller's does when the host reopens the port. Counts what it saw. Not a controller model
 * (src/sim is that); it isolates the probe's own logic.
 */
export class ScriptedController {
  readonly seen = { resets: 0, garbageBytes: 0, zeros: 0 };
  private end: Transport | undefined;
  private readonly framer: H4Framer;
  private readonly onData = (d: Uint8Array): void => this.framer.push(d);

  constructor(private readonly mode: ResponderMode) {
    this.framer = new H4Framer({
      direction: 'controller',
      onError: (e) => {
        if (e.kind === 'bad-type') {
          if (e.byte === 0) this.seen.zeros++;
          else this.seen.garbageBytes++;
        }
      },
      onPacket: (pkt) => {
        if (pkt[0] !== H4Type.Command || pkt[1] !== 0x03 || pkt[2] !== 0x0c) return;
        this.seen.resets++;
        const end = this.end;
        if (!end) return;
        const m = this.mode;
        if (m.kind === 'answer') void end.write(resetComplete(m.status ?? 0)).catch(() => {});
        else if (m.kind === 'noise') void end.write(m.bytes).catch(() => {});
        else if (m.kind === 'assert') void end.write(hciUartAssert(m.file, m.line)).catch(() => {});
      },
    });
  }

  /** Listens on `end` (the previous transport is let go). */
  attach(end: Transport): this {
    this.end?.off('data', this.onData);
    this.end = end;
    end.on('data', this.onData);
    return this;
  }

  /** Feeds bytes as if they had arrived earlier (to leave the parser mid-packet). */
  prime(bytes: Uint8Array): void {
    this.framer.push(bytes);
  }
}

/** A {@link ScriptedController} on `end`; returns its counters. */
export function scriptedResponder(end: Transport, mode: ResponderMode): ScriptedController['seen'] {
  return new ScriptedController(mode).attach(end).seen;
}

/** A byte map standing in for a wrong baud rate: every byte comes out as a different one. */
export function wrongBaudMap(b: number): number {
  return (b * 37 + 0x5b) & 0xff;
}

/**
 * Simulates the serial line between host and controller: the controller's UART runs at
 * `firmware` settings; the host opens at whatever it asks for. Wrong baud: both directions
 * garbled through the paced link's byte map. Host RTS/CTS on while the firmware has flow
 * control off: nothing asserts the host's CTS, so nothing the host writes goes out (the paced
 * link drops every byte). Otherwise the inner transport as is.
 */
export function simulatedLine(inner: Transport, host: LinkSettings, firmware: LinkSettings, clock: Clock): Transport {
  const wrongBaud = host.baudRate !== firmware.baudRate;
  const ctsNeverAsserted = host.rtscts && !firmware.rtscts;
  if (!wrongBaud && !ctsNeverAsserted) return inner;
  return new PacedTransport(inner, {
    clock,
    baudRate: host.baudRate,
    random: seededRandom('simulated-line'),
    tx: { ...(wrongBaud ? { map: wrongBaudMap } : {}), ...(ctsNeverAsserted ? { drop: 1 } : {}) },
    rx: wrongBaud ? { map: wrongBaudMap } : {},
  });
}

/** An in-memory port to a scripted responder (for probe tests). */
export function memoryPort(mode: ResponderMode): { host: Transport; controller: Transport; seen: ReturnType<typeof scriptedResponder> } {
  const [host, controller] = createMemoryTransportPair('host', 'controller');
  const seen = scriptedResponder(controller, mode);
  return { host, controller, seen };
}
