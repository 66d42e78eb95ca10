// A hardware-in-the-loop test of a wearable, using wearable-host as a library.
// Without variables it runs on virtual controllers; with WEARABLE_HOST_PORT the wearable runs on
// that DK, and with WEARABLE_HOST_PHONE_PORT too the simulated phone runs on a second DK.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtualAir, Wearable, Phone, HealthUuid, AttErrorCode, WaitError } from 'wearable-host';

const dkPort = process.env['WEARABLE_HOST_PORT'];
const phonePort = process.env['WEARABLE_HOST_PHONE_PORT'];
const onDk = dkPort !== undefined;

test('an iPhone pairs (LE Secure Connections, level 2, 16-byte key) after a 0x05 and reads the health record', async (t) => {
  if (onDk && phonePort === undefined) return t.skip('WEARABLE_HOST_PHONE_PORT (a second DK for the phone) is not set');
  const air = new VirtualAir({ seed: 'hil-example' });
  const bonds = join(mkdtempSync(join(tmpdir(), 'hil-')), 'bonds.json');
  const wearable = await Wearable.start({ controller: dkPort ?? air, bonds, logLevel: 'warn' });
  let phone: Phone | undefined;
  try {
    await wearable.advertising();
    phone = await Phone.open({ controller: phonePort ?? air, profile: 'ios', user: { thinkMs: 100 } });
    await phone.connect('Noira Band', { timeoutMs: 10_000 });
    const record = await phone.read(HealthUuid.record); // refused with 0x05, the phone pairs, reads again
    assert.ok(record.length > 0);
    const paired = await wearable.waitFor('paired', { timeoutMs: 10_000 });
    assert.deepEqual([paired.level, paired.keySize, paired.bonded], [2, 16, true]);
    const refused = await wearable.waitFor('attErrorSent', { filter: (e) => e.code !== AttErrorCode.attributeNotFound });
    assert.equal(refused.code, AttErrorCode.insufficientAuthentication);
    assert.equal(wearable.bonds.list().length, 1);
    await phone.disconnect();
    await wearable.waitFor('disconnected');
    await assert.rejects(wearable.waitFor('paired', { timeoutMs: 100 }), WaitError);
  } finally {
    await phone?.close();
    await wearable.close();
    await air.close(); // on a VirtualAir this alone would close both
  }
});

test('the wearable advertises on its controller and the bond store starts empty', async () => {
  const air = new VirtualAir();
  const wearable = await Wearable.start({ controller: dkPort ?? air, bonds: join(mkdtempSync(join(tmpdir(), 'hil-')), 'bonds.json'), logLevel: 'warn' });
  try {
    await wearable.advertising({ timeoutMs: 5000 });
    assert.match(wearable.address, /^[0-9A-F]{2}(:[0-9A-F]{2}){5} \(random\)$/);
    assert.equal(wearable.bonds.list().length, 0);
  } finally {
    await wearable.close();
    await air.close();
  }
});
