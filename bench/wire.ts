/**
 * Section 3: against the wire. Our peripheral reaches its virtual controller through a
 * PacedTransport at 1,000,000 baud 8N1 (100,000 bytes/s each way, real time); the air runs
 * connection events back to back (connectionEventIntervalMs 0) so the UART is the only limit, as
 * with a DK whose radio outruns its UART. The controller has 10 ACL buffers, as our firmware
 * overlay gives the DK (firmware/hci_uart.conf). The application keeps `window` notifications in
 * flight; the central counts the notification value bytes it receives.
 *
 * Ceiling for a payload p in one ACL packet: p / (p + 12) of 100,000 bytes/s (12 = H:4 type 1 +
 * ACL header 4 + L2CAP header 4 + ATT opcode and handle 3). The virtual controller (like the DK's
 * hci_uart) takes ACL packets of at most 251 bytes, so a PDU of more than 251 - 4 bytes goes as
 * several ACL packets, each with its own 5 bytes of H:4 + ACL header: that overhead is inside the
 * achieved figure, not the ceiling. An attribute value is at most 512 bytes (Core 5.4 Vol 3
 * Part F 3.2.9), so at ATT_MTU 517 the payload is 512, not 514.
 */
import { PacedTransport } from '../src/hci/paced-link.js';
import type { PeripheralLink } from '../src/host.js';
import { VirtualAir } from '../src/sim/air.js';
import { ZEPHYR_LL, type FirmwareName } from '../src/sim/firmware.js';
import { RealClock } from '../src/util/clock.js';
import { silentLogger } from '../src/util/log.js';
import { figure, type Figure } from './stats.js';
import { BenchCentral, DK_ACL_BUFFERS, sleep, startOurPeripheral, until, within } from './world.js';

export interface WireOptions {
  mtus: readonly number[];
  /** Measurement windows per MTU and their length. */
  windows: number;
  windowMs: number;
  warmupMs: number;
  /** Notifications in flight. */
  window: number;
  /**
   * ATT_MTUs measured again on the upstream Zephyr profile (7 ACL buffers of 27 bytes, LL data 27):
   * every PDU is cut into 27-byte ACL packets, each with its own H:4 + ACL header and credit.
   */
  zephyrMtus?: readonly number[];
}

const SECTION = '3 wire 1 Mbaud';
const BYTES_PER_S = 100_000;
const ACL_MAX = 251;

export function payloadFor(mtu: number): number {
  return Math.min(mtu - 3, 512);
}

/** H:4 bytes one notification of `payload` bytes takes on the wire (ACL packets of at most `aclMax` bytes). */
export function h4BytesFor(payload: number, aclMax = ACL_MAX): number {
  const frame = 4 + 3 + payload;
  const packets = Math.ceil(frame / aclMax);
  return frame + packets * 5;
}

export async function runWire(o: WireOptions): Promise<Figure[]> {
  const figures: Figure[] = [];
  for (const mtu of o.mtus) {
    const rates = await measureMtu(mtu, o);
    const p = payloadFor(mtu);
    const ceiling = (BYTES_PER_S * p) / (p + 12);
    const bound = (p + 12) / h4BytesFor(p);
    const note =
      `payload ${p} B; ceiling ${Math.round(ceiling)} B/s` +
      (bound < 1 ? `; ACL fragmentation (${Math.ceil((p + 7) / ACL_MAX)} packets per PDU) caps it at ${(bound * 100).toFixed(1)} % of that` : '');
    figures.push(figure(`wire.mtu${mtu}.rate`, SECTION, `notification payload at ATT_MTU ${mtu}`, 'B/s', rates, `${o.windows} windows of ${o.windowMs} ms; ${note}`));
    figures.push(figure(`wire.mtu${mtu}.fraction`, SECTION, `  fraction of the H:4 ceiling, ATT_MTU ${mtu}`, '%', rates.map((r) => (100 * r) / ceiling)));
  }
  if (o.mtus.includes(23)) {
    // Who holds ATT_MTU 23 below the ceiling: the same run with twice the controller's buffers.
    const p = payloadFor(23);
    const ceiling = (BYTES_PER_S * p) / (p + 12);
    const rates = await measureMtu(23, o, 2 * DK_ACL_BUFFERS);
    figures.push(
      figure(
        'wire.mtu23.buffers20.fraction',
        SECTION,
        `  fraction of the H:4 ceiling, ATT_MTU 23, controller with ${2 * DK_ACL_BUFFERS} ACL buffers`,
        '%',
        rates.map((r) => (100 * r) / ceiling),
        `${DK_ACL_BUFFERS} buffers of 32 H:4 bytes hold 3.2 ms of wire, about one credit round trip here (wire, connection event, Number Of Completed Packets back: three timer ticks of about 1 ms); with ${2 * DK_ACL_BUFFERS} the host fills the wire`,
      ),
    );
  }
  for (const mtu of o.zephyrMtus ?? []) {
    // Upstream Zephyr hci_uart at its defaults: 7 x 27-byte ACL buffers, 27-byte LL data.
    const fw = ZEPHYR_LL;
    const rates = await measureMtu(mtu, o, fw.aclBuffers, 'zephyr');
    const p = payloadFor(mtu);
    const ceiling = (BYTES_PER_S * p) / (p + 12);
    const bound = (p + 12) / h4BytesFor(p, fw.aclBufferSize);
    const packets = Math.ceil((p + 7) / fw.aclBufferSize);
    figures.push(
      figure(
        `wire.zephyr27x7.mtu${mtu}.rate`,
        SECTION,
        `notification payload at ATT_MTU ${mtu}, upstream Zephyr controller (${fw.aclBuffers} x ${fw.aclBufferSize}-byte ACL buffers, LL data ${fw.maxDataLength})`,
        'B/s',
        rates,
        `${o.windows} windows of ${o.windowMs} ms; payload ${p} B; ${packets} ACL packet(s) per PDU, which caps the H:4 ceiling at ${(bound * 100).toFixed(1)} %`,
      ),
    );
    figures.push(figure(`wire.zephyr27x7.mtu${mtu}.fraction`, SECTION, `  fraction of the H:4 ceiling, ATT_MTU ${mtu}, Zephyr 27 x 7`, '%', rates.map((r) => (100 * r) / ceiling)));
  }
  return figures;
}

async function measureMtu(mtu: number, o: WireOptions, aclBuffers = DK_ACL_BUFFERS, firmware: FirmwareName = 'ncs'): Promise<number[]> {
  const clock = new RealClock();
  const air = new VirtualAir({ clock, seed: `bench-wire-${mtu}`, connectionEventIntervalMs: 0, log: silentLogger(), firmware });
  const ours = await startOurPeripheral({
    air,
    clock,
    name: `wire-${firmware}-${mtu}-${aclBuffers}`,
    controller: { aclBuffers },
    wrap: (hostEnd) => new PacedTransport(hostEnd, { clock, baudRate: 1_000_000, bitsPerByte: 10 }),
  });
  const central = await BenchCentral.create({ air, clock, name: `wire-central-${firmware}-${mtu}-${aclBuffers}`, mtu });
  let stop = false;
  let pumping: Promise<void> | undefined;
  try {
    const linkP = ours.peripheral.wait('connected');
    const link = await central.connect(ours.peripheral.identity!.address, 6);
    const [pl] = (await within(linkP, 5000, 'connected')) as [PeripheralLink];
    await central.subscribe(link);
    await until(() => pl.att.isSubscribed(ours.streamHandle, 'notify') && pl.att.mtu === mtu, 5000, `subscription at ATT_MTU ${mtu}`);
    const value = new Uint8Array(payloadFor(mtu)).map((_, i) => (i * 7) & 0xff);
    // Keep `window` notifications in flight until told to stop.
    pumping = new Promise<void>((resolve, reject) => {
      let inFlight = 0;
      const pump = (): void => {
        while (!stop && inFlight < o.window) {
          inFlight++;
          pl.att.notify(ours.streamHandle, value).then(
            () => {
              inFlight--;
              if (stop && inFlight === 0) resolve();
              else pump();
            },
            (err: unknown) => reject(err instanceof Error ? err : new Error(String(err))),
          );
        }
      };
      pump();
    });
    pumping.catch(() => undefined);
    await sleep(o.warmupMs);
    const rates: number[] = [];
    for (let i = 0; i < o.windows; i++) {
      const b0 = link.received.bytes;
      const t0 = performance.now();
      await sleep(o.windowMs);
      const b1 = link.received.bytes;
      rates.push((b1 - b0) / ((performance.now() - t0) / 1000));
    }
    stop = true;
    await within(pumping, 10_000, 'notification pump to stop');
    return rates;
  } finally {
    stop = true;
    central.close();
    await ours.close();
    air.close();
  }
}
