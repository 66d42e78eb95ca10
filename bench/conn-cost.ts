/**
 * Section 7: the cost of one long-lived link (issue 13, item 2). Our Peripheral with the live
 * diagnosis wired as the CLI wires it (every HCI packet fed to a LiveDiagnoser), one central
 * connected over the virtual air; then the peripheral's transport is put in sink mode and ATT
 * requests are injected one at a time as if the phone sent them, each waiting for its response:
 * - errors: Read Request to a handle that does not exist, answered with Error Response 0x01;
 * - mixed: a cycle of requests (reads of existing and missing handles, Find Information, Read By
 *   Type, Read By Group Type, a Write Request to a read-only value), each answered once.
 * Reported: CPU per request (process.cpuUsage, user + system) over the first and the last 1,000
 * requests of the run, and the heap used after a full GC before the run and after it. A cost that
 * grows with the link's age shows as last > first; memory that grows with it as heap after > before.
 */
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { encodeAttPdu, type AttPdu } from '../src/att/pdu.js';
import { AclBoundary, encodeAcl } from '../src/hci/acl.js';
import { encodeH4, H4Type } from '../src/hci/h4.js';
import { FixedCid } from '../src/l2cap/connection.js';
import type { PeripheralLink } from '../src/host.js';
import { LiveDiagnoser } from '../src/diagnose/live.js';
import { VirtualAir } from '../src/sim/air.js';
import { RealClock } from '../src/util/clock.js';
import { silentLogger } from '../src/util/log.js';
import { cpuMicros, figure, type Figure } from './stats.js';
import { BenchCentral, sleep, startOurPeripheral, until, within } from './world.js';

export interface ConnCostOptions {
  /** Requests per run on the one link. */
  requests: number;
}

const SECTION = '7 link cost';
const WINDOW = 1000;

function gcFunction(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

function heapMiB(gc: () => void): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed / (1024 * 1024);
}

function attPacket(connHandle: number, pdu: AttPdu): Uint8Array {
  const att = encodeAttPdu(pdu);
  const frame = new Uint8Array(4 + att.length);
  frame[0] = att.length & 0xff;
  frame[1] = att.length >> 8;
  frame[2] = FixedCid.Att;
  frame.set(att, 4);
  return encodeH4(H4Type.Acl, encodeAcl(connHandle, AclBoundary.FirstFlushable, frame));
}

export async function runConnCost(o: ConnCostOptions): Promise<Figure[]> {
  const gc = gcFunction();
  const clock = new RealClock();
  const air = new VirtualAir({ clock, seed: 'bench-conn-cost', connectionEventIntervalMs: 0, log: silentLogger() });
  const diagnoser = new LiveDiagnoser({ clock });
  const ours = await startOurPeripheral({ air, clock, name: 'ours', trace: (dir, h4) => diagnoser.trace(dir === 'sent' ? 'tx' : 'rx', h4) });
  const central = await BenchCentral.create({ air, clock, name: 'central', mtu: 23 });
  const figures: Figure[] = [];
  try {
    const linkP = ours.peripheral.wait('connected');
    await central.connect(ours.peripheral.identity!.address, 6);
    const [link] = (await within(linkP, 5000, 'connected')) as [PeripheralLink];
    await sleep(50);
    await until(() => ours.peripheral.hci.aclStats().links.every((l) => l.inFlight === 0 && l.queuedPackets === 0), 5000, 'ACL queue drained');
    const handle = link.hci.handle;
    ours.tap.sink.sink(handle);
    const readable = ours.streamHandle;
    const kinds: Record<'errors' | 'mixed', Uint8Array[]> = {
      errors: [attPacket(handle, { type: 'readRequest', handle: 0xfff0 })],
      mixed: [
        attPacket(handle, { type: 'readRequest', handle: 0xfff0 }),
        attPacket(handle, { type: 'readRequest', handle: readable }),
        attPacket(handle, { type: 'findInformationRequest', startHandle: 1, endHandle: 0xffff }),
        attPacket(handle, { type: 'readByTypeRequest', startHandle: 1, endHandle: 0xffff, attributeType: Uint8Array.of(0x03, 0x28) }),
        attPacket(handle, { type: 'readByGroupTypeRequest', startHandle: 1, endHandle: 0xffff, groupType: Uint8Array.of(0x00, 0x28) }),
        attPacket(handle, { type: 'writeRequest', handle: readable, value: Uint8Array.of(1) }),
      ],
    };
    /** One request at a time: inject, wait until its response reached the controller. */
    const run = async (packets: Uint8Array[], n: number, onWindow: (i: number, cpuUs: number) => void): Promise<void> => {
      let c0 = process.cpuUsage();
      for (let i = 0; i < n; i++) {
        const before = ours.tap.sink.packets;
        ours.tap.inject(packets[i % packets.length] as Uint8Array);
        let spins = 0;
        while (ours.tap.sink.packets === before) {
          await new Promise<void>((r) => setImmediate(r));
          if (++spins > 10_000) throw new Error(`benchmark: request ${i} got no response`);
        }
        if ((i + 1) % WINDOW === 0) {
          onWindow(i + 1, cpuMicros(c0));
          c0 = process.cpuUsage();
        }
      }
    };
    await run(kinds.errors, 2000, () => undefined); // warm-up (JIT)
    for (const kind of ['errors', 'mixed'] as const) {
      const heapBefore = heapMiB(gc);
      const perWindow: number[] = [];
      await run(kinds[kind], o.requests, (_i, us) => perWindow.push(us / WINDOW));
      const heapAfter = heapMiB(gc);
      const label = kind === 'errors' ? 'requests answered with Error Response' : 'mixed requests';
      figures.push(
        figure(`linkcost.${kind}.cpu.first`, SECTION, `CPU per request, first ${WINDOW} (${label})`, 'µs', [perWindow[0] ?? 0]),
        figure(`linkcost.${kind}.cpu.last`, SECTION, `CPU per request, last ${WINDOW} of ${o.requests.toLocaleString('en-US')} on one link`, 'µs', [perWindow.at(-1) ?? 0]),
        figure(`linkcost.${kind}.heap.before`, SECTION, `heap used before (${label})`, 'MiB', [heapBefore]),
        figure(
          `linkcost.${kind}.heap.after`,
          SECTION,
          `heap used after ${o.requests.toLocaleString('en-US')} on one link`,
          'MiB',
          [heapAfter],
          `live diagnosis retains ${JSON.stringify(diagnoser.retained())}`,
        ),
      );
    }
  } finally {
    diagnoser.stop();
    central.close();
    await ours.close();
    air.close();
  }
  return figures;
}
