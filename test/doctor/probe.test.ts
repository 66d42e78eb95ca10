/**
 * The HCI Reset probe and the search over line settings, against a scripted responder on an
 * in-memory pair (and a simulated serial line for wrong baud and flow control), on a VirtualClock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock, type Clock } from '../../src/util/clock.js';
import { toHex } from '../../src/util/bytes.js';
import { createMemoryTransportPair } from '../../src/hci/memory-transport.js';
import { TransportError } from '../../src/hci/transport-errors.js';
import { HCI_RESET_PACKET, RESYNC_ZEROS, probeReset } from '../../src/doctor/probe.js';
import { checkLink } from '../../src/doctor/link.js';
import { DK_LINK, type LinkSettings } from '../../src/doctor/types.js';
import { ScriptedController, fakeEnv, memoryPort, scriptedResponder, simulatedLine, type ResponderMode } from './fixtures.js';

/** Runs `p` to completion, moving virtual time as its timers need. */
function drive<T>(clock: VirtualClock, p: Promise<T>): Promise<T> {
  return clock.drive(p, 10 * 60_000, 'the operation did not finish within 10 virtual minutes');
}

test('HCI Reset is sent as 01 03 0C 00 and its Command Complete (status 0) makes the probe ok', async () => {
  const clock = new VirtualClock();
  const { host, seen } = memoryPort({ kind: 'answer' });
  const sent: string[] = [];
  const write = host.write.bind(host);
  host.write = (d) => {
    sent.push(toHex(d, ' '));
    return write(d);
  };
  const r = await drive(clock, probeReset(host, DK_LINK, { clock, timeoutMs: 500 }));
  assert.equal(toHex(HCI_RESET_PACKET, ' '), '01 03 0c 00');
  assert.deepEqual(sent, ['01 03 0c 00']);
  assert.equal(seen.resets, 1);
  assert.equal(r.outcome, 'ok');
  assert.equal(r.status, 0);
  assert.equal(r.bytesReceived, 7);
  assert.equal(r.firstBytes, '04 0e 04 01 03 0c 00');
  assert.equal(r.framingErrors, 0);
  await host.close();
});

test('a non-zero Reset status is "refused" with the status kept', async () => {
  const clock = new VirtualClock();
  const { host } = memoryPort({ kind: 'answer', status: 0x0c });
  const r = await drive(clock, probeReset(host, DK_LINK, { clock, timeoutMs: 500 }));
  assert.equal(r.outcome, 'refused');
  assert.equal(r.status, 0x0c);
  await host.close();
});

test('no answer within the timeout is "silent" and nothing is left pending on the clock', async () => {
  const clock = new VirtualClock();
  const { host } = memoryPort({ kind: 'silent' });
  const r = await drive(clock, probeReset(host, DK_LINK, { clock, timeoutMs: 500 }));
  assert.equal(r.outcome, 'silent');
  assert.equal(r.bytesReceived, 0);
  assert.equal(clock.pendingCount, 0);
  await host.close();
});

test('bytes that are not a Reset answer are "garbled", with framing errors counted and the first bytes shown', async () => {
  const clock = new VirtualClock();
  const { host } = memoryPort({ kind: 'noise', bytes: Uint8Array.of(0xf0, 0x0f, 0xaa, 0x55, 0x41, 0x54) });
  const r = await drive(clock, probeReset(host, DK_LINK, { clock, timeoutMs: 500 }));
  assert.equal(r.outcome, 'garbled');
  assert.equal(r.bytesReceived, 6);
  assert.ok(r.framingErrors >= 1);
  assert.equal(r.firstBytes, 'f0 0f aa 55 41 54');
  await host.close();
});

test("hci_uart's assert report (04 FF .. AA file 00 line) is 'crashed' with file and line", async () => {
  const clock = new VirtualClock();
  const { host } = memoryPort({ kind: 'assert', file: 'ull_conn.c', line: 1234 });
  const r = await drive(clock, probeReset(host, DK_LINK, { clock, timeoutMs: 500 }));
  assert.equal(r.outcome, 'crashed');
  assert.match(r.error ?? '', /ull_conn\.c/);
  assert.match(r.error ?? '', /1234/);
  await host.close();
});

test('resync sends 300 zero bytes before Reset, which a controller skips as invalid packet types', async () => {
  const clock = new VirtualClock();
  const { host, seen } = memoryPort({ kind: 'answer' });
  const r = await drive(clock, probeReset(host, DK_LINK, { clock, timeoutMs: 500, resync: true }));
  assert.equal(r.outcome, 'ok');
  assert.equal(r.resynced, true);
  assert.equal(seen.zeros, RESYNC_ZEROS);
  assert.equal(seen.resets, 1);
  await host.close();
});

/** An environment whose "port" reaches a scripted responder behind a line running at `firmware` settings. */
function lineEnv(clock: Clock, firmware: LinkSettings, mode: ResponderMode = { kind: 'answer' }) {
  const opened: LinkSettings[] = [];
  const env = fakeEnv({
    clock,
    openPort: async (_path, s) => {
      opened.push(s);
      const [host, ctrl] = createMemoryTransportPair('host', 'controller');
      scriptedResponder(ctrl, mode);
      return simulatedLine(host, s, firmware, clock);
    },
  });
  return { env, opened };
}

const text = (s: LinkSettings): string => `${s.baudRate}/${s.rtscts ? 'on' : 'off'}`;

test("the DK's own settings are tried first and, when they work, are the only ones tried", async () => {
  const clock = new VirtualClock();
  const { env, opened } = lineEnv(clock, DK_LINK);
  const r = await drive(clock, checkLink(env, '/dev/ttyACM0', { probeTimeoutMs: 200 }));
  assert.deepEqual(r.working, DK_LINK);
  assert.deepEqual(opened.map(text), ['1000000/on']);
  assert.equal(r.findings.length, 1);
  assert.equal(r.findings[0]?.severity, 'ok');
  assert.equal(r.findings[0]?.title, 'HCI Reset answered at 1000000 baud, RTS/CTS on');
});

test('a controller at 115200 baud (1 Mbaud garbled by the line) is found, and the fix names --baud 115200', async () => {
  const clock = new VirtualClock();
  const { env, opened } = lineEnv(clock, { baudRate: 115_200, rtscts: true });
  const r = await drive(clock, checkLink(env, '/dev/ttyACM0', { probeTimeoutMs: 200 }));
  assert.deepEqual(r.working, { baudRate: 115_200, rtscts: true });
  assert.deepEqual(opened.map(text), ['1000000/on', '1000000/on', '1000000/off', '115200/on']);
  assert.equal(r.probes[1]?.resynced, true);
  const f = r.findings[0];
  assert.equal(f?.severity, 'warn');
  assert.match(f?.title ?? '', /answers at 115200 baud, RTS\/CTS on, not at the DK's 1000000 baud, RTS\/CTS on/);
  assert.match(f?.fix ?? '', /--baud 115200/);
  assert.ok(f?.details?.some((d) => d.startsWith('1000000 baud, RTS/CTS on: ')));
});

test('firmware without flow control: RTS/CTS on stays silent (CTS never asserted), off answers; the fix says --no-rtscts', async () => {
  const clock = new VirtualClock();
  const { env, opened } = lineEnv(clock, { baudRate: 1_000_000, rtscts: false });
  const r = await drive(clock, checkLink(env, '/dev/ttyACM0', { probeTimeoutMs: 200 }));
  assert.deepEqual(r.working, { baudRate: 1_000_000, rtscts: false });
  assert.deepEqual(opened.map(text), ['1000000/on', '1000000/on', '1000000/off']);
  assert.equal(r.probes[0]?.outcome, 'silent');
  assert.equal(r.probes[0]?.bytesReceived, 0);
  const f = r.findings[0];
  assert.equal(f?.severity, 'warn');
  assert.match(f?.title ?? '', /answers only with RTS\/CTS flow control off/);
  assert.match(f?.fix ?? '', /--no-rtscts/);
});

test('a silent controller fails after every baud rate with and without flow control, each attempt listed', async () => {
  const clock = new VirtualClock();
  const { env, opened } = lineEnv(clock, DK_LINK, { kind: 'silent' });
  const r = await drive(clock, checkLink(env, '/dev/ttyACM0', { probeTimeoutMs: 200 }));
  assert.equal(r.working, undefined);
  // DK settings, DK settings after resync, then 6 baud rates x 2 flow settings minus the DK's own.
  assert.equal(opened.length, 2 + 6 * 2 - 1);
  const f = r.findings[0];
  assert.equal(f?.severity, 'fail');
  assert.match(f?.title ?? '', /the controller is silent at every baud rate, with and without flow control/);
  assert.match(f?.fix ?? '', /empty app-core image/);
  assert.equal(f?.details?.length, opened.length);
});

test('a busy port stops the search at once with the exclusive-access fix', async () => {
  const clock = new VirtualClock();
  const env = fakeEnv({
    clock,
    openPort: async (path) => {
      throw new TransportError('busy', path, `serial port ${path} is in use by another process`);
    },
  });
  const r = await drive(clock, checkLink(env, '/dev/ttyACM0', { probeTimeoutMs: 200 }));
  assert.equal(r.probes.length, 1);
  assert.equal(r.probes[0]?.outcome, 'open-failed');
  assert.equal(r.probes[0]?.errorKind, 'busy');
  assert.equal(r.findings[0]?.check, 'exclusive');
  assert.equal(r.findings[0]?.severity, 'fail');
  assert.match(r.findings[0]?.fix ?? '', /ID_MM_DEVICE_IGNORE/);
});

test('a controller left mid-packet answers only after the zero flush: ok, with a warning that it was out of step', async () => {
  const clock = new VirtualClock();
  const ctrl = new ScriptedController({ kind: 'answer' });
  // A half-received ACL header (02, handle 0x0001, length 0x00FF): the next 255 bytes are payload.
  ctrl.prime(Uint8Array.of(0x02, 0x01, 0x00, 0xff, 0x00));
  const env = fakeEnv({
    clock,
    openPort: async () => {
      const [host, end] = createMemoryTransportPair('host', 'controller');
      ctrl.attach(end);
      return host;
    },
  });
  const r = await drive(clock, checkLink(env, '/dev/ttyACM0', { probeTimeoutMs: 200 }));
  assert.deepEqual(r.working, DK_LINK);
  assert.equal(r.probes.length, 2);
  assert.equal(r.probes[0]?.outcome, 'silent');
  assert.equal(r.probes[1]?.resynced, true);
  assert.equal(ctrl.seen.resets, 1, 'the first Reset vanished into the ACL payload; the second got through');
  assert.equal(ctrl.seen.zeros, 4 + RESYNC_ZEROS - 255, 'the zeros completed the payload; the rest were skipped as invalid types');
  assert.equal(r.findings[0]?.severity, 'warn');
  assert.match(r.findings[0]?.title ?? '', /only after flushing: the controller was out of step/);
});
