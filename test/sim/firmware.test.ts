/**
 * The virtual controller's firmware profiles (src/sim/firmware.ts): the NCS profile says what
 * firmware/hci_uart.conf configures, `info --sim` prints each profile's identity and buffers, and
 * the README states the same figures.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { registerInfoCommand } from '../../src/cli/info-command.js';
import { silentLogger } from '../../src/util/log.js';
import { FIRMWARE_PROFILES, NCS_SOFTDEVICE_CONTROLLER, ZEPHYR_LL, describeFirmware } from '../../src/sim/firmware.js';

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'firmware', 'hci_uart.conf')) && existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the repository root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}
const ROOT = repoRoot();

/** `CONFIG_X=value` lines of a Kconfig fragment (comments and blanks skipped). */
function kconfig(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const m = /^\s*CONFIG_([A-Z0-9_]+)=(.*)$/.exec(raw);
    if (m) out.set(m[1] as string, (m[2] as string).trim());
  }
  return out;
}

test('the ncs profile has the ACL buffers, data length and LL privacy that firmware/hci_uart.conf configures', () => {
  const conf = kconfig(readFileSync(join(ROOT, 'firmware', 'hci_uart.conf'), 'utf8'));
  const p = NCS_SOFTDEVICE_CONTROLLER;
  assert.equal(p.aclBuffers, Number(conf.get('BT_BUF_ACL_TX_COUNT')), 'CONFIG_BT_BUF_ACL_TX_COUNT');
  assert.equal(p.aclBufferSize, Number(conf.get('BT_BUF_ACL_TX_SIZE')), 'CONFIG_BT_BUF_ACL_TX_SIZE');
  assert.equal(p.maxDataLength, Number(conf.get('BT_CTLR_DATA_LENGTH_MAX')), 'CONFIG_BT_CTLR_DATA_LENGTH_MAX');
  assert.equal(p.llPrivacy, conf.get('BT_CTLR_PRIVACY') === 'y', 'CONFIG_BT_CTLR_PRIVACY');
  assert.ok(!p.leFeatures.includes('LlPrivacy'));
});

test('the zephyr profile has what upstream Zephyr 4.1 hci_uart reports: 5.4, company 0x05F1, subversion 0xFFFF, 7 x 27 bytes, no Read Encryption Key Size', () => {
  const p = ZEPHYR_LL;
  assert.deepEqual(p.version, { hciVersion: 0x0d, hciSubversion: 0x0000, lmpVersion: 0x0d, lmpSubversion: 0xffff, companyId: 0x05f1 });
  assert.deepEqual([p.aclBuffers, p.aclBufferSize, p.maxDataLength], [7, 27, 27]);
  assert.equal(p.publicAddress, '00:00:00:00:00:00');
  assert.ok(!p.commands.includes('ReadEncryptionKeySize'));
  assert.deepEqual([p.zephyrVersion.hwPlatform, p.zephyrVersion.hwVariant, p.zephyrVersion.fwVersion, p.zephyrVersion.fwRevision], [2, 3, 4, 1]);
  assert.equal(p.micFailure, 'receiver-only');
});

async function infoSim(controller: string): Promise<string> {
  let text = '';
  const program = new Command().exitOverride();
  registerInfoCommand(program, (t) => void (text += t));
  await program.parseAsync(['node', 'wearable-host', 'info', '--sim', '--controller', controller]);
  return text;
}

test('info --sim prints the ncs profile: Nordic, 10 x 251-byte buffers, LL privacy off, key size read back', async () => {
  const text = await infoSim('ncs');
  assert.match(text, /Controller\s+Nordic Semiconductor ASA \(0x0059\)/);
  assert.match(text, /ACL buffers\s+10 x 251 bytes/);
  assert.match(text, /LL privacy\s+no/);
  assert.match(text, /Encryption key size\s+read back/);
});

test('info --sim --controller zephyr prints The Linux Foundation, 5.4 subversion 0xffff, Zephyr 4.1, 7 x 27-byte buffers, key size from the pairing', async () => {
  const text = await infoSim('zephyr');
  assert.match(text, /Controller\s+The Linux Foundation \(Zephyr\) \(0x05f1\)/);
  assert.match(text, /LMP\/LL version\s+5\.4 \(0x0d\), subversion 0xffff/);
  assert.match(text, /Vendor platform\s+Nordic nRF53x \(0x0002\/0x0003\), firmware \S+ 4\.1/);
  assert.match(text, /ACL buffers\s+7 x 27 bytes \(LeReadBufferSize\)/);
  assert.match(text, /Encryption key size\s+from the pairing/);
});

test('the README names both firmware families with the figures of their profiles', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  for (const p of Object.values(FIRMWARE_PROFILES)) {
    assert.ok(readme.includes(`--controller ${p.name}`), `README mentions --controller ${p.name}`);
    assert.ok(readme.includes(`${p.aclBuffers} x ${p.aclBufferSize}`), `README states ${p.aclBuffers} x ${p.aclBufferSize} for ${p.name}`);
    assert.match(describeFirmware(p), new RegExp(`${p.aclBuffers} x ${p.aclBufferSize}-byte`));
  }
  assert.match(readme, /SoftDevice Controller/);
  assert.match(readme, /upstream Zephyr/i);
  assert.doesNotMatch(readme, /3 ACL buffers/);
});

test('docs/zephyr-hci-uart.md names the buffer symbols firmware/hci_uart.conf sets, builds with that file, and is linked from firmware/README.md', () => {
  const doc = readFileSync(join(ROOT, 'docs', 'zephyr-hci-uart.md'), 'utf8');
  const conf = kconfig(readFileSync(join(ROOT, 'firmware', 'hci_uart.conf'), 'utf8'));
  for (const sym of ['BT_BUF_ACL_TX_SIZE', 'BT_BUF_ACL_TX_COUNT', 'BT_BUF_ACL_RX_SIZE', 'BT_CTLR_DATA_LENGTH_MAX']) {
    assert.ok(conf.has(sym), `the overlay sets CONFIG_${sym}`);
    assert.ok(doc.includes(`CONFIG_${sym}\``), `the doc names CONFIG_${sym}`);
  }
  assert.match(doc, /-DEXTRA_CONF_FILE=<checkout>\/firmware\/hci_uart\.conf/);
  assert.match(readFileSync(join(ROOT, 'firmware', 'README.md'), 'utf8'), /docs\/zephyr-hci-uart\.md/);
});

test("the controller's version summary (logged when the wearable starts) tells the two firmware families apart", async () => {
  const { Hci } = await import('../../src/hci/driver.js');
  const { VirtualAir } = await import('../../src/sim/air.js');
  const { createMemoryTransportPair } = await import('../../src/hci/memory-transport.js');
  const { VirtualClock } = await import('../../src/util/clock.js');
  const summaries: string[] = [];
  for (const firmware of ['ncs', 'zephyr'] as const) {
    const clock = new VirtualClock();
    const air = new VirtualAir({ clock, seed: 'summary', firmware });
    const [h, c] = createMemoryTransportPair('host', 'ctrl');
    air.createController({ name: 'dk' }).attach(c);
    const hci = new Hci(h, { clock, log: silentLogger() });
    const p = hci.init();
    await clock.runUntil(() => hci.state === 'ready', 5000);
    summaries.push((await p).versionSummary);
    hci.close();
    air.close();
  }
  assert.equal(summaries[0], 'Nordic Semiconductor ASA 0x0059, HCI 5.4 rev 0x1a3c, LL 5.4 sub 0x1a3c, Nordic nRF53x firmware 3.6.99');
  assert.equal(summaries[1], 'The Linux Foundation (Zephyr) 0x05f1, HCI 5.4 rev 0x0000, LL 5.4 sub 0xffff, Nordic nRF53x firmware 4.1.0');
});
