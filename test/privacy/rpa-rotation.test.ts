import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  RpaRotator,
  checkRpaTimeout,
  DEFAULT_RPA_TIMEOUT_S,
  type RpaRotatorLower,
  type RpaRotation,
} from '../../src/privacy/rpa-rotation.js';
import { generateIrk } from '../../src/privacy/rpa.js';
import { irkResolvesAddress } from '../../src/privacy/rpa.js';
import { HciError } from '../../src/hci/hci-error.js';
import { HciStatus } from '../../src/hci/status.js';
import { addressToWire, randomAddressKind, type Address } from '../../src/util/address.js';
import { VirtualClock, settle } from '../../src/util/clock.js';
import { seededRandom } from '../../src/util/random.js';
import { silentLogger } from '../../src/util/log.js';
import { WearableHostError } from '../../src/util/errors.js';

const log = silentLogger();

/**
 * A controller-like lower: LE Set Random Address is Command Disallowed while advertising
 * (Core 5.4 Vol 4 Part E 7.8.4), like the SoftDevice Controller. Records every call in order.
 */
class FakeLower implements RpaRotatorLower {
  calls: string[] = [];
  advertising = false;
  /** The controller's random address. */
  address: string | undefined;
  failSetWith: Error | undefined;
  failResumeWith: Error | undefined;
  /** When set, pauseAdvertising waits for this before resolving. */
  pauseGate: Promise<void> | undefined;

  async setRandomAddress(address: string): Promise<void> {
    this.calls.push(`set ${address}`);
    if (this.failSetWith) throw this.failSetWith;
    if (this.advertising) throw new HciError(HciStatus.CommandDisallowed, 0x2005);
    this.address = address;
  }
  async pauseAdvertising(): Promise<boolean> {
    this.calls.push('pause');
    if (this.pauseGate) await this.pauseGate;
    const was = this.advertising;
    this.advertising = false;
    return was;
  }
  async resumeAdvertising(): Promise<void> {
    this.calls.push('resume');
    if (this.failResumeWith) throw this.failResumeWith;
    this.advertising = true;
  }
}

function setup(opts: { timeoutS?: number; retryS?: number; historySize?: number } = {}) {
  const clock = new VirtualClock();
  const rng = seededRandom('rpa-rotation');
  const irk = generateIrk(rng);
  const lower = new FakeLower();
  const rotator = new RpaRotator({ lower, clock, random: rng, irk, log, ...opts });
  const rotations: RpaRotation[] = [];
  const errors: Error[] = [];
  rotator.on('rotated', (r) => rotations.push(r));
  rotator.on('error', (e) => errors.push(e));
  return { clock, irk, lower, rotator, rotations, errors };
}

/** Top two bits of the most significant byte (wire byte 5) are 0b01 and our IRK resolves it. */
function assertOurRpa(irk: Uint8Array, a: Address): void {
  assert.equal(a.type, 'random');
  assert.equal((addressToWire(a.address)[5] as number) >> 6, 0b01, `${a.address} has top bits 0b01`);
  assert.equal(randomAddressKind(a.address), 'resolvable');
  assert.equal(irkResolvesAddress(irk, a), true, `${a.address} resolves with our IRK`);
}

test('start() sets a resolvable private address of our IRK before advertising: pause (not advertising) then LE Set Random Address, no resume', async () => {
  const { irk, lower, rotator, rotations, clock } = setup();
  const a = await rotator.start();
  assertOurRpa(irk, a);
  assert.deepEqual(lower.calls, ['pause', `set ${a.address}`]);
  assert.equal(lower.address, a.address);
  assert.deepEqual(rotator.addressInUse(), a);
  assert.equal(rotations.length, 1);
  assert.equal(rotations[0]?.reason, 'start');
  assert.equal(rotations[0]?.previous, undefined);
  assert.equal(rotations[0]?.at, clock.now());
  // A second start() is a no-op returning the same address.
  assert.deepEqual(await rotator.start(), a);
  assert.equal(lower.calls.length, 2);
  rotator.stop();
});

test('the address rotates every 900 s by default, exactly at the period, and each rotation is pause -> set -> resume while advertising', async () => {
  const { irk, lower, rotator, rotations, clock } = setup();
  assert.equal(rotator.timeoutMs, DEFAULT_RPA_TIMEOUT_S * 1000);
  const first = await rotator.start();
  lower.advertising = true; // the advertiser started after the first address was set
  lower.calls = [];
  await clock.advance(900_000 - 1);
  assert.deepEqual(lower.calls, [], 'nothing before the period ends');
  await clock.advance(1);
  assert.equal(rotations.length, 2);
  const second = rotator.addressInUse();
  assert.notEqual(second.address, first.address);
  assertOurRpa(irk, second);
  assert.deepEqual(lower.calls, ['pause', `set ${second.address}`, 'resume']);
  assert.equal(lower.advertising, true, 'advertising is back on');
  assert.deepEqual(rotations[1]?.previous, first);
  assert.equal(rotations[1]?.reason, 'timeout');

  lower.calls = [];
  await clock.advance(900_000);
  const third = rotator.addressInUse();
  assert.deepEqual(lower.calls, ['pause', `set ${third.address}`, 'resume']);
  assert.equal(rotations.length, 3);
  rotator.stop();
  assert.equal(clock.pendingCount, 0, 'stop() leaves no timer');
});

test('while connected (not advertising) a rotation sets the address without resuming advertising', async () => {
  const { lower, rotator, clock } = setup({ timeoutS: 60 });
  await rotator.start();
  lower.calls = [];
  await clock.advance(60_000);
  assert.deepEqual(lower.calls, ['pause', `set ${rotator.addressInUse().address}`]);
  assert.equal(lower.advertising, false);
  rotator.stop();
});

test('every address over 200 rotations resolves with our IRK, not with another IRK, and none repeats', async () => {
  const { irk, rotator, rotations, clock } = setup({ timeoutS: 1 });
  const other = generateIrk(seededRandom('someone else'));
  await rotator.start();
  await clock.advance(199_000);
  assert.equal(rotations.length, 200);
  const seen = new Set<string>();
  for (const r of rotations) {
    assertOurRpa(irk, r.address);
    assert.equal(irkResolvesAddress(other, r.address), false);
    seen.add(r.address.address);
  }
  assert.equal(seen.size, 200);
  rotator.stop();
});

test('rotation period outside 1..3600 s or not whole seconds is refused with a message naming the default', () => {
  for (const bad of [0, -5, 3601, 1.5, Number.NaN]) {
    assert.throws(() => checkRpaTimeout(bad), (e: unknown) => e instanceof RangeError && /1 to 3600/.test(e.message) && /900 s/.test(e.message));
  }
  assert.equal(checkRpaTimeout(1), 1);
  assert.equal(checkRpaTimeout(3600), 3600);
  const clock = new VirtualClock();
  assert.throws(() => new RpaRotator({ lower: new FakeLower(), clock, random: seededRandom(1), irk: new Uint8Array(16), log, timeoutS: 0 }), RangeError);
  assert.throws(() => new RpaRotator({ lower: new FakeLower(), clock, random: seededRandom(1), irk: new Uint8Array(15), log }), /16 bytes/);
});

test('a refused LE Set Random Address keeps the old address, still resumes advertising, emits the error and retries after 30 s', async () => {
  const { lower, rotator, rotations, errors, clock } = setup({ timeoutS: 120 });
  const first = await rotator.start();
  lower.advertising = true;
  lower.calls = [];
  lower.failSetWith = new HciError(HciStatus.CommandDisallowed, 0x2005);
  await clock.advance(120_000);
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof HciError && errors[0].status === HciStatus.CommandDisallowed);
  assert.equal(lower.calls[0], 'pause');
  assert.match(lower.calls[1] ?? '', /^set /);
  assert.equal(lower.calls[2], 'resume');
  assert.equal(lower.calls.length, 3);
  assert.deepEqual(rotator.addressInUse(), first, 'the address on air did not change');
  assert.equal(rotations.length, 1);
  assert.equal(lower.advertising, true);

  lower.failSetWith = undefined;
  lower.calls = [];
  await clock.advance(29_999);
  assert.deepEqual(lower.calls, []);
  await clock.advance(1);
  const next = rotator.addressInUse();
  assert.notEqual(next.address, first.address);
  assert.deepEqual(lower.calls, ['pause', `set ${next.address}`, 'resume']);
  // Back on the normal period after the successful retry.
  lower.calls = [];
  await clock.advance(119_999);
  assert.deepEqual(lower.calls, []);
  await clock.advance(1);
  assert.equal(lower.calls.length, 3);
  rotator.stop();
});

test("rotateNow() rejects with a WearableHostError (layer hci) whose cause is the controller's Command Disallowed when the lower did not stop advertising", async () => {
  const { lower, rotator } = setup();
  await rotator.start();
  // A broken lower whose pause does not stop advertising: the controller-like fake answers
  // Command Disallowed, exactly what the SDC does.
  lower.advertising = true;
  lower.pauseAdvertising = async () => {
    lower.calls.push('pause');
    return true;
  };
  await assert.rejects(rotator.rotateNow(), (e: unknown) => e instanceof WearableHostError && e.layer === 'hci' && /Command Disallowed|0x0c/i.test(String((e.cause as Error).message)));
  rotator.stop();
});

test('rotations requested together run one after another, never interleaved', async () => {
  const { lower, rotator, rotations } = setup();
  await rotator.start();
  lower.advertising = true;
  lower.calls = [];
  const [a, b, c] = await Promise.all([rotator.rotateNow(), rotator.rotateNow(), rotator.rotateNow()]);
  assert.deepEqual(lower.calls, ['pause', `set ${a.address}`, 'resume', 'pause', `set ${b.address}`, 'resume', 'pause', `set ${c.address}`, 'resume']);
  assert.deepEqual(rotations.slice(1).map((r) => r.reason), ['requested', 'requested', 'requested']);
  assert.deepEqual(rotator.addressInUse(), c);
  rotator.stop();
});

test('addressInUse() stays the old address until LE Set Random Address completed (a Connection Complete handled during the pause gets the address that was on air)', async () => {
  const { lower, rotator } = setup();
  const first = await rotator.start();
  lower.advertising = true;
  let open!: () => void;
  lower.pauseGate = new Promise<void>((r) => (open = r));
  const p = rotator.rotateNow();
  await settle();
  assert.deepEqual(lower.calls.slice(-1), ['pause']);
  // The Connection Complete event arrives before the Command Complete of the disable.
  assert.deepEqual(rotator.addressInUse(), first);
  open();
  const second = await p;
  assert.deepEqual(rotator.addressInUse(), second);
  rotator.stop();
});

test('addressAt() answers which address was in use at a past moment, within the bounded history', async () => {
  const { rotator, clock } = setup({ timeoutS: 10, historySize: 3 });
  const t0 = clock.now();
  assert.equal(rotator.addressAt(t0), undefined);
  assert.throws(() => rotator.addressInUse(), /start\(\) has not completed/);
  const a = await rotator.start();
  await clock.advance(10_000);
  const b = rotator.addressInUse();
  assert.deepEqual(rotator.addressAt(t0), a);
  assert.deepEqual(rotator.addressAt(t0 + 9_999), a);
  assert.deepEqual(rotator.addressAt(t0 + 10_000), b);
  await clock.advance(20_000);
  assert.equal(rotator.history.length, 3);
  assert.equal(rotator.addressAt(t0), undefined, 'the oldest entry fell out of the history');
  assert.deepEqual(rotator.addressAt(t0 + 10_000), b);
  rotator.stop();
});

test('controllerReset() calls pauseAdvertising before returning, so an advertiser restart from the same event cannot go on air with the identity address', async () => {
  const { irk, lower, rotator, rotations } = setup();
  const first = await rotator.start();
  lower.calls = [];
  lower.address = 'C0:11:22:33:44:55'; // the driver set the static identity address again
  lower.advertising = false;
  const p = rotator.controllerReset();
  assert.deepEqual(lower.calls, ['pause'], 'pause is called synchronously');
  const next = await p;
  assertOurRpa(irk, next);
  assert.notEqual(next.address, first.address);
  assert.equal(lower.address, next.address);
  assert.equal(rotations.at(-1)?.reason, 'controller-reset');
  rotator.stop();
});

test('a failed resume after a successful change keeps the new address and reports the error', async () => {
  const { lower, rotator, errors } = setup();
  await rotator.start();
  lower.advertising = true;
  lower.failResumeWith = new Error('advertising enable refused');
  const next = await rotator.rotateNow();
  assert.deepEqual(rotator.addressInUse(), next);
  assert.equal(errors.length, 1);
  assert.equal(errors[0]?.message, 'advertising enable refused');
  rotator.stop();
});

test('after stop() nothing rotates: no timers are pending and rotateNow()/controllerReset() reject', async () => {
  const { lower, rotator, clock } = setup({ timeoutS: 5 });
  await rotator.start();
  rotator.stop();
  assert.equal(clock.pendingCount, 0);
  lower.calls = [];
  await clock.advance(60_000);
  assert.deepEqual(lower.calls, []);
  await assert.rejects(rotator.rotateNow(), /stopped/);
  await assert.rejects(rotator.controllerReset(), /stopped/);
  assert.equal(rotator.active, false);
});
