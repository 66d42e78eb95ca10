/**
 * Sections 1 and 2: the host's own path, ours and ble-host's side by side in the same run.
 *
 * Each peripheral is connected over the virtual air to one of our minimal centrals (ATT_MTU 247),
 * which subscribes to the 512-byte notify characteristic. Then the peripheral's transport is put
 * in sink mode: the controller "consumes instantly" (ACL packets are taken as they are written and
 * Number Of Completed Packets comes back on the next microtask), so nothing but the host runs.
 * - notifications: the application sends 244-byte notifications keeping `window` of them in
 *   flight (ours: `link.att.notify()` resolves when the PDU was handed to the controller;
 *   ble-host: `characteristic.notify(conn, value, sentCallback)`); done when every one of them
 *   reached the transport as an H:4 ACL packet (checked).
 * - Write Commands: whole H:4 ACL packets carrying ATT Write Command (244-byte value) are injected
 *   into the host's transport in batches of `batch` per event-loop turn; done when the
 *   characteristic's write handler ran for each.
 * Both stacks get what the controller sends (these Write Commands, Number Of Completed Packets) as
 * transport bytes that go through an H:4 framer: ours is inside our driver; ble-host's transport
 * contract takes whole packets, so its bridge (bench/sink.ts) runs the same framer in front of it.
 * Rate = PDUs / wall time; CPU = process.cpuUsage() (user + system) / PDUs. Runs alternate between
 * the two stacks; the ratio is per pair of runs.
 */
import { AttOpcode, encodeAttPdu } from '../src/att/pdu.js';
import { AclBoundary, encodeAcl } from '../src/hci/acl.js';
import { encodeH4, H4Type } from '../src/hci/h4.js';
import { FixedCid } from '../src/l2cap/connection.js';
import type { PeripheralLink } from '../src/host.js';
import { VirtualAir } from '../src/sim/air.js';
import { RealClock } from '../src/util/clock.js';
import { silentLogger } from '../src/util/log.js';
import { BleHostPeripheral } from './ble-host-peripheral.js';
import { cpuMicros, figure, type Figure } from './stats.js';
import { BenchCentral, sleep, startOurPeripheral, until, within } from './world.js';

export interface HostPathOptions {
  runs: number;
  /** PDUs per run. */
  pdus: number;
  /** Notifications in flight (sent, not yet handed to the controller). */
  window: number;
  /** Write Commands injected per event-loop turn. */
  batch: number;
}

const PAYLOAD = 244;
const MTU = 247;
const SECTION = '1-2 host path';

interface Run {
  wallMs: number;
  cpuUs: number;
}

/** One measured stretch: `work` resolves when all `n` PDUs went through. */
async function measure(work: () => Promise<void>): Promise<Run> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await work();
  const wallMs = performance.now() - t0;
  return { wallMs, cpuUs: cpuMicros(c0) };
}

/** Sends `n` notifications keeping `window` in flight; `send` starts one and calls back when it was handed over. */
function windowed(n: number, window: number, send: (done: (err?: Error) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let sent = 0;
    let done = 0;
    let failed = false;
    const onDone = (err?: Error): void => {
      if (failed) return;
      if (err) {
        failed = true;
        reject(err);
        return;
      }
      done++;
      if (done === n) resolve();
      else pump();
    };
    const pump = (): void => {
      while (sent < n && sent - done < window) {
        sent++;
        send(onDone);
      }
    };
    pump();
  });
}

/** Injects `n` packets, `batch` per event-loop turn, and waits until `count()` grew by `n`. */
async function injectWrites(n: number, batch: number, inject: () => void, count: () => number): Promise<void> {
  const target = count() + n;
  let injected = 0;
  while (injected < n) {
    const k = Math.min(batch, n - injected);
    for (let i = 0; i < k; i++) inject();
    injected += k;
    await new Promise<void>((r) => setImmediate(r));
  }
  const start = performance.now();
  while (count() < target) {
    if (performance.now() - start > 30_000) throw new Error(`benchmark: only ${n - (target - count())} of ${n} writes reached the handler`);
    await new Promise<void>((r) => setImmediate(r));
  }
}

/** H:4 ACL packet (controller to host) carrying an ATT Write Command of `value` to `attHandle`. */
function writeCommandPacket(connHandle: number, attHandle: number, value: Uint8Array): Uint8Array {
  const att = encodeAttPdu({ type: 'writeCommand', handle: attHandle, value });
  if (att[0] !== AttOpcode.writeCommand) throw new Error('benchmark: Write Command encoding');
  const frame = new Uint8Array(4 + att.length);
  frame[0] = att.length & 0xff;
  frame[1] = att.length >> 8;
  frame[2] = FixedCid.Att;
  frame[3] = 0;
  frame.set(att, 4);
  return encodeH4(H4Type.Acl, encodeAcl(connHandle, AclBoundary.FirstFlushable, frame));
}

export async function runHostPath(o: HostPathOptions): Promise<Figure[]> {
  const clock = new RealClock();
  const air = new VirtualAir({ clock, seed: 'bench-host-path', connectionEventIntervalMs: 0, log: silentLogger() });
  const ours = await startOurPeripheral({ air, clock, name: 'ours' });
  const theirs = await BleHostPeripheral.create({ air, name: 'ble-host', address: 'C0:11:22:33:44:55' });
  const centralA = await BenchCentral.create({ air, clock, name: 'central-a', mtu: MTU });
  const centralB = await BenchCentral.create({ air, clock, name: 'central-b', mtu: MTU });
  try {
    // Connect and subscribe, over the air.
    const ourLinkP = ours.peripheral.wait('connected');
    const linkA = await centralA.connect(ours.peripheral.identity!.address, 6);
    const [ourLink] = (await within(ourLinkP, 5000, 'our peripheral: connected')) as [PeripheralLink];
    const charsA = await centralA.subscribe(linkA);
    const theirConn = theirs.advertise();
    const linkB = await centralB.connect(theirs.address, 6);
    await within(theirConn, 5000, 'ble-host: connected');
    const charsB = await centralB.subscribe(linkB);
    await until(() => theirs.subscribed && ourLink.att.isSubscribed(ours.streamHandle, 'notify'), 5000, 'subscriptions');
    if (ourLink.att.mtu !== MTU) throw new Error(`benchmark: our ATT_MTU is ${ourLink.att.mtu}, expected ${MTU}`);
    // Let everything in flight settle, then cut both peripherals off from the air.
    await sleep(50);
    await until(() => ours.peripheral.hci.aclStats().links.every((l) => l.inFlight === 0 && l.queuedPackets === 0), 5000, 'our ACL queue drained');
    const theirHandle = air.allConnections.find((c) => c.peripheral.ctrl.name === 'ble-host')?.peripheral.handle;
    if (theirHandle === undefined) throw new Error('benchmark: no air connection for ble-host');
    ours.tap.sink.sink(ourLink.hci.handle);
    theirs.transport.sink.sink(theirHandle);

    const value = new Uint8Array(PAYLOAD).map((_, i) => i & 0xff);
    const valueBuf = Buffer.from(value);
    const ourWrite = writeCommandPacket(ourLink.hci.handle, charsA.sink.valueHandle, value);
    const theirWrite = Buffer.from(writeCommandPacket(theirHandle, charsB.sink.valueHandle, value));

    const notifyOurs = async (n: number): Promise<Run> => {
      const before = ours.tap.sink.packets;
      const r = await measure(() =>
        windowed(n, o.window, (done) => {
          ourLink.att.notify(ours.streamHandle, value).then(
            (ok) => done(ok ? undefined : new Error('benchmark: our notification was not sent')),
            (err: unknown) => done(err instanceof Error ? err : new Error(String(err))),
          );
        }),
      );
      const got = ours.tap.sink.packets - before;
      if (got !== n) throw new Error(`benchmark: ${got} ACL packets for ${n} notifications (ours)`);
      return r;
    };
    const notifyTheirs = async (n: number): Promise<Run> => {
      const before = theirs.transport.sink.packets;
      const r = await measure(() =>
        windowed(n, o.window, (done) => {
          if (!theirs.notify(valueBuf, () => done())) done(new Error('benchmark: ble-host did not notify (not subscribed)'));
        }),
      );
      // ble-host calls sentCallback when the packet went to its transport; the last ones may be a tick behind.
      await until(() => theirs.transport.sink.packets - before >= n, 5000, 'ble-host packets on the transport');
      const got = theirs.transport.sink.packets - before;
      if (got !== n) throw new Error(`benchmark: ${got} ACL packets for ${n} notifications (ble-host)`);
      return r;
    };
    const writeOurs = (n: number): Promise<Run> =>
      measure(() => injectWrites(n, o.batch, () => ours.tap.inject(ourWrite), () => ours.writes.count));
    const writeTheirs = (n: number): Promise<Run> =>
      measure(() => injectWrites(n, o.batch, () => theirs.transport.inject(theirWrite), () => theirs.writes.count));

    // Warm-up (JIT), not counted.
    const warm = Math.max(200, Math.floor(o.pdus / 4));
    await notifyOurs(warm);
    await notifyTheirs(warm);
    await writeOurs(warm);
    await writeTheirs(warm);

    const results = { notify: { ours: [] as Run[], theirs: [] as Run[] }, write: { ours: [] as Run[], theirs: [] as Run[] } };
    for (let i = 0; i < o.runs; i++) {
      // Alternate which stack goes first so drift in machine load hits both alike.
      if (i % 2 === 0) {
        results.notify.ours.push(await notifyOurs(o.pdus));
        results.notify.theirs.push(await notifyTheirs(o.pdus));
        results.write.ours.push(await writeOurs(o.pdus));
        results.write.theirs.push(await writeTheirs(o.pdus));
      } else {
        results.notify.theirs.push(await notifyTheirs(o.pdus));
        results.notify.ours.push(await notifyOurs(o.pdus));
        results.write.theirs.push(await writeTheirs(o.pdus));
        results.write.ours.push(await writeOurs(o.pdus));
      }
    }
    const rate = (r: Run): number => o.pdus / (r.wallMs / 1000);
    const cpu = (r: Run): number => r.cpuUs / o.pdus;
    const figures: Figure[] = [];
    const kinds = [
      ['notify', '244-byte notifications, application -> H:4', 'notification'],
      ['write', 'Write Commands (244-byte value), H:4 -> application', 'write'],
    ] as const;
    for (const [kind, what, unitNoun] of kinds) {
      const r = results[kind];
      const n = `${o.runs} runs of ${o.pdus} PDUs`;
      figures.push(figure(`hostPath.${kind}.ours.rate`, SECTION, `${what}: ours`, 'PDU/s', r.ours.map(rate), n));
      figures.push(figure(`hostPath.${kind}.ours.cpu`, SECTION, `${what}: ours, CPU`, `us/${unitNoun}`, r.ours.map(cpu)));
      figures.push(figure(`hostPath.${kind}.bleHost.rate`, SECTION, `${what}: ble-host`, 'PDU/s', r.theirs.map(rate), n));
      figures.push(figure(`hostPath.${kind}.bleHost.cpu`, SECTION, `${what}: ble-host, CPU`, `us/${unitNoun}`, r.theirs.map(cpu)));
      figures.push(
        figure(
          `hostPath.${kind}.ratio`,
          SECTION,
          `${what}: ours / ble-host rate`,
          'x',
          r.ours.map((x, i) => rate(x) / rate(r.theirs[i] as Run)),
          'per pair of consecutive runs; above 1 means ours is faster',
        ),
      );
    }
    return figures;
  } finally {
    theirs.close();
    centralA.close();
    centralB.close();
    await ours.close();
    air.close();
  }
}
