/**
 * An independent host stack (npm ble-host) on two virtual controllers, in real time: if the
 * controller's HCI behaviour were off, a stack written against real controllers would notice.
 * Assertions are on what the controllers sent, not on ble-host's own result fields (docs/field-notes.md:
 * its npm release reports some of them wrongly).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMemoryTransportPair } from '../../src/hci/memory-transport.js';
import { H4Framer, H4Type } from '../../src/hci/h4.js';
import { decodeEvent, type HciEvent } from '../../src/hci/events.js';
import { VirtualAir } from '../../src/sim/air.js';
import { FIRMWARE_NAMES } from '../../src/sim/firmware.js';

interface BleHostConnection {
  gatt: {
    exchangeMtu(cb: () => void): void;
    discoverAllPrimaryServices(cb: (s: { uuid: string; discoverCharacteristics(cb: (c: BleHostChar[]) => void): void }[]) => void): void;
  };
  smp: EventEmitter & { sendPairingRequest(req: object): boolean };
  disconnect(): void;
}
interface BleHostChar {
  uuid: string;
  read(cb: (err: number, value: Buffer) => void): void;
}
interface BleHostManager extends EventEmitter {
  gattDb: { setDeviceName(n: string): void; addServices(s: object[]): void };
  setAdvertisingData(d: Buffer): void;
  startAdvertising(p: object, cb: (status: number, conn: BleHostConnection) => void): void;
  startScan(p: object): EventEmitter & { stopScan(): void };
  connect(type: string, addr: string, p: object, cb: (conn: BleHostConnection) => void): void;
}
interface BleHostModule {
  BleManager: { create(t: EventEmitter, o: object, cb: (err: Error | null, m: BleHostManager) => void): void };
}

const SERVICE = '22222222-3333-4444-5555-666666666666';

for (const firmware of FIRMWARE_NAMES) {
  test(`${firmware} firmware: ble-host on two virtual controllers: advertise, scan, connect, LE Secure Connections pairing, encrypted read`, { timeout: 30_000 }, async () => {
    const require = createRequire(import.meta.url);
    const { BleManager } = require('ble-host') as BleHostModule;
    const dir = mkdtempSync(join(tmpdir(), 'sim-ble-host-'));
    const cwd = process.cwd();
    process.chdir(dir); // ble-host keeps its bond storage in the working directory
    const air = new VirtualAir({ seed: 'ble-host-interop', firmware });
    // ble-host keeps bonds in memory across managers: other addresses per firmware, so each run pairs afresh.
    const [perAddr, cenAddr] = firmware === 'ncs' ? ['C0:11:22:33:44:55', 'C0:66:77:88:99:AA'] : ['C1:11:22:33:44:55', 'C1:66:77:88:99:AA'];
    const seen: HciEvent[][] = [[], []];
    const adapters: EventEmitter[] = [];
    const keepAlive = setInterval(() => undefined, 1000); // the air's real-time timers are unref'd
    try {
      for (let i = 0; i < 2; i++) {
        const ctrl = air.createController();
        const [h, c] = createMemoryTransportPair(`host${i}`, `ctrl${i}`);
        ctrl.attach(c);
        const em = new EventEmitter() as EventEmitter & { write(b: Buffer): void };
        const framer = new H4Framer({
          direction: 'host',
          onPacket: (p) => {
            if (p[0] === H4Type.Event) {
              const d = decodeEvent(p.subarray(1));
              if (d.ok && d.event) seen[i]!.push(d.event);
            }
            em.emit('data', Buffer.from(p));
          },
        });
        h.on('data', (d) => framer.push(d));
        em.write = (b) => void h.write(new Uint8Array(b)).catch(() => undefined);
        adapters.push(em);
      }
      const create = (t: EventEmitter, addr: string): Promise<BleHostManager> =>
        new Promise((res, rej) => BleManager.create(t, { staticRandomAddress: addr }, (err, m) => (err ? rej(err) : res(m))));
      const per = await create(adapters[0]!, perAddr);
      const cen = await create(adapters[1]!, cenAddr);
      // Closing the transports at the end makes each manager emit 'error' ("Transport closed").
      for (const m of [per, cen]) m.on('error', () => undefined);
      per.gattDb.setDeviceName('sim-peripheral');
      per.gattDb.addServices([
        {
          uuid: SERVICE,
          characteristics: [{ uuid: '22222222-3333-4444-5555-666666666667', properties: ['read'], readPerm: 'encrypted', value: Buffer.from('secret') }],
        },
      ]);
      per.setAdvertisingData(Buffer.from('020106', 'hex'));
      per.startAdvertising({}, () => undefined);
      const scanner = cen.startScan({});
      await new Promise<void>((res) =>
        scanner.on('report', (ev: { address: string }) => {
          if (ev.address === perAddr) {
            scanner.stopScan();
            res();
          }
        }),
      );
      const value = await new Promise<string>((resolve, reject) => {
        cen.connect('random', perAddr, {}, (conn) => {
          conn.gatt.exchangeMtu(() =>
            conn.gatt.discoverAllPrimaryServices((services) => {
              const s = services.find((x) => x.uuid === SERVICE);
              if (!s) return reject(new Error('service not found'));
              s.discoverCharacteristics((chars) => {
                conn.smp.on('encrypt', (status: number) => {
                  if (status !== 0) return reject(new Error(`encryption failed: ${status}`));
                  chars[0]!.read((err, v) => {
                    if (err) return reject(new Error(`read failed: ${err}`));
                    resolve(v.toString());
                    conn.disconnect();
                  });
                });
                conn.smp.sendPairingRequest({});
              });
            }),
          );
        });
      });
      assert.equal(value, 'secret');
      // What the controllers told the hosts: an LTK request for an LE Secure Connections key
      // (EDIV 0, Rand 0) on the peripheral, Encryption Change (enabled) on both sides.
      const ltkReq = seen[0]!.find((e) => e.name === 'LeLongTermKeyRequest');
      assert.ok(ltkReq && ltkReq.name === 'LeLongTermKeyRequest');
      assert.equal(ltkReq.params.ediv, 0);
      assert.equal(ltkReq.params.rand, 0n);
      for (const s of seen) {
        const ec = s.find((e) => e.name === 'EncryptionChange');
        assert.ok(ec && ec.name === 'EncryptionChange' && ec.params.status === 0 && ec.params.enabled === 1);
      }
      const deadline = Date.now() + 5000;
      while (!seen.every((s) => s.some((e) => e.name === 'DisconnectionComplete')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      const reasons = seen.map((s) => s.find((e) => e.name === 'DisconnectionComplete'));
      assert.ok(reasons[1] && reasons[1].name === 'DisconnectionComplete' && reasons[1].params.reason === 0x16);
      assert.ok(reasons[0] && reasons[0].name === 'DisconnectionComplete' && reasons[0].params.reason === 0x13);
    } finally {
      for (const a of adapters) a.emit('close');
      air.close();
      clearInterval(keepAlive);
      process.chdir(cwd);
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
