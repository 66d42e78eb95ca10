/**
 * Section 4: LESC Just Works pairing on the virtual air (real time), our central (SMP initiator,
 * distributing its IRK like a phone) against our peripheral, with connection events every 0 ms
 * (back to back) and every 30 ms.
 *
 * Measured from the central's pair() call until both sides reported the pairing complete (the
 * peripheral when the central's last key arrived): wall time, process CPU time (both hosts, both
 * controllers and the air run in this process: both sides' P-256 work is in it), and connection
 * events.
 *
 * Connection events. The air counts the events it runs on a connection (AirConnection.eventsRun);
 * it runs an event only when there is something to carry, so that count is "events that carried
 * pairing traffic". At 30 ms the events that went by are also counted from time: the number of
 * intervals between the event that delivered the Pairing Request to the peripheral and the one
 * that delivered the central's last key, plus one. The air's clock is wrapped so that each timer
 * callback knows the time it was due; packets reach the hosts in microtasks of the event's own
 * callback, so that due time is the event's place on the connection's grid, whatever the lateness
 * of real timers on a busy machine.
 *
 * The protocol's minimum, one event per dependent hop: in an event the central transmits first
 * and the peripheral answers; a host cannot answer a PDU within the event that carried it (the
 * event ends when neither side has more queued), so an answer goes in the next event, while PDUs
 * that do not wait for each other share one. Core 5.4 Vol 3 Part H 2.3.5.6.2 (Just Works), 3.5,
 * 3.6.1 (responder distributes first); Vol 6 Part B 5.1.3.1 (encryption start):
 *    1  Pairing Request            C -> P
 *    2  Pairing Response           P -> C
 *    3  Pairing Public Key         C -> P
 *    4  Pairing Public Key + Pairing Confirm (Cb needs only PKa)   P -> C
 *    5  Pairing Random Na          C -> P
 *    6  Pairing Random Nb          P -> C
 *    7  DHKey Check Ea             C -> P
 *    8  DHKey Check Eb             P -> C
 *    9  LL_ENC_REQ / LL_ENC_RSP (central host's LE Enable Encryption after checking Eb; the
 *       peripheral's host gets LE Long Term Key Request)
 *   10  LL_START_ENC_REQ / LL_START_ENC_RSP both ways (after the peripheral host's LTK reply);
 *       Encryption Change on both sides
 *   11  Identity Information + Identity Address Information   P -> C
 *   12  Identity Information + Identity Address Information   C -> P
 * = 12 events. The virtual air models encryption start in exactly two events (src/sim/air.ts
 * startEncryption / ltkAnswer); a real link layer may take one or two more.
 */
import type { PeripheralLink } from '../src/host.js';
import { H4Type } from '../src/hci/h4.js';
import { FixedCid } from '../src/l2cap/connection.js';
import { VirtualAir, type AirConnection } from '../src/sim/air.js';
import { RealClock, type Clock, type TimerHandle } from '../src/util/clock.js';
import { silentLogger } from '../src/util/log.js';
import { cpuMicros, figure, type Figure } from './stats.js';
import { BenchCentral, sleep, startOurPeripheral, until, within } from './world.js';

export const PAIRING_MIN_EVENTS = 12;
const SECTION = '4 pairing LESC JW';

export interface PairingOptions {
  intervalsMs: readonly number[];
  runs: number;
}

interface PairingRun {
  wallMs: number;
  cpuMs: number;
  eventsRun: number;
  /** Events elapsed from the Pairing Request to the last key, from arrival times (interval > 0). */
  eventsElapsed: number | undefined;
}

/** A real clock whose timer callbacks leave behind the time they were due. */
class DueClock implements Clock {
  private readonly inner = new RealClock();
  /** Due time of the timer callback that ran last (ms, the clock's epoch). */
  lastDue = 0;

  now(): number {
    return this.inner.now();
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const due = this.inner.now() + Math.max(0, ms);
    return this.inner.setTimeout(() => {
      this.lastDue = due;
      fn();
    }, ms);
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    this.inner.clearTimeout(handle);
  }
}

/** First fragment of an ACL packet on the SMP channel. */
function isSmpPacket(pkt: Uint8Array): boolean {
  if (pkt[0] !== H4Type.Acl || pkt.length < 9) return false;
  const firstFragment = (((pkt[2] as number) >> 4) & 0x3) === 0b10;
  return firstFragment && ((pkt[7] as number) | ((pkt[8] as number) << 8)) === FixedCid.Smp;
}

async function pairOnce(intervalMs: number, run: number): Promise<PairingRun> {
  const clock = new RealClock();
  const airClock = new DueClock();
  const air = new VirtualAir({ clock: airClock, seed: `bench-pairing-${intervalMs}-${run}`, connectionEventIntervalMs: intervalMs, log: silentLogger() });
  const ours = await startOurPeripheral({ air, clock, name: `pair-p-${intervalMs}-${run}` });
  const central = await BenchCentral.create({ air, clock, name: `pair-c-${intervalMs}-${run}`, mtu: 23, smp: true });
  try {
    const linkP = ours.peripheral.wait('connected');
    const link = await central.connect(ours.peripheral.identity!.address, 24);
    const [pl] = (await within(linkP, 5000, 'connected')) as [PeripheralLink];
    const conn: AirConnection | undefined = air.allConnections[0];
    if (!conn || !link.smp) throw new Error('benchmark: no connection on the air');
    // Let the start-of-connection procedures (data length, remote features) finish.
    let last = -1;
    await until(
      () => {
        const settled = conn.eventsRun === last;
        last = conn.eventsRun;
        return settled;
      },
      10_000,
      'connection to settle',
    );
    await sleep(Math.max(20, 3 * intervalMs));
    const smpArrivals: number[] = [];
    ours.peripheral.hci.on('packet', (dir, pkt) => {
      if (dir === 'received' && isSmpPacket(pkt)) smpArrivals.push(airClock.lastDue);
    });
    let peripheralPaired = false;
    ours.peripheral.on('paired', (l) => {
      if (l === pl) peripheralPaired = true;
    });
    const ev0 = conn.eventsRun;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const info = await within(link.smp.pair(), 20_000, 'pairing (central)');
    await until(() => peripheralPaired, 20_000, 'pairing (peripheral)');
    const wallMs = performance.now() - t0;
    const cpuMs = cpuMicros(c0) / 1000;
    const eventsRun = conn.eventsRun - ev0;
    if (info.model !== 'justWorks' || !info.bonded || info.keySize !== 16) {
      throw new Error(`benchmark: unexpected pairing outcome ${JSON.stringify({ model: info.model, bonded: info.bonded, keySize: info.keySize })}`);
    }
    const first = smpArrivals[0];
    const lastArrival = smpArrivals[smpArrivals.length - 1];
    const eventsElapsed =
      intervalMs > 0 && first !== undefined && lastArrival !== undefined ? Math.round((lastArrival - first) / intervalMs) + 1 : undefined;
    return { wallMs, cpuMs, eventsRun, eventsElapsed };
  } finally {
    central.close();
    await ours.close();
    air.close();
  }
}

export async function runPairing(o: PairingOptions): Promise<Figure[]> {
  const figures: Figure[] = [];
  await pairOnce(0, -1); // warm-up (JIT, crypto tables), not counted
  for (const intervalMs of o.intervalsMs) {
    const runs: PairingRun[] = [];
    for (let i = 0; i < o.runs; i++) runs.push(await pairOnce(intervalMs, i));
    const k = `pairing.interval${intervalMs}`;
    const at = `${intervalMs} ms interval`;
    figures.push(figure(`${k}.wall`, SECTION, `wall time, ${at}`, 'ms', runs.map((r) => r.wallMs), `${o.runs} pairings, each on a fresh connection`));
    figures.push(figure(`${k}.cpu`, SECTION, `CPU time (both sides + air), ${at}`, 'ms', runs.map((r) => r.cpuMs)));
    figures.push(
      figure(`${k}.events`, SECTION, `connection events carrying pairing, ${at}`, 'events', runs.map((r) => r.eventsRun), `protocol minimum ${PAIRING_MIN_EVENTS} (see bench/pairing.ts)`),
    );
    const elapsed = runs.map((r) => r.eventsElapsed).filter((e): e is number => e !== undefined);
    if (elapsed.length > 0) {
      figures.push(figure(`${k}.eventsElapsed`, SECTION, `connection events elapsed (time / interval), ${at}`, 'events', elapsed));
    }
    figures.push(
      figure(
        `${k}.eventsOverMin`,
        SECTION,
        `events used / protocol minimum (${PAIRING_MIN_EVENTS}), ${at}`,
        'x',
        runs.map((r) => (r.eventsElapsed ?? r.eventsRun) / PAIRING_MIN_EVENTS),
        intervalMs > 0 ? 'events elapsed / minimum' : 'events run / minimum',
      ),
    );
  }
  return figures;
}
