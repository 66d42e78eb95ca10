/**
 * ble-host on the virtual air: its transport wants write(Buffer) and a 'data' event with one whole
 * H:4 packet (type byte included), so one end of a memory transport goes through our H4Framer.
 * ble-host keeps bonds under ./NodeBleLib-storage-dir: the tests run from a temporary directory.
 */
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bleHost from 'ble-host';
import { H4Framer } from '../../src/hci/h4.js';
import { createMemoryTransportPair, type MemoryTransport } from '../../src/hci/memory-transport.js';
import type { VirtualAir } from '../../src/sim/air.js';
import type { VirtualClock } from '../../src/util/clock.js';

export class BleHostTransport extends EventEmitter implements bleHost.Transport {
  private readonly framer: H4Framer;
  constructor(private readonly end: MemoryTransport) {
    super();
    this.framer = new H4Framer({ direction: 'host', onPacket: (p) => this.emit('data', Buffer.from(p)) });
    end.on('data', (chunk) => this.framer.push(chunk));
    end.on('close', () => this.emit('close'));
  }
  write(packet: Buffer): void {
    this.end.write(new Uint8Array(packet)).catch(() => undefined);
  }
  close(): Promise<void> {
    return this.end.close();
  }
}

/** Runs the virtual clock until `p` settles. */
export function drive<T>(clock: VirtualClock, p: Promise<T>, maxMs = 60_000): Promise<T> {
  return clock.drive(p, maxMs);
}

/** A ble-host BleManager on a new virtual controller of `air`. */
export async function startBleHost(air: VirtualAir, clock: VirtualClock, name: string, staticRandomAddress: string): Promise<{ manager: bleHost.Manager; transport: BleHostTransport }> {
  const [host, ctrl] = createMemoryTransportPair(`${name}-host`, `${name}-ctrl`);
  air.createController({ name, seed: name }).attach(ctrl);
  const transport = new BleHostTransport(host);
  const manager = await drive(
    clock,
    new Promise<bleHost.Manager>((resolve, reject) => {
      bleHost.BleManager.create(transport, { staticRandomAddress }, (err, m) => (err ? reject(err) : resolve(m)));
    }),
  );
  // Closing the transport makes the manager emit 'error' ("Transport closed"): expected at the end of a test.
  manager.on('error', () => undefined);
  return { manager, transport };
}

/** Runs the test body from a fresh temporary directory (ble-host's bond storage), then removes it. */
export function inTempDir(): { dir: string; restore(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'wh-ble-host-'));
  const before = process.cwd();
  process.chdir(dir);
  return {
    dir,
    restore() {
      process.chdir(before);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A callback API as a promise (ble-host callbacks pass an error code first). */
export function call<T>(fn: (cb: (err: number, v: T) => void) => void): Promise<{ err: number; value: T }> {
  return new Promise((resolve) => fn((err, value) => resolve({ err, value })));
}
