/**
 * The whole doctor against the virtual nRF5340 controller (src/sim) through the real Hci driver,
 * on in-memory transports and a VirtualClock, with the serial line's settings simulated: happy
 * path, controller at the wrong baud, flow control off in the firmware, silent controller,
 * firmware built without the overlay, and a controller whose LE Encrypt disagrees.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../src/util/clock.js';
import { reversed } from '../../src/util/bytes.js';
import { createMemoryTransportPair } from '../../src/hci/memory-transport.js';
import { VirtualAir, type VirtualControllerOptions } from '../../src/sim/index.js';
import { hciSession } from '../../src/doctor/session.js';
import { runDoctor } from '../../src/doctor/run.js';
import { formatReport } from '../../src/doctor/format.js';
import { LE_ENCRYPT_SAMPLE, leEncryptSampleWire } from '../../src/doctor/controller.js';
import { e } from '../../src/crypto/index.js';
import { fromHex, toHex } from '../../src/util/bytes.js';
import type { ControllerSession } from '../../src/doctor/env.js';
import { DK_LINK, type DoctorReport, type Finding, type LinkSettings } from '../../src/doctor/types.js';
import { fakeEnv, simulatedLine, type FakeMachine } from './fixtures.js';

const PORT = '/dev/serial/by-id/usb-SEGGER_J-Link_001050012345-if00';
const PORT2 = '/dev/serial/by-id/usb-SEGGER_J-Link_001050012345-if02';

function machine(): FakeMachine {
  return {
    dirs: { '/dev': ['ttyACM0', 'ttyACM1'], '/dev/serial/by-id': ['usb-SEGGER_J-Link_001050012345-if00', 'usb-SEGGER_J-Link_001050012345-if02'], '/proc': [] },
    real: { [PORT]: '/dev/ttyACM0', [PORT2]: '/dev/ttyACM1' },
    nodes: { '/dev/ttyACM0': { uid: 0, gid: 20, mode: 0o20660 }, '/dev/ttyACM1': { uid: 0, gid: 20, mode: 0o20660 } },
    files: { '/etc/group': 'dialout:x:20:alice\n' },
    user: { name: 'alice', uid: 1000, groups: [1000, 20] },
  };
}

interface Rig {
  clock: VirtualClock;
  air: VirtualAir;
  /** The virtual controller's static random address (what Read Static Addresses reports). */
  staticAddress: string;
  opened: { port: string; settings: LinkSettings }[];
  run(opts?: { port?: string }): Promise<DoctorReport>;
}

/**
 * A DK whose network core is the virtual controller, behind a line running at `firmware`
 * settings; `answering` says which by-id port reaches it (the other one is silent).
 */
function rig(opts: { firmware?: LinkSettings; controller?: VirtualControllerOptions; powered?: boolean; answering?: string; session?: (s: ControllerSession) => ControllerSession } = {}): Rig {
  const clock = new VirtualClock();
  const air = new VirtualAir({ clock, seed: 'doctor' });
  const ctrl = air.createController({ name: 'dk', ...(opts.controller ?? {}) });
  if (opts.powered === false) ctrl.powerOff();
  const firmware = opts.firmware ?? DK_LINK;
  const answering = opts.answering ?? PORT;
  const opened: Rig['opened'] = [];
  const env = fakeEnv({
    clock,
    machine: machine(),
    listPorts: async () => {
      throw new Error('udevadm not found');
    },
    openPort: async (port, settings) => {
      opened.push({ port, settings });
      const [host, end] = createMemoryTransportPair('host', 'dk');
      if (port === answering && ctrl.isPowered) ctrl.attach(end);
      return simulatedLine(host, settings, firmware, clock);
    },
    openController: async (t, o) => {
      const s = await hciSession(t, { clock, timeoutMs: o.timeoutMs });
      return opts.session ? opts.session(s) : s;
    },
  });
  return {
    clock,
    air,
    staticAddress: ctrl.staticAddress,
    opened,
    async run(o = { port: PORT }) {
      let report: DoctorReport | undefined;
      const p = runDoctor(env, { probeTimeoutMs: 300, commandTimeoutMs: 500, ...(o.port !== undefined ? { port: o.port } : {}) }).then((r) => (report = r));
      assert.ok(await clock.runUntil(() => report !== undefined, 30 * 60_000), 'doctor finished');
      await p;
      air.close();
      return report as DoctorReport;
    },
  };
}

function finding(r: DoctorReport, check: Finding['check']): Finding {
  const f = r.findings.find((x) => x.check === check && x.severity !== 'info');
  assert.ok(f, `a ${check} finding in ${JSON.stringify(r.findings.map((x) => x.check))}`);
  return f;
}

test('happy path: the DK answers at 1 Mbaud with RTS/CTS, is an nRF53 with a static address, 251-byte buffers, LE Encrypt agrees', async () => {
  const r = rig();
  const report = await r.run();
  assert.equal(report.usable, true, formatReport(report, { verbose: true }));
  assert.deepEqual(report.working, DK_LINK);
  assert.equal(finding(report, 'link').severity, 'ok');
  const id = finding(report, 'identity');
  assert.equal(id.severity, 'ok');
  assert.match(id.title, /Nordic Semiconductor ASA, Nordic nRF53x, identity [0-9A-F:]{17} \(random\)/);
  assert.equal(finding(report, 'features').severity, 'ok');
  const buf = finding(report, 'buffers');
  assert.equal(buf.severity, 'ok');
  assert.match(buf.title, /ACL buffers of 251 bytes; data length 251/);
  const enc = finding(report, 'le-encrypt');
  assert.equal(enc.severity, 'ok');
  assert.ok(enc.details?.includes(`theirs   ${toHex(leEncryptSampleWire().encrypted, ' ')}`));
  assert.equal(report.controller?.vendorPlatform, 0x0002);
  assert.equal(report.controller?.vendorVariant, 0x0003);
  assert.equal(report.controller?.identitySource, 'zephyr-static');
  assert.equal(report.controller?.maxTxOctets, 251);
  assert.equal(report.controller?.identityAddress, `${r.staticAddress} (random)`);
  const text = formatReport(report);
  assert.match(text, /Result: usable\. The controller answers at 1000000 baud, RTS\/CTS on\. Run: wearable-host --port \/dev\/serial\/by-id\/usb-SEGGER_J-Link_001050012345-if00/);
});

test('wrong baud: a firmware UART at 115200 is found behind the garbled 1 Mbaud line; usable with a warning', async () => {
  const report = await rig({ firmware: { baudRate: 115_200, rtscts: true } }).run();
  assert.equal(report.usable, true, formatReport(report, { verbose: true }));
  assert.deepEqual(report.working, { baudRate: 115_200, rtscts: true });
  const link = finding(report, 'link');
  assert.equal(link.severity, 'warn');
  assert.match(link.fix ?? '', /--baud 115200/);
  assert.equal(finding(report, 'identity').severity, 'ok');
  assert.equal(finding(report, 'le-encrypt').severity, 'ok');
  assert.ok(report.probes.slice(0, 3).every((p) => p.outcome !== 'ok'));
});

test('flow control off in the firmware: RTS/CTS on is silent, off works; usable with the --no-rtscts warning', async () => {
  const report = await rig({ firmware: { baudRate: 1_000_000, rtscts: false } }).run();
  assert.equal(report.usable, true, formatReport(report, { verbose: true }));
  assert.deepEqual(report.working, { baudRate: 1_000_000, rtscts: false });
  assert.equal(report.probes[0]?.outcome, 'silent');
  assert.match(finding(report, 'link').fix ?? '', /--no-rtscts/);
});

test('silent controller: not usable, every line setting listed, controller checks skipped, report says what to check', async () => {
  const report = await rig({ powered: false }).run();
  assert.equal(report.usable, false);
  assert.equal(report.working, undefined);
  const link = finding(report, 'link');
  assert.equal(link.severity, 'fail');
  assert.equal(link.details?.length, report.probes.length);
  assert.equal(finding(report, 'identity').severity, 'skipped');
  const text = formatReport(report);
  assert.match(text, /\[FAIL\] link {9}no HCI Reset answer/);
  assert.match(text, /Result: NOT usable \(1 problem\(s\)\)/);
  const json = JSON.parse(JSON.stringify(report)) as DoctorReport;
  assert.equal(json.usable, false);
  assert.equal(json.findings.find((f) => f.check === 'link')?.severity, 'fail');
});

test('firmware without the overlay (27-byte buffers and data length) is usable but warned about, naming the build variable', async () => {
  const report = await rig({ controller: { aclBufferSize: 27, maxDataLength: 27 } }).run();
  assert.equal(report.usable, true);
  const buf = finding(report, 'buffers');
  assert.equal(buf.severity, 'warn');
  assert.match(buf.title, /ACL buffers of 27 bytes and maximum data length 27, not 251: the firmware overlay was not applied/);
  assert.match(buf.fix ?? '', /-Dhci_uart_EXTRA_CONF_FILE=/);
});

test('LE Encrypt self-test: the spec sample in HCI order, our AES agrees; a byte-reversed controller answer fails', async () => {
  const s = leEncryptSampleWire();
  assert.equal(toHex(s.key), toHex(reversed(fromHex(LE_ENCRYPT_SAMPLE.keyMsbFirst))));
  assert.equal(toHex(s.key), 'bf01fb9d4ef3bc36d874f5394138684c');
  assert.equal(toHex(e(s.key, s.plaintext)), toHex(s.encrypted));
  assert.equal(toHex(s.encrypted), '66c6c2278e3b8e053e7ea326521bad99');
  const report = await rig({
    session: (inner) => ({
      info: inner.info,
      close: () => inner.close(),
      command: (async (name: Parameters<ControllerSession['command']>[0], params: never) => {
        const r = await inner.command(name, params);
        return name === 'LeEncrypt' ? { encrypted: reversed((r as { encrypted: Uint8Array }).encrypted) } : r;
      }) as ControllerSession['command'],
    }),
  }).run();
  assert.equal(report.usable, false);
  const enc = finding(report, 'le-encrypt');
  assert.equal(enc.severity, 'fail');
  assert.match(enc.title, /byte-reversed/);
});

test('without --port the doctor asks each J-Link port and examines the one that answers', async () => {
  const r = rig({ answering: PORT2 });
  const report = await r.run({});
  assert.equal(report.portChosen, true);
  assert.equal(report.port, PORT2);
  assert.equal(report.usable, true, formatReport(report, { verbose: true }));
  const chosen = report.findings.find((f) => f.check === 'port-path' && f.severity === 'info');
  assert.match(chosen?.title ?? '', /examining .*-if02 \(it answered HCI Reset\)/);
  assert.deepEqual(chosen?.details, [`${PORT}: silent`, `${PORT2}: ok`]);
  assert.equal(r.opened[0]?.port, PORT);
});
