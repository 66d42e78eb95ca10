/**
 * Checks on a controller that answers: who it is, what it supports, how big its buffers are, and
 * whether its AES-128 (HCI LE Encrypt) agrees with ours on the specification's sample data.
 */
import { fromHex, reversed, toHex, bytesEqual } from '../util/bytes.js';
import { formatAddress } from '../util/address.js';
import { e } from '../crypto/index.js';
import { errorMessage } from '../hci/transport-errors.js';
import type { ControllerInfo } from '../hci/controller-info.js';
import type { ControllerSession } from './env.js';
import { CheckId, Severity, type ControllerSummary, type Finding } from './types.js';

/**
 * Sample data for HCI LE Encrypt, Core 5.4 Vol 6 Part C 1 (written there most significant octet
 * first). On the wire HCI carries all three least significant octet first, so the command's
 * parameters are these reversed; {@link e} takes and returns that wire order.
 */
export const LE_ENCRYPT_SAMPLE = {
  keyMsbFirst: '4c68384139f574d836bcf34e9dfb01bf',
  plaintextMsbFirst: '0213243546576879acbdcedfe0f10213',
  encryptedMsbFirst: '99ad1b5226a37e3e058e3b8e27c2c666',
} as const;

/** The sample in HCI (little-endian) order. */
export function leEncryptSampleWire(): { key: Uint8Array; plaintext: Uint8Array; encrypted: Uint8Array } {
  return {
    key: reversed(fromHex(LE_ENCRYPT_SAMPLE.keyMsbFirst)),
    plaintext: reversed(fromHex(LE_ENCRYPT_SAMPLE.plaintextMsbFirst)),
    encrypted: reversed(fromHex(LE_ENCRYPT_SAMPLE.encryptedMsbFirst)),
  };
}

/** Zephyr vendor platform/variant of an nRF53 (Zephyr hci_vs.h; docs/field-notes.md). */
const NORDIC_PLATFORM = 0x0002;
const NRF53_VARIANT = 0x0003;
/** The data length the firmware overlay sets (firmware/hci_uart.conf). */
export const EXPECTED_DATA_LENGTH = 251;

export function summarise(info: ControllerInfo, maxData?: { maxTxOctets: number; maxRxOctets: number }): ControllerSummary {
  const s: ControllerSummary = {
    description: info.description,
    companyId: info.version.companyId,
    hciVersion: info.version.hciVersion,
    identityAddress: formatAddress(info.identityAddress),
    identitySource: info.identitySource,
    aclPacketLength: info.buffers.aclPacketLength,
    aclPacketCount: info.buffers.aclPacketCount,
    features: { ...info.features },
  };
  if (info.vendor) {
    s.vendorPlatform = info.vendor.hwPlatform;
    s.vendorVariant = info.vendor.hwVariant;
  }
  if (maxData) {
    s.maxTxOctets = maxData.maxTxOctets;
    s.maxRxOctets = maxData.maxRxOctets;
  }
  return s;
}

/** Is this the nRF53 running Zephyr's hci_uart, and does it give us a static identity address. */
export function checkIdentity(info: ControllerInfo): Finding {
  const v = info.vendor;
  const details = [
    `${info.version.companyName}, HCI ${info.version.hciVersionName}`,
    `identity address ${formatAddress(info.identityAddress)} (${info.identitySource})`,
  ];
  if (v) details.push(`Zephyr vendor platform ${v.hwPlatformName} ${v.hwVariantName}, firmware ${v.fwVariantName} ${v.fwVersion}.${v.fwRevision} build ${v.fwBuild}`);
  if (!v) {
    return {
      check: CheckId.Identity,
      severity: Severity.Warn,
      title: `${info.description} answers, but without Zephyr vendor commands (Read Version Information 0xFC01)`,
      details,
      fix: 'rebuild hci_uart with firmware/hci_uart.conf (CONFIG_BT_HCI_VS=y): without Read Static Addresses the host must make up an identity address',
    };
  }
  if (v.hwPlatform !== NORDIC_PLATFORM || v.hwVariant !== NRF53_VARIANT) {
    return {
      check: CheckId.Identity,
      severity: Severity.Warn,
      title: `the controller is a ${v.hwPlatformName} ${v.hwVariantName}, not the nRF5340's network core`,
      details,
      fix: 'wearable-host is tested against the nRF5340-DK; other Zephyr controllers may work, but check this is the port you meant',
    };
  }
  if (info.identitySource !== 'zephyr-static') {
    return {
      check: CheckId.Identity,
      severity: Severity.Warn,
      title: `nRF53 controller, but no static address from Read Static Addresses (0xFC09)`,
      details,
      fix: 'rebuild hci_uart with firmware/hci_uart.conf (CONFIG_BT_HCI_VS=y); the identity address would otherwise change',
    };
  }
  return { check: CheckId.Identity, severity: Severity.Ok, title: `${info.description}, identity ${formatAddress(info.identityAddress)}`, details };
}

/** Features and commands the wearable needs: LE encryption, LTK reply (peripheral), LE Encrypt and Rand. */
export function checkFeatures(info: ControllerInfo): Finding {
  const f = info.features;
  const missing: string[] = [];
  if (!f.encryption) missing.push('LE Encryption feature');
  if (!info.supports('LeLongTermKeyRequestReply')) missing.push('LE Long Term Key Request Reply');
  if (!info.supports('LeEncrypt')) missing.push('LE Encrypt');
  if (!info.supports('LeRand')) missing.push('LE Rand');
  const have = Object.entries(f)
    .filter(([, on]) => on)
    .map(([k]) => k);
  const details = [`LE features: ${have.join(', ') || 'none'}`];
  if (missing.length) {
    return {
      check: CheckId.Features,
      severity: Severity.Fail,
      title: `the controller lacks what pairing needs: ${missing.join(', ')}`,
      details,
      fix: 'flash hci_uart built with the SoftDevice Controller (nRF Connect SDK default) for nrf5340dk/nrf5340/cpunet',
    };
  }
  if (!f.dataLengthExtension) {
    return {
      check: CheckId.Features,
      severity: Severity.Warn,
      title: 'no LE Data Packet Length Extension: every link stays at 27-byte packets',
      details,
      fix: 'rebuild hci_uart with firmware/hci_uart.conf (CONFIG_BT_CTLR_DATA_LENGTH_MAX=251)',
    };
  }
  return { check: CheckId.Features, severity: Severity.Ok, title: 'LE encryption, LTK reply, LE Encrypt/Rand and data length extension supported', details };
}

/** ACL buffers and maximum data length as the overlay configures them (251). */
export function checkBuffers(info: ControllerInfo, maxData: { maxTxOctets: number; maxRxOctets: number } | undefined, maxDataError?: string): Finding {
  const b = info.buffers;
  const details = [`ACL buffers: ${b.aclPacketCount} x ${b.aclPacketLength} bytes (${b.source})`];
  if (maxData) details.push(`LE Read Maximum Data Length: tx ${maxData.maxTxOctets}, rx ${maxData.maxRxOctets} octets`);
  if (maxDataError) details.push(`LE Read Maximum Data Length failed: ${maxDataError}`);
  const short: string[] = [];
  if (b.aclPacketLength < EXPECTED_DATA_LENGTH) short.push(`ACL buffers of ${b.aclPacketLength} bytes`);
  if (maxData && (maxData.maxTxOctets < EXPECTED_DATA_LENGTH || maxData.maxRxOctets < EXPECTED_DATA_LENGTH)) {
    short.push(`maximum data length ${Math.min(maxData.maxTxOctets, maxData.maxRxOctets)}`);
  }
  if (b.aclPacketCount < 1) {
    return { check: CheckId.Buffers, severity: Severity.Fail, title: 'the controller reports no ACL buffers', details, fix: 'reflash hci_uart: a controller without ACL buffers cannot carry data' };
  }
  if (short.length) {
    return {
      check: CheckId.Buffers,
      severity: Severity.Warn,
      title: `${short.join(' and ')}, not ${EXPECTED_DATA_LENGTH}: the firmware overlay was not applied`,
      details,
      fix: 'rebuild with -Dhci_uart_EXTRA_CONF_FILE=<abs path>/firmware/hci_uart.conf (NCS >= 2.7) or -DEXTRA_CONF_FILE=... (NCS <= 2.6), with -p, and flash again',
    };
  }
  return { check: CheckId.Buffers, severity: Severity.Ok, title: `${b.aclPacketCount} ACL buffers of ${b.aclPacketLength} bytes; data length ${maxData ? maxData.maxTxOctets : 'not read'}`, details };
}

/**
 * LE Encrypt on the controller against our AES ({@link e}) on the spec's sample, and against the
 * published result. A byte-reversed answer means one side has the byte order wrong.
 */
export async function checkLeEncrypt(session: ControllerSession): Promise<Finding> {
  const s = leEncryptSampleWire();
  const ours = e(s.key, s.plaintext);
  const details = [
    `key ${toHex(s.key, ' ')}`,
    `plaintext ${toHex(s.plaintext, ' ')} (HCI order, least significant octet first)`,
    `expected ${toHex(s.encrypted, ' ')}`,
    `ours     ${toHex(ours, ' ')}`,
  ];
  if (!bytesEqual(ours, s.encrypted)) {
    return {
      check: CheckId.LeEncrypt,
      severity: Severity.Fail,
      title: 'our own AES-128 does not reproduce the spec sample (Core 5.4 Vol 6 Part C 1)',
      details,
      fix: 'a broken install: reinstall dependencies with `npm ci` and report it',
    };
  }
  let theirs: Uint8Array;
  try {
    theirs = (await session.command('LeEncrypt', { key: s.key, plaintext: s.plaintext })).encrypted;
  } catch (err) {
    return {
      check: CheckId.LeEncrypt,
      severity: Severity.Fail,
      title: `LE Encrypt failed on the controller: ${errorMessage(err)}`,
      details,
      fix: 'the controller must support LE Encrypt (mandatory); reflash hci_uart',
    };
  }
  details.push(`theirs   ${toHex(theirs, ' ')}`);
  if (bytesEqual(theirs, s.encrypted)) {
    return { check: CheckId.LeEncrypt, severity: Severity.Ok, title: "the controller's LE Encrypt matches our AES on the spec sample", details };
  }
  if (bytesEqual(theirs, reversed(s.encrypted))) {
    return {
      check: CheckId.LeEncrypt,
      severity: Severity.Fail,
      title: "the controller's LE Encrypt answer is byte-reversed: one side has the HCI byte order wrong",
      details,
      fix: 'report this with the details: encryption with this controller would fail (MIC failure 0x3D)',
    };
  }
  return {
    check: CheckId.LeEncrypt,
    severity: Severity.Fail,
    title: "the controller's LE Encrypt answer differs from AES-128 on the spec sample",
    details,
    fix: 'the link or the controller corrupts data: check baud rate and flow control, then reflash hci_uart',
  };
}

/** Brings the controller up and runs identity, features, buffers and LE Encrypt checks. */
export async function checkController(
  session: ControllerSession,
): Promise<{ findings: Finding[]; summary: ControllerSummary }> {
  const info = session.info;
  const findings: Finding[] = [checkIdentity(info), checkFeatures(info)];
  let maxData: { maxTxOctets: number; maxRxOctets: number } | undefined;
  let maxDataError: string | undefined;
  if (info.supports('LeReadMaximumDataLength')) {
    try {
      const r = await session.command('LeReadMaximumDataLength', {});
      maxData = { maxTxOctets: r.maxTxOctets, maxRxOctets: r.maxRxOctets };
    } catch (err) {
      maxDataError = errorMessage(err);
    }
  }
  findings.push(checkBuffers(info, maxData, maxDataError));
  findings.push(await checkLeEncrypt(session));
  return { findings, summary: summarise(info, maxData) };
}
