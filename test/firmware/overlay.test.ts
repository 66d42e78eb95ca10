/**
 * Keeps firmware/hci_uart.conf honest: every symbol it sets is one we verified in current Zephyr /
 * nRF Connect SDK Kconfig files (listed here with the file that defines it), values are inside the
 * Kconfig ranges and the cross-symbol rules the build enforces, nothing removed or renamed sneaks
 * back in, and firmware/README.md's build commands name the file that exists.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, basename } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: the nearest parent holding firmware/hci_uart.conf (tests run from dist/test/...). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'firmware', 'hci_uart.conf')) && existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the repository root (firmware/hci_uart.conf) above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

const ROOT = repoRoot();
const OVERLAY_PATH = join(ROOT, 'firmware', 'hci_uart.conf');
const README_PATH = join(ROOT, 'firmware', 'README.md');

interface KnownSymbol {
  type: 'bool' | 'int';
  /** Inclusive Kconfig range, where it has one (the narrowest one that holds across the versions we support). */
  range?: readonly [number, number];
  /** Kconfig file that defines it. */
  source: string;
  /** Defined only by the SoftDevice Controller in sdk-nrf: unknown to upstream Zephyr. */
  ncsOnly?: boolean;
}

/**
 * Symbols verified to exist, with where. Zephyr paths are zephyrproject-rtos/zephyr, sdk-nrf paths
 * nrfconnect/sdk-nrf (main branches as of the firmware/ README's sources).
 */
const KNOWN: Readonly<Record<string, KnownSymbol>> = {
  BT_BUF_ACL_TX_SIZE: { type: 'int', range: [27, 251], source: 'zephyr subsys/bluetooth/common/Kconfig' },
  BT_BUF_ACL_TX_COUNT: { type: 'int', range: [1, 255], source: 'zephyr subsys/bluetooth/common/Kconfig' },
  BT_BUF_ACL_RX_SIZE: { type: 'int', range: [27, 65535], source: 'zephyr subsys/bluetooth/common/Kconfig' },
  BT_BUF_EVT_RX_SIZE: { type: 'int', range: [68, 255], source: 'zephyr subsys/bluetooth/common/Kconfig' },
  BT_BUF_EVT_RX_COUNT: { type: 'int', range: [2, 255], source: 'zephyr subsys/bluetooth/common/Kconfig' },
  BT_BUF_CMD_TX_SIZE: { type: 'int', range: [65, 255], source: 'zephyr subsys/bluetooth/common/Kconfig' },
  BT_BUF_CMD_TX_COUNT: { type: 'int', range: [2, 64], source: 'zephyr subsys/bluetooth/common/Kconfig' },
  BT_HCI_VS: { type: 'bool', source: 'zephyr subsys/bluetooth/common/Kconfig' },
  BT_WAIT_NOP: { type: 'bool', source: 'zephyr subsys/bluetooth/common/Kconfig' },
  // Zephyr allows more; the SoftDevice Controller narrows it to 1..20.
  BT_MAX_CONN: { type: 'int', range: [1, 20], source: 'zephyr subsys/bluetooth/Kconfig; sdk-nrf subsys/bluetooth/Kconfig (range with BT_LL_SOFTDEVICE)' },
  BT_CTLR_DATA_LENGTH_MAX: { type: 'int', range: [27, 251], source: 'zephyr subsys/bluetooth/controller/Kconfig' },
  BT_CTLR_ASSERT_HANDLER: { type: 'bool', source: 'zephyr subsys/bluetooth/controller/Kconfig' },
  BT_CTLR_PRIVACY: { type: 'bool', source: 'zephyr subsys/bluetooth/controller/Kconfig; samples/bluetooth/hci_uart/Kconfig' },
  BT_CTLR_SDC_PERIPHERAL_COUNT: { type: 'int', source: 'sdk-nrf subsys/bluetooth/controller/Kconfig', ncsOnly: true },
  BT_CTLR_SDC_TX_PACKET_COUNT: { type: 'int', range: [1, 20], source: 'sdk-nrf subsys/bluetooth/controller/Kconfig', ncsOnly: true },
  BT_CTLR_SDC_RX_PACKET_COUNT: { type: 'int', range: [1, 20], source: 'sdk-nrf subsys/bluetooth/controller/Kconfig', ncsOnly: true },
  BT_CTLR_SDC_MAX_CONN_EVENT_LEN_DEFAULT: { type: 'int', range: [0, 4_000_000], source: 'sdk-nrf subsys/bluetooth/controller/Kconfig', ncsOnly: true },
};

/** Symbols that current Zephyr / NCS removed, renamed or that do not apply to the SoftDevice Controller. */
const FORBIDDEN: Readonly<Record<string, string>> = {
  BT_HCI_VS_EXT: 'removed in Zephyr 3.7 (NCS 2.7): folded into BT_HCI_VS (doc/releases/migration-guide-3.7.rst)',
  BT_HCI_VS_EVT: 'removed in Zephyr 3.7: vendor events come with BT_HCI_VS (doc/releases/migration-guide-3.7.rst)',
  BT_CTLR_TX_BUFFER_SIZE: 'old Zephyr link-layer symbol, replaced by BT_BUF_ACL_TX_SIZE',
  BT_CTLR_RX_BUFFERS: 'Zephyr link layer only (depends on BT_LL_SW_SPLIT); the SoftDevice Controller ignores it',
  BT_BUF_ACL_RX_COUNT: 'host-side pool, deprecated in Zephyr 4.1 (doc/releases/migration-guide-4.1.rst)',
  BT_BUF_ACL_RX_COUNT_EXTRA: 'host-side pool, unknown before Zephyr 4.1 (NCS <= 2.9 would reject it)',
  BLUETOOTH_CONTROLLER_DATA_LENGTH: 'pre-1.10 Zephyr name of BT_CTLR_DATA_LENGTH_MAX',
};

interface Assignment {
  symbol: string;
  value: string;
  line: number;
  /** A comment line directly above it (or above the run of assignments it belongs to). */
  commented: boolean;
}

interface ParsedOverlay {
  assignments: Assignment[];
  /** Lines that are neither blank, comment nor `CONFIG_X=value`. */
  malformed: { line: number; text: string }[];
}

/** Parses a Kconfig fragment: `CONFIG_NAME=value`, `# CONFIG_NAME is not set`, comments, blanks. */
function parseOverlay(text: string): ParsedOverlay {
  const assignments: Assignment[] = [];
  const malformed: { line: number; text: string }[] = [];
  let lastWasComment = false;
  let inCommentedRun = false;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    const n = i + 1;
    const notSet = /^#\s*CONFIG_([A-Z0-9_]+) is not set$/.exec(line);
    if (notSet) {
      assignments.push({ symbol: notSet[1] as string, value: 'n', line: n, commented: lastWasComment || inCommentedRun });
      inCommentedRun = lastWasComment || inCommentedRun;
      lastWasComment = false;
      return;
    }
    if (line === '') {
      lastWasComment = false;
      inCommentedRun = false;
      return;
    }
    if (line.startsWith('#')) {
      lastWasComment = true;
      return;
    }
    const m = /^CONFIG_([A-Z0-9_]+)=(.*)$/.exec(line);
    if (!m) {
      malformed.push({ line: n, text: raw });
      lastWasComment = false;
      return;
    }
    const commented = lastWasComment || inCommentedRun;
    assignments.push({ symbol: m[1] as string, value: (m[2] as string).trim(), line: n, commented });
    inCommentedRun = commented;
    lastWasComment = false;
  });
  return { assignments, malformed };
}

function intValue(v: string): number | undefined {
  if (/^-?\d+$/.test(v)) return Number(v);
  if (/^0x[0-9a-f]+$/i.test(v)) return Number.parseInt(v.slice(2), 16);
  return undefined;
}

/** Everything wrong with an overlay, one line each (empty when it is good). */
function checkOverlay(text: string): string[] {
  const { assignments, malformed } = parseOverlay(text);
  const problems: string[] = [];
  for (const m of malformed) problems.push(`line ${m.line}: not a Kconfig assignment or comment: ${m.text}`);
  const seen = new Map<string, number>();
  const values = new Map<string, string>();
  for (const a of assignments) {
    const where = `line ${a.line}: CONFIG_${a.symbol}`;
    const prev = seen.get(a.symbol);
    if (prev !== undefined) problems.push(`${where} is set twice (first on line ${prev})`);
    seen.set(a.symbol, a.line);
    values.set(a.symbol, a.value);
    if (!a.commented) problems.push(`${where} has no comment saying why`);
    const gone = FORBIDDEN[a.symbol];
    if (gone) {
      problems.push(`${where}: ${gone}`);
      continue;
    }
    const known = KNOWN[a.symbol];
    if (!known) {
      problems.push(`${where} is not in the list of verified symbols: find its Kconfig definition in current zephyr / sdk-nrf and add it with its source`);
      continue;
    }
    if (known.ncsOnly) problems.push(`${where} exists only with the SoftDevice Controller (${known.source}); the overlay keeps to symbols upstream Zephyr knows`);
    if (known.type === 'bool') {
      if (a.value !== 'y' && a.value !== 'n') problems.push(`${where}=${a.value}: a bool takes y or n`);
    } else {
      const v = intValue(a.value);
      if (v === undefined) problems.push(`${where}=${a.value}: not an integer`);
      else if (known.range && (v < known.range[0] || v > known.range[1])) {
        problems.push(`${where}=${v} is outside ${known.range[0]}..${known.range[1]} (${known.source})`);
      }
    }
  }
  const num = (s: string): number | undefined => {
    const v = values.get(s);
    return v === undefined ? undefined : intValue(v);
  };
  const dle = num('BT_CTLR_DATA_LENGTH_MAX');
  const aclTx = num('BT_BUF_ACL_TX_SIZE');
  const aclRx = num('BT_BUF_ACL_RX_SIZE');
  if (dle !== undefined && aclRx !== undefined && dle > aclRx) {
    problems.push(`BT_CTLR_DATA_LENGTH_MAX=${dle} exceeds BT_BUF_ACL_RX_SIZE=${aclRx}: Kconfig caps the data length at the ACL RX size (zephyr subsys/bluetooth/controller/Kconfig)`);
  }
  if (dle !== undefined && aclTx !== undefined && aclTx < dle) {
    problems.push(`BT_BUF_ACL_TX_SIZE=${aclTx} is below BT_CTLR_DATA_LENGTH_MAX=${dle}: hci_uart would discard host ACL packets that fill one LL packet`);
  }
  const evtCount = num('BT_BUF_EVT_RX_COUNT');
  const aclTxCount = num('BT_BUF_ACL_TX_COUNT');
  if (evtCount !== undefined && aclTxCount !== undefined && !(evtCount > aclTxCount)) {
    problems.push(`BT_BUF_EVT_RX_COUNT=${evtCount} must exceed BT_BUF_ACL_TX_COUNT=${aclTxCount} (build assert in zephyr include/zephyr/bluetooth/buf.h)`);
  }
  return problems;
}

const overlayText = readFileSync(OVERLAY_PATH, 'utf8');
const overlay = parseOverlay(overlayText);
const set = new Map(overlay.assignments.map((a) => [a.symbol, a.value]));

test('firmware/hci_uart.conf passes every check: known symbols with sources, ranges, comments, cross-symbol rules', () => {
  assert.deepEqual(checkOverlay(overlayText), []);
  assert.ok(overlay.assignments.length >= 8, 'the overlay sets the buffer, data length, connection, vendor and assert symbols');
});

test('the overlay gives 251-byte data length end to end: LL payload, host->controller and controller->host ACL buffers', () => {
  assert.equal(set.get('BT_CTLR_DATA_LENGTH_MAX'), '251');
  assert.ok(Number(set.get('BT_BUF_ACL_TX_SIZE')) >= 251);
  assert.ok(Number(set.get('BT_BUF_ACL_RX_SIZE')) >= 251);
});

test('the overlay takes the largest command and event parameter length HCI allows (255)', () => {
  assert.equal(set.get('BT_BUF_CMD_TX_SIZE'), '255');
  assert.equal(set.get('BT_BUF_EVT_RX_SIZE'), '255');
});

test('the overlay keeps the vendor commands and the assert report the host relies on, and controller privacy off', () => {
  assert.equal(set.get('BT_HCI_VS'), 'y');
  assert.equal(set.get('BT_CTLR_ASSERT_HANDLER'), 'y');
  assert.equal(set.get('BT_CTLR_PRIVACY'), 'n');
  const maxConn = Number(set.get('BT_MAX_CONN'));
  assert.ok(maxConn >= 2 && maxConn <= 20, 'one peripheral link for the phone plus at least one central link (SDC range 1..20)');
});

test('the checker rejects removed symbols, unknown symbols, out-of-range values and missing comments', () => {
  const bad = [
    '# vendor extensions',
    'CONFIG_BT_HCI_VS_EXT=y',
    '# typo',
    'CONFIG_BT_BUF_ACL_TX_SIZ=251',
    '# too long',
    'CONFIG_BT_CTLR_DATA_LENGTH_MAX=300',
    'CONFIG_BT_BUF_ACL_TX_SIZE=27',
    '',
    'CONFIG_BT_HCI_VS=1',
    'garbage line',
    '# SDC only',
    'CONFIG_BT_CTLR_SDC_TX_PACKET_COUNT=3',
  ].join('\n');
  const problems = checkOverlay(bad);
  const has = (re: RegExp): boolean => problems.some((p) => re.test(p));
  assert.ok(has(/CONFIG_BT_HCI_VS_EXT: removed in Zephyr 3\.7/), problems.join('\n'));
  assert.ok(has(/CONFIG_BT_BUF_ACL_TX_SIZ is not in the list of verified symbols/));
  assert.ok(has(/CONFIG_BT_CTLR_DATA_LENGTH_MAX=300 is outside 27\.\.251/));
  assert.ok(has(/BT_BUF_ACL_TX_SIZE=27 is below BT_CTLR_DATA_LENGTH_MAX=300/));
  assert.ok(has(/line 9: CONFIG_BT_HCI_VS has no comment/));
  assert.ok(has(/CONFIG_BT_HCI_VS=1: a bool takes y or n/));
  assert.ok(has(/line 10: not a Kconfig assignment/));
  assert.ok(has(/CONFIG_BT_CTLR_SDC_TX_PACKET_COUNT exists only with the SoftDevice Controller/));
});

test('the checker enforces the data-length cap and the event/ACL buffer count rule', () => {
  const problems = checkOverlay(
    ['# c', 'CONFIG_BT_CTLR_DATA_LENGTH_MAX=251', 'CONFIG_BT_BUF_ACL_RX_SIZE=200', 'CONFIG_BT_BUF_ACL_TX_COUNT=10', 'CONFIG_BT_BUF_EVT_RX_COUNT=10'].join('\n'),
  );
  assert.ok(problems.some((p) => /exceeds BT_BUF_ACL_RX_SIZE=200/.test(p)), problems.join('\n'));
  assert.ok(problems.some((p) => /BT_BUF_EVT_RX_COUNT=10 must exceed BT_BUF_ACL_TX_COUNT=10/.test(p)));
});

test('the checker reads "# CONFIG_X is not set" as an assignment to n and a duplicate as an error', () => {
  const parsed = parseOverlay('# why\n# CONFIG_BT_CTLR_PRIVACY is not set\n');
  assert.deepEqual(
    parsed.assignments.map((a) => [a.symbol, a.value]),
    [['BT_CTLR_PRIVACY', 'n']],
  );
  const problems = checkOverlay('# why\nCONFIG_BT_HCI_VS=y\nCONFIG_BT_HCI_VS=n\n');
  assert.ok(problems.some((p) => /CONFIG_BT_HCI_VS is set twice \(first on line 2\)/.test(p)), problems.join('\n'));
});

const readme = readFileSync(README_PATH, 'utf8');

/** The contents of the README's fenced code blocks: the commands a user copies. */
const readmeCommands = [...readme.matchAll(/```[a-z]*\n([\s\S]*?)```/g)].map((m) => m[1] as string).join('\n');

test('every EXTRA_CONF_FILE in firmware/README.md commands names a file that exists in firmware/', () => {
  const paths = [...readmeCommands.matchAll(/EXTRA_CONF_FILE=(\S+)/g)].map((m) => m[1] as string);
  assert.ok(paths.length >= 2, 'the README documents the sysbuild and the child-image build');
  const present = new Set(readdirSync(join(ROOT, 'firmware')));
  for (const p of paths) {
    assert.ok(present.has(basename(p)), `${p}: firmware/${basename(p)} does not exist`);
    assert.match(p, /\/firmware\/[^/]+$/, `${p} should point into the checkout's firmware/ directory`);
    assert.match(p, /^(<[^>]+>|\/)/, `${p} must be absolute (sysbuild resolves relative paths against the sample)`);
  }
});

test('the README builds for both board names with the empty app core and the image-prefixed variable', () => {
  assert.match(readmeCommands, /-b nrf5340dk\/nrf5340\/cpunet zephyr\/samples\/bluetooth\/hci_uart/);
  assert.match(readmeCommands, /-b nrf5340dk_nrf5340_cpunet zephyr\/samples\/bluetooth\/hci_uart/);
  assert.match(readmeCommands, /-DSB_CONFIG_APPCORE_EMPTY=y/);
  // sysbuild's per-image variable is prefixed with the image name: the sample's directory name.
  assert.match(readmeCommands, /-Dhci_uart_EXTRA_CONF_FILE=/);
  assert.match(readmeCommands, /ls -d build\/empty_app_core/);
  assert.match(readmeCommands, /ATTRS\{idVendor\}=="1366", ENV\{ID_MM_DEVICE_IGNORE\}="1"/);
  assert.match(readmeCommands, /MSDDisable/);
  assert.match(readmeCommands, /wearable-host doctor --port/);
});
