/**
 * Section 6: memory and scale. Runs in a child process of its own (`--child scale`, with
 * --expose-gc) so that resident memory is not inflated by the sections before it.
 *
 * One Node process holds our peripheral (maxConnections 16, on a controller allowing 16 links and
 * 10 ACL buffers like our DK firmware), N of our minimal centrals (each its own driver, L2CAP,
 * ATT bearer and GATT client on its own controller) and the virtual air with connection events
 * back to back (connectionEventIntervalMs 0). Each central exchanges ATT_MTU 247 and subscribes.
 * - idle: the peripheral started and advertising, no central yet.
 * - N = 1, 4, 16 streaming: every link gets 244-byte notifications, `window` in flight per link.
 *   Resident memory (process.memoryUsage().rss after a forced GC) is sampled after each window;
 *   CPU per notification delivered is for the whole process (peripheral, N centrals, air).
 * - The same N links with the peripheral's transport in sink mode (see bench/sink.ts): CPU per
 *   notification of the peripheral host alone, the figure that must not grow with N. Each run
 *   starts after a forced GC: process CPU includes V8's background GC threads, and without it a
 *   run pays for garbage left by the streaming before it (figures then scatter 2-3x between
 *   processes).
 */
import type { PeripheralLink } from '../src/host.js';
import { VirtualAir } from '../src/sim/air.js';
import { RealClock } from '../src/util/clock.js';
import { silentLogger } from '../src/util/log.js';
import { cpuMicros, figure, type Figure } from './stats.js';
import { BenchCentral, DK_ACL_BUFFERS, sleep, startOurPeripheral, until, within, type CentralLink } from './world.js';

const SECTION = '6 memory and scale';
const MTU = 247;
const PAYLOAD = 244;

export interface ScaleOptions {
  counts: readonly number[];
  /** Streaming windows over the air per count, and their length. */
  windows: number;
  windowMs: number;
  /** Sink runs per count and notifications per run (spread over the links). */
  sinkRuns: number;
  sinkPdus: number;
  /** Notifications in flight per link. */
  window: number;
}

function rssMiB(): number {
  globalThis.gc?.();
  return process.memoryUsage().rss / (1024 * 1024);
}

/** Keeps `window` notifications in flight on every link until stop() resolves. */
function streamAll(links: readonly PeripheralLink[], handle: number, value: Uint8Array, window: number): { stop(): Promise<void> } {
  let stopping = false;
  let inFlight = 0;
  let failure: Error | undefined;
  let drained: (() => void) | undefined;
  const one = (l: PeripheralLink): void => {
    inFlight++;
    l.att.notify(handle, value).then(
      () => {
        inFlight--;
        if (!stopping) one(l);
        else if (inFlight === 0) drained?.();
      },
      (err: unknown) => {
        inFlight--;
        failure ??= err instanceof Error ? err : new Error(String(err));
        if (inFlight === 0) drained?.();
      },
    );
  };
  for (const l of links) for (let i = 0; i < window; i++) one(l);
  return {
    stop: () => {
      stopping = true;
      return new Promise<void>((resolve, reject) => {
        const end = (): void => (failure ? reject(failure) : resolve());
        if (inFlight === 0) end();
        else drained = end;
      });
    },
  };
}

/** Sends `perLink` notifications on every link, `window` in flight per link; resolves when all were handed over. */
function sendCount(links: readonly PeripheralLink[], handle: number, value: Uint8Array, perLink: number, window: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let remaining = links.length * perLink;
    for (const l of links) {
      let sent = 0;
      const one = (): void => {
        sent++;
        l.att.notify(handle, value).then(
          () => {
            if (--remaining === 0) resolve();
            else if (sent < perLink) one();
          },
          (err: unknown) => reject(err instanceof Error ? err : new Error(String(err))),
        );
      };
      for (let i = 0; i < Math.min(window, perLink); i++) one();
    }
  });
}

/** `baselineMiB`: the process's RSS before any of the stack was loaded. */
export async function runScale(o: ScaleOptions, baselineMiB?: number): Promise<Figure[]> {
  const clock = new RealClock();
  const maxCount = Math.max(...o.counts);
  const air = new VirtualAir({ clock, seed: 'bench-scale', connectionEventIntervalMs: 0, log: silentLogger() });
  const ours = await startOurPeripheral({
    air,
    clock,
    name: 'scale-p',
    maxConnections: maxCount,
    controller: { maxConnections: maxCount, aclBuffers: DK_ACL_BUFFERS },
  });
  const centrals: BenchCentral[] = [];
  const links: PeripheralLink[] = [];
  const centralLinks: CentralLink[] = [];
  const figures: Figure[] = [];
  const gcNote = globalThis.gc ? 'after a forced GC' : 'no --expose-gc: without a forced GC';
  try {
    await sleep(100);
    const idle: number[] = [];
    for (let i = 0; i < 5; i++) {
      idle.push(rssMiB());
      await sleep(20);
    }
    if (baselineMiB !== undefined) {
      figures.push(figure('scale.rss.baseline', SECTION, 'resident memory, Node before loading the stack', 'MiB', [baselineMiB], `process RSS ${gcNote}`));
    }
    figures.push(figure('scale.rss.idle', SECTION, 'resident memory, idle (advertising)', 'MiB', idle, `process RSS ${gcNote}: Node, the stack, the air and one virtual controller`));
    const value = new Uint8Array(PAYLOAD).map((_, i) => (i * 3) & 0xff);
    const handle = ours.streamHandle;

    for (const n of o.counts) {
      while (centrals.length < n) {
        const central = await BenchCentral.create({ air, clock, name: `scale-c${centrals.length}`, mtu: MTU });
        centrals.push(central);
        const linkP = ours.peripheral.wait('connected');
        const cl = await central.connect(ours.peripheral.identity!.address, 6);
        const [pl] = (await within(linkP, 5000, `connection ${centrals.length}`)) as [PeripheralLink];
        await central.subscribe(cl);
        await until(() => pl.att.isSubscribed(handle, 'notify'), 5000, 'subscription');
        links.push(pl);
        centralLinks.push(cl);
      }
      const delivered = (): number => centralLinks.reduce((s, l) => s + l.received.count, 0);

      // Streaming over the air.
      const stream = streamAll(links, handle, value, o.window);
      await sleep(200);
      const cpu: number[] = [];
      const rate: number[] = [];
      const rss: number[] = [];
      for (let w = 0; w < o.windows; w++) {
        const d0 = delivered();
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        await sleep(o.windowMs);
        const d = delivered() - d0;
        const us = cpuMicros(c0);
        const s = (performance.now() - t0) / 1000;
        if (d === 0) throw new Error(`benchmark: no notification delivered with ${n} connection(s)`);
        cpu.push(us / d);
        rate.push(d / s);
        rss.push(rssMiB());
      }
      await within(stream.stop(), 10_000, 'streams to stop');
      await until(() => ours.peripheral.hci.aclStats().links.every((l) => l.inFlight === 0 && l.queuedPackets === 0), 10_000, 'ACL queues drained');
      const conns = `${n} connection${n === 1 ? '' : 's'}`;
      figures.push(figure(`scale.rss.conn${n}`, SECTION, `resident memory, ${conns} streaming`, 'MiB', rss, `process RSS ${gcNote}, sampled after each window`));
      figures.push(figure(`scale.air.rate.conn${n}`, SECTION, `  notifications delivered over the air, ${conns}`, 'PDU/s', rate, `${o.windows} windows of ${o.windowMs} ms`));
      figures.push(
        figure(
          `scale.air.cpu.conn${n}`,
          SECTION,
          `  CPU per notification (whole process), ${conns}`,
          'us/notification',
          cpu,
          `peripheral + ${n} central host(s) + controllers + air; the air's per-event timer work is shared by fewer notifications when fewer links stream`,
        ),
      );

      // The peripheral host alone: sink mode on every link.
      for (const l of links) ours.tap.sink.sink(l.hci.handle);
      const perLink = Math.max(1, Math.floor(o.sinkPdus / n));
      await sendCount(links, handle, value, perLink, o.window); // warm-up
      const sinkCpu: number[] = [];
      for (let r = 0; r < o.sinkRuns; r++) {
        // Start each run on a collected heap, so background GC work in it is the run's own.
        globalThis.gc?.();
        const before = ours.tap.sink.packets;
        const c0 = process.cpuUsage();
        await within(sendCount(links, handle, value, perLink, o.window), 30_000, 'sink run');
        const us = cpuMicros(c0);
        const got = ours.tap.sink.packets - before;
        if (got !== perLink * n) throw new Error(`benchmark: ${got} ACL packets for ${perLink * n} notifications`);
        sinkCpu.push(us / got);
      }
      ours.tap.sink.releaseAll();
      figures.push(
        figure(`scale.sink.cpu.conn${n}`, SECTION, `  CPU per notification (our host only), ${conns}`, 'us/notification', sinkCpu, `${o.sinkRuns} runs of ${perLink * n} notifications, each after a forced GC; includes the sink's Number Of Completed Packets`),
      );
    }
    return figures;
  } finally {
    for (const c of centrals) c.close();
    await ours.close();
    air.close();
  }
}
