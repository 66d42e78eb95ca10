import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OwnAddress, OwnAddressType, type OwnAddressLower, type OwnAddressMode } from '../../src/privacy/own-address.js';
import { generateIrk } from '../../src/privacy/rpa.js';
import { irkResolvesAddress } from '../../src/privacy/rpa.js';
import { MemoryBondStore } from '../../src/bonds/memory.js';
import type { ResolvingListCommand } from '../../src/privacy/resolving-list.js';
import { isResolvablePrivateAddress, type Address } from '../../src/util/address.js';
import { VirtualClock } from '../../src/util/clock.js';
import { seededRandom } from '../../src/util/random.js';
import { createLogger, silentLogger } from '../../src/util/log.js';

const log = process.env.TEST_LOG ? createLogger({ level: 'debug', pretty: false }) : silentLogger();

const STATIC: Address = { type: 'random', address: 'F3:2A:5C:17:09:B4' };
const PUBLIC: Address = { type: 'public', address: '00:1B:DC:07:32:11' };

/** A controller-like lower that records LE Set Random Address and the advertising pauses, in order. */
function setup(mode: OwnAddressMode, bonds = new MemoryBondStore(), controller: Address | 'controller down' = STATIC) {
  const calls: string[] = [];
  const command: ResolvingListCommand = async (name) => {
    calls.push(name);
    return {} as never;
  };
  const lower: OwnAddressLower = {
    controllerIdentity: () => (controller === 'controller down' ? undefined : controller),
    setRandomAddress: async (address) => {
      calls.push(`set ${address}`);
    },
    command,
  };
  const pause = {
    pauseAdvertising: async () => {
      calls.push('pause');
      return true;
    },
    resumeAdvertising: async () => {
      calls.push('resume');
    },
  };
  const own = new OwnAddress({ lower, bonds, clock: new VirtualClock(), random: seededRandom('own-address'), log, mode });
  return { own, calls, pause, bonds };
}

test('settleIdentity: the controller identity with a new IRK, stored; the same controller next time keeps that IRK', async () => {
  const { own, bonds } = setup({ kind: 'identity' });
  const id = await own.settleIdentity(STATIC);
  assert.deepEqual(id.address, STATIC);
  assert.equal(id.irk.length, 16);
  assert.deepEqual(bonds.getLocalIdentity(), id);
  const again = setup({ kind: 'identity' }, bonds);
  assert.deepEqual((await again.own.settleIdentity(STATIC)).irk, id.irk);
});

test('settleIdentity: a bond file from another controller keeps its IRK and takes this controller address', async () => {
  const irk = generateIrk(seededRandom('stored'));
  const bonds = new MemoryBondStore({ localIdentity: { address: PUBLIC, irk } });
  const { own } = setup({ kind: 'identity' }, bonds);
  const id = await own.settleIdentity(STATIC);
  assert.deepEqual(id.address, STATIC);
  assert.deepEqual(id.irk, irk);
  assert.deepEqual(bonds.getLocalIdentity()?.address, STATIC);
});

test('Own_Address_Type: the identity type without privacy (0x00 public, 0x01 static random); 0x01 under rotating privacy even for a public identity', async () => {
  const pub = setup({ kind: 'identity' }, new MemoryBondStore(), PUBLIC);
  await pub.own.settleIdentity(PUBLIC);
  assert.equal(pub.own.ownAddressType(), OwnAddressType.Public);

  const stat = setup({ kind: 'identity' });
  await stat.own.settleIdentity(STATIC);
  assert.equal(stat.own.ownAddressType(), OwnAddressType.Random);

  const rotating = setup({ kind: 'rotating' }, new MemoryBondStore(), PUBLIC);
  await rotating.own.settleIdentity(PUBLIC);
  assert.equal(rotating.own.ownAddressType(), OwnAddressType.Random);
});

test('rotating: the first RPA is set with advertising paused; it is the local address of a connection and the address in use', async () => {
  const { own, calls, pause } = setup({ kind: 'rotating' });
  const id = await own.settleIdentity(STATIC);
  await own.startRotation(pause);
  const rpa = own.rotatingAddress as Address;
  assert.ok(isResolvablePrivateAddress(rpa) && irkResolvesAddress(id.irk, rpa), 'an RPA from our IRK');
  assert.deepEqual(calls, ['pause', `set ${rpa.address}`, 'resume']);
  assert.deepEqual(own.addressInUse(), rpa);
  assert.deepEqual(own.localAddressFor({ localRpa: undefined }), rpa);
  // A local RPA the controller reported (LE Enhanced Connection Complete) wins.
  assert.deepEqual(own.localAddressFor({ localRpa: '4A:00:00:00:00:01' }), { type: 'random', address: '4A:00:00:00:00:01' });
  own.stop();
});

test('rotating: controllerReset pauses advertising before it returns, then sets a fresh RPA', async () => {
  const { own, calls, pause } = setup({ kind: 'rotating' });
  await own.settleIdentity(STATIC);
  await own.startRotation(pause);
  const first = own.rotatingAddress as Address;
  calls.length = 0;
  own.controllerReset();
  assert.deepEqual(calls, ['pause'], 'paused synchronously');
  await new Promise((r) => setImmediate(r));
  const second = own.rotatingAddress as Address;
  assert.notEqual(second.address, first.address);
  assert.deepEqual(calls, ['pause', `set ${second.address}`, 'resume']);
  own.stop();
});

test('per-connection: the identity until the first RPA, then each new RPA is the address in use and the local address of the next connection', async () => {
  const { own, calls } = setup({ kind: 'per-connection' }, new MemoryBondStore(), PUBLIC);
  const id = await own.settleIdentity(PUBLIC);
  assert.deepEqual(own.addressInUse(), PUBLIC);
  assert.equal(own.ownAddressType(), OwnAddressType.Public);
  const rpa = await own.newPrivateAddress();
  assert.ok(irkResolvesAddress(id.irk, rpa));
  assert.deepEqual(calls, [`set ${rpa.address}`]);
  assert.deepEqual(own.addressInUse(), rpa);
  assert.equal(own.ownAddressType(), OwnAddressType.Random);
  assert.deepEqual(own.localAddressFor({ localRpa: undefined }), rpa);
});

test('identity: before start() the local address falls back to the stored identity, then to the controller identity', () => {
  const bonds = new MemoryBondStore({ localIdentity: { address: STATIC, irk: generateIrk(seededRandom('x')) } });
  assert.deepEqual(setup({ kind: 'identity' }, bonds).own.localAddressFor({ localRpa: undefined }), STATIC);
  assert.deepEqual(setup({ kind: 'identity' }, new MemoryBondStore(), PUBLIC).own.localAddressFor({ localRpa: undefined }), PUBLIC);
  assert.throws(() => setup({ kind: 'identity' }, new MemoryBondStore(), 'controller down').own.localAddressFor({ localRpa: undefined }), /start\(\) was not called/);
});
