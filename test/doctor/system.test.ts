/**
 * The doctor's host-side checks as pure functions of a fake machine: port listing without
 * udevadm, USB vendor marking, permissions and groups, ModemManager and its udev rule, other
 * processes holding the port.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../src/util/clock.js';
import { classifyPort, checkPortList, dkCandidates, listCandidatePorts } from '../../src/doctor/ports.js';
import { checkHolders, checkModemManager, checkPermission, checkPortPath, portHolders } from '../../src/doctor/system.js';
import { fakeEnv, type FakeMachine } from './fixtures.js';

const JLINK0 = '/dev/serial/by-id/usb-SEGGER_J-Link_001050012345-if00';
const JLINK2 = '/dev/serial/by-id/usb-SEGGER_J-Link_001050012345-if02';

/** A Linux box with one nRF5340-DK (two J-Link VCOMs) and a USB-serial adapter, seen through /dev and /sys. */
function dkMachine(extra: Partial<FakeMachine> = {}): FakeMachine {
  const usb = '/sys/devices/pci0000:00/0000:00:14.0/usb1/1-2';
  const ftdi = '/sys/devices/pci0000:00/0000:00:14.0/usb1/1-3';
  return {
    dirs: {
      '/dev': ['null', 'tty0', 'ttyS0', 'ttyACM0', 'ttyACM1', 'ttyUSB0'],
      '/dev/serial/by-id': ['usb-SEGGER_J-Link_001050012345-if02', 'usb-SEGGER_J-Link_001050012345-if00', 'usb-FTDI_FT232R_A10K-if00-port0'],
      ...extra.dirs,
    },
    real: {
      [JLINK0]: '/dev/ttyACM0',
      [JLINK2]: '/dev/ttyACM1',
      '/dev/serial/by-id/usb-FTDI_FT232R_A10K-if00-port0': '/dev/ttyUSB0',
      '/sys/class/tty/ttyACM0/device': `${usb}/1-2:1.0`,
      '/sys/class/tty/ttyACM1/device': `${usb}/1-2:1.2`,
      '/sys/class/tty/ttyUSB0/device': `${ftdi}/1-3:1.0`,
      ...extra.real,
    },
    files: {
      [`${usb}/idVendor`]: '1366\n',
      [`${usb}/idProduct`]: '1051\n',
      [`${usb}/manufacturer`]: 'SEGGER\n',
      [`${usb}/serial`]: '001050012345\n',
      [`${usb}/1-2:1.0/bInterfaceNumber`]: '00\n',
      [`${usb}/1-2:1.2/bInterfaceNumber`]: '02\n',
      [`${ftdi}/idVendor`]: '0403\n',
      [`${ftdi}/manufacturer`]: 'FTDI\n',
      '/etc/group': 'root:x:0:\ndialout:x:20:bob\nalice:x:1000:\n',
      ...extra.files,
    },
    nodes: {
      '/dev/ttyACM0': { uid: 0, gid: 20, mode: 0o20660 },
      '/dev/ttyACM1': { uid: 0, gid: 20, mode: 0o20660 },
      '/dev/ttyUSB0': { uid: 0, gid: 20, mode: 0o20660 },
      ...extra.nodes,
    },
    ...(extra.links ? { links: extra.links } : {}),
    ...(extra.user ? { user: extra.user } : {}),
  };
}

const clock = new VirtualClock();

test('without udevadm (serialport list throws) the ports come from /dev, by-id links and sysfs, J-Link interface 00 first', async () => {
  const env = fakeEnv({
    clock,
    machine: dkMachine(),
    listPorts: async () => {
      throw new Error('spawn udevadm ENOENT');
    },
  });
  const list = await listCandidatePorts(env);
  assert.equal(list.listError, 'spawn udevadm ENOENT');
  assert.deepEqual(
    list.candidates.map((c) => [c.path, c.byId, c.kind, c.vendorId, c.interfaceNumber]),
    [
      ['/dev/ttyACM0', JLINK0, 'segger-jlink', '1366', '00'],
      ['/dev/ttyACM1', JLINK2, 'segger-jlink', '1366', '02'],
      ['/dev/ttyUSB0', '/dev/serial/by-id/usb-FTDI_FT232R_A10K-if00-port0', 'other', '0403', '00'],
    ],
  );
  assert.deepEqual(dkCandidates(list).map((c) => c.path), ['/dev/ttyACM0', '/dev/ttyACM1']);
  const f = checkPortList(list, false);
  assert.equal(f.severity, 'ok');
  assert.match(f.title, /2 DK-like serial port\(s\)/);
  assert.ok(f.details?.some((d) => d.includes('serialport could not list ports: spawn udevadm ENOENT')));
  assert.ok(f.details?.some((d) => d.startsWith(`${JLINK0} -> /dev/ttyACM0: SEGGER J-Link (DK debugger, USB 1366), interface 00, serial 001050012345`)));
});

test('serialport results are merged with the by-id names, and on-board ttyS ports without a vendor are dropped', async () => {
  const env = fakeEnv({
    clock,
    machine: dkMachine(),
    listPorts: async () => [
      { path: '/dev/ttyS0' },
      { path: '/dev/ttyACM0', vendorId: '1366', productId: '1051', manufacturer: 'SEGGER', serialNumber: '001050012345' },
    ],
  });
  const list = await listCandidatePorts(env);
  assert.equal(list.listError, undefined);
  assert.ok(!list.candidates.some((c) => c.path === '/dev/ttyS0'));
  const acm0 = list.candidates.find((c) => c.path === '/dev/ttyACM0');
  assert.equal(acm0?.byId, JLINK0);
  assert.equal(acm0?.interfaceNumber, '00');
});

test('USB vendor ids mark SEGGER 0x1366 and Nordic 0x1915; names stand in when the id is unknown', () => {
  assert.equal(classifyPort({ path: '/dev/ttyACM0', vendorId: '1366' }), 'segger-jlink');
  assert.equal(classifyPort({ path: '/dev/ttyACM0', vendorId: '0x1915' }), 'nordic');
  assert.equal(classifyPort({ path: '/dev/ttyACM0', byId: '/dev/serial/by-id/usb-SEGGER_J-Link_000-if00' }), 'segger-jlink');
  assert.equal(classifyPort({ path: '/dev/ttyACM0', manufacturer: 'Nordic Semiconductor' }), 'nordic');
  assert.equal(classifyPort({ path: '/dev/ttyUSB0', vendorId: '0403' }), 'other');
});

test('no ports at all is a failure that says to plug in the DK; only non-DK ports fails without --port', async () => {
  const none = await listCandidatePorts(fakeEnv({ clock, machine: { dirs: { '/dev': ['null'] } } }));
  const f = checkPortList(none, false);
  assert.equal(f.severity, 'fail');
  assert.match(f.fix ?? '', /ls \/dev\/serial\/by-id/);
  const other = await listCandidatePorts(
    fakeEnv({ clock, listPorts: async () => [{ path: '/dev/ttyUSB0', vendorId: '0403' }], machine: { dirs: { '/dev': ['ttyUSB0'] } } }),
  );
  assert.equal(checkPortList(other, false).severity, 'fail');
  assert.equal(checkPortList(other, true).severity, 'info');
});

test('a missing port fails and lists the ports present; a /dev/ttyACM path gets its by-id name suggested', async () => {
  const env = fakeEnv({ clock, machine: dkMachine() });
  const list = await listCandidatePorts(env);
  const missing = await checkPortPath(env, '/dev/ttyACM7', list.candidates);
  assert.equal(missing.severity, 'fail');
  assert.ok(missing.details?.[0]?.includes(JLINK0));
  const acm = await checkPortPath(env, '/dev/ttyACM0', list.candidates);
  assert.equal(acm.severity, 'info');
  assert.match(acm.fix ?? '', new RegExp(`--port ${JLINK0}`));
  const byId = await checkPortPath(env, JLINK0, list.candidates);
  assert.equal(byId.severity, 'ok');
  assert.match(byId.title, /-> \/dev\/ttyACM0/);
});

test('no access and not in the group: the fix is usermod with the device group from /etc/group', async () => {
  const env = fakeEnv({ clock, machine: dkMachine({ nodes: { '/dev/ttyACM0': { uid: 0, gid: 20, mode: 0o20660, access: 'denied' } } }) });
  const f = await checkPermission(env, JLINK0);
  assert.equal(f.severity, 'fail');
  assert.match(f.title, /no read\/write access to .*usb-SEGGER.*\(group dialout\)/);
  assert.equal(f.fix, 'sudo usermod -aG dialout $USER, then log out and back in');
  assert.ok(f.details?.some((d) => d.includes('group dialout, mode 660')));
});

test('added to the group but the session predates it: the fix is to log in again, not usermod', async () => {
  const env = fakeEnv({
    clock,
    machine: dkMachine({
      nodes: { '/dev/ttyACM0': { uid: 0, gid: 20, mode: 0o20660, access: 'denied' } },
      files: { '/etc/group': 'dialout:x:20:alice,bob\n' },
      user: { name: 'alice', uid: 1000, groups: [1000] },
    }),
  });
  const f = await checkPermission(env, '/dev/ttyACM0');
  assert.equal(f.severity, 'fail');
  assert.match(f.title, /added to group dialout, but this login session predates it/);
  assert.match(f.fix ?? '', /log out and back in \(or run `newgrp dialout`/);
});

test('ModemManager running without an ignore rule is a warning whose fix is the SEGGER udev rule', async () => {
  const env = fakeEnv({
    clock,
    machine: { dirs: { '/proc': ['1', '812', 'self'] }, files: { '/proc/1/comm': 'systemd\n', '/proc/812/comm': 'ModemManager\n' } },
  });
  const f = await checkModemManager(env, '1366');
  assert.equal(f.severity, 'warn');
  assert.match(f.title, /pid 812/);
  assert.match(f.fix ?? '', /ATTRS\{idVendor\}=="1366", ENV\{ID_MM_DEVICE_IGNORE\}="1"/);
});

test('ModemManager with the ignore rule installed, or not running, is fine', async () => {
  const withRule = fakeEnv({
    clock,
    machine: {
      dirs: { '/proc': ['812'], '/etc/udev/rules.d': ['99-jlink.rules', 'README'] },
      files: { '/proc/812/comm': 'ModemManager\n', '/etc/udev/rules.d/99-jlink.rules': '# J-Link\nATTRS{idVendor}=="1366", ENV{ID_MM_DEVICE_IGNORE}="1"\n' },
    },
  });
  const f = await checkModemManager(withRule, '1366');
  assert.equal(f.severity, 'ok');
  assert.deepEqual(f.details, ['rule in /etc/udev/rules.d/99-jlink.rules']);
  const commentedOut = fakeEnv({
    clock,
    machine: {
      dirs: { '/proc': ['812'], '/etc/udev/rules.d': ['99-jlink.rules'] },
      files: { '/proc/812/comm': 'ModemManager\n', '/etc/udev/rules.d/99-jlink.rules': '#ATTRS{idVendor}=="1366", ENV{ID_MM_DEVICE_IGNORE}="1"\n' },
    },
  });
  assert.equal((await checkModemManager(commentedOut, '1366')).severity, 'warn');
  const none = fakeEnv({ clock, machine: { dirs: { '/proc': ['1'] }, files: { '/proc/1/comm': 'init\n' } } });
  assert.equal((await checkModemManager(none, '1366')).severity, 'ok');
});

test('another process holding the port is found through /proc/<pid>/fd and named in the failure', async () => {
  const env = fakeEnv({
    clock,
    machine: dkMachine({
      dirs: { '/proc': ['1', '4242', '4243'], '/proc/1/fd': ['0'], '/proc/4242/fd': ['0', '1', '5'], '/proc/4243/fd': ['3'] },
      files: { '/proc/1/comm': 'systemd\n', '/proc/4242/comm': 'screen\n', '/proc/4243/comm': 'bash\n' },
      links: { '/proc/1/fd/0': '/dev/null', '/proc/4242/fd/0': '/dev/pts/3', '/proc/4242/fd/5': '/dev/ttyACM0', '/proc/4243/fd/3': '/dev/ttyACM1' },
    }),
  });
  assert.deepEqual(await portHolders(env, JLINK0, 1), [{ pid: 4242, name: 'screen' }]);
  const f = await checkHolders(env, JLINK0);
  assert.equal(f.severity, 'fail');
  assert.match(f.title, /open in another process: screen \(pid 4242\)/);
  assert.match(f.fix ?? '', /fuser -v/);
});

test('a pseudo-terminal held only by socat (the simulator bridge) is not reported as busy', async () => {
  const env = fakeEnv({
    clock,
    machine: {
      dirs: { '/proc': ['77', '78'], '/proc/77/fd': ['5', '6'], '/proc/78/fd': ['3'] },
      files: { '/proc/77/comm': 'socat\n', '/proc/78/comm': 'bash\n' },
      links: { '/proc/77/fd/5': '/dev/ptmx', '/proc/77/fd/6': '/dev/pts/4', '/proc/78/fd/3': '/dev/pts/9' },
      nodes: { '/dev/pts/4': { uid: 1000, gid: 5, mode: 0o20620 } },
    },
  });
  const f = await checkHolders(env, '/dev/pts/4');
  assert.equal(f.severity, 'info');
  assert.match(f.title, /pseudo-terminal bridged by socat \(pid 77\)/);
});
