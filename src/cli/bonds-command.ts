/**
 * `wearable-host bonds list|remove|clear`: look at and manage the bond file without running the
 * stack. `list` opens the file read-only (it works while wearable-host runs); `remove` and `clear`
 * take the file's lock, so they refuse while wearable-host is running and say so.
 */
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { isResolvablePrivateAddress, isValidAddressText, randomAddressKind, type Address } from '../util/address.js';
import { WearableHostError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { JsonFileBondStore, defaultBondsPath } from '../bonds/json-store.js';
import type { BondRecord } from '../bonds/types.js';

/** Where the command reads and writes, injectable for tests. */
export interface BondsCommandIo {
  /** Normal output (stdout). */
  out(text: string): void;
  /** Whether stdin is a terminal a person can answer a prompt on. */
  isInteractive(): boolean;
  /** Asks a yes/no question; resolves true only on an explicit yes. */
  confirm(question: string): Promise<boolean>;
  /** The bond file when --bonds is not given. */
  defaultPath(): string;
  logger?: Logger;
}

const FORGET_HINT = 'forget this device on the phone (iOS: Settings > Bluetooth > (i) > Forget This Device; Android: Bluetooth > device > Forget) before pairing again';

async function ttyConfirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(question);
    return /^\s*y(es)?\s*$/i.test(answer);
  } finally {
    rl.close();
  }
}

function defaultIo(): BondsCommandIo {
  return {
    out: (text) => void process.stdout.write(text),
    isInteractive: () => Boolean(process.stdin.isTTY),
    confirm: ttyConfirm,
    defaultPath: () => defaultBondsPath(),
  };
}

function describeAddress(a: Address): string {
  if (a.type === 'public') return `${a.address}  public`;
  return `${a.address}  random ${randomAddressKind(a.address)}`;
}

function hex4(n: number): string {
  return `0x${n.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** CCCD value bits: 0x0001 notifications, 0x0002 indications. Core 5.4 Vol 3 Part G 3.3.3.3. */
function cccdMeaning(v: number): string {
  const parts: string[] = [];
  if (v & 1) parts.push('notify');
  if (v & 2) parts.push('indicate');
  if (v & ~3) parts.push('other bits');
  return parts.length ? parts.join('+') : 'off';
}

function bondText(b: BondRecord): string {
  const security = [
    `key size ${b.keySize}`,
    b.secureConnections ? 'LE Secure Connections' : 'legacy pairing',
    b.authenticated ? 'authenticated (MITM-protected)' : 'unauthenticated (Just Works)',
  ].join(', ');
  const handles = Object.keys(b.cccd)
    .map(Number)
    .sort((x, y) => x - y);
  const cccds = handles.length
    ? handles.map((h) => `${hex4(h)} = ${hex4(b.cccd[h] as number)} (${cccdMeaning(b.cccd[h] as number)})`).join(', ')
    : 'none';
  const gatt = [
    b.gatt.databaseHash ? `database hash ${b.gatt.databaseHash}` : 'no database hash',
    `client features 0x${b.gatt.clientFeatures.toString(16).padStart(2, '0')}`,
    b.gatt.changeAware ? 'change-aware' : 'change-unaware',
  ].join(', ');
  return [
    describeAddress(b.peer),
    `  ${security}`,
    `  peer IRK: ${b.peerIrk ? 'yes (its private addresses resolve to this bond)' : 'no'}, CSRK: ${b.peerCsrk ? 'yes' : 'no'}`,
    `  CCCDs: ${cccds}`,
    `  GATT: ${gatt}`,
    `  created ${b.createdAt}, last seen ${b.lastSeenAt}`,
  ].join('\n');
}

/** The `--json` form of a bond: everything but key material (LTK, EDIV/Rand, IRK, CSRK). */
function bondJson(b: BondRecord): Record<string, unknown> {
  return {
    address: b.peer.address,
    type: b.peer.type,
    keySize: b.keySize,
    secureConnections: b.secureConnections,
    authenticated: b.authenticated,
    hasIrk: b.peerIrk !== undefined,
    hasCsrk: b.peerCsrk !== undefined,
    cccd: { ...b.cccd },
    gatt: { ...b.gatt },
    createdAt: b.createdAt,
    lastSeenAt: b.lastSeenAt,
  };
}

function bondsPath(cmd: Command, io: BondsCommandIo): string {
  const opts = cmd.optsWithGlobals<{ bonds?: string }>();
  return typeof opts.bonds === 'string' && opts.bonds !== '' ? opts.bonds : io.defaultPath();
}

/** Refuses a destructive change without --yes when nobody can answer a prompt (stdin not a TTY). */
function refuseUnattended(io: BondsCommandIo, yes: boolean | undefined, what: string): void {
  if (!yes && !io.isInteractive()) {
    throw new WearableHostError('cli', `refusing to ${what} without confirmation: stdin is not a terminal. Pass --yes to ${what}.`);
  }
}

/** Asks before a destructive change (true at once with --yes). */
async function confirmed(io: BondsCommandIo, yes: boolean | undefined, what: string, question: string): Promise<boolean> {
  if (yes) return true;
  refuseUnattended(io, yes, what);
  return io.confirm(question);
}

function storeOptions(io: BondsCommandIo): { logger?: Logger } {
  return io.logger ? { logger: io.logger } : {};
}

/**
 * Adds `bonds list [--json]`, `bonds remove ADDRESS [--yes] [--type public|random]` and
 * `bonds clear [--yes]` to `program`, each taking `--bonds FILE` (default: {@link defaultBondsPath}).
 * Failures are thrown as WearableHostError (layer 'cli' or 'bonds') with a message for the user;
 * the caller prints it and sets the exit code.
 */
export function registerBondsCommand(program: Command, ioOverrides: Partial<BondsCommandIo> = {}): Command {
  const io: BondsCommandIo = { ...defaultIo(), ...ioOverrides };
  const bonds = program.command('bonds').description('list or remove stored bonds (paired phones)');

  bonds
    .command('list')
    .description('show our identity and every bonded peer (no key material is printed)')
    .option('--json', 'machine-readable output')
    .option('--bonds <file>', 'bond file (default: $XDG_STATE_HOME/wearable-host/bonds.json)')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const path = bondsPath(cmd, io);
      const store = await JsonFileBondStore.open(path, { ...storeOptions(io), readOnly: true });
      try {
        const list = [...store.list()].sort((a, b) => Date.parse(b.lastSeenAt) - Date.parse(a.lastSeenAt));
        const id = store.getLocalIdentity();
        if (opts.json) {
          const doc = {
            file: store.path,
            localIdentity: id ? { address: id.address.address, type: id.address.type, hasIrk: true } : null,
            bonds: list.map(bondJson),
          };
          io.out(JSON.stringify(doc, null, 2) + '\n');
          return;
        }
        const lines = [`Bond file: ${store.path}`];
        lines.push(id ? `Local identity: ${describeAddress(id.address)}, IRK stored` : 'Local identity: none stored yet (chosen on first start)');
        if (list.length === 0) {
          lines.push('No bonds stored.');
        } else {
          lines.push(`${list.length} bond${list.length === 1 ? '' : 's'}, most recently seen first:`);
          for (const b of list) lines.push('', bondText(b));
        }
        io.out(lines.join('\n') + '\n');
      } finally {
        await store.close();
      }
    });

  bonds
    .command('remove')
    .description('forget one bonded peer')
    .argument('<address>', 'identity address AA:BB:CC:DD:EE:FF (or a private address its IRK resolves)')
    .option('--type <type>', 'address type when both a public and a random bond share the address (public|random)')
    .option('--yes', 'do not ask for confirmation')
    .option('--bonds <file>', 'bond file (default: $XDG_STATE_HOME/wearable-host/bonds.json)')
    .action(async (addressText: string, opts: { yes?: boolean; type?: string }, cmd: Command) => {
      if (!isValidAddressText(addressText)) {
        throw new WearableHostError('cli', `not a Bluetooth address: ${JSON.stringify(addressText)} (expected AA:BB:CC:DD:EE:FF, as 'bonds list' prints it)`);
      }
      if (opts.type !== undefined && opts.type !== 'public' && opts.type !== 'random') {
        throw new WearableHostError('cli', `--type must be public or random, got ${JSON.stringify(opts.type)}`);
      }
      const address = addressText.toUpperCase();
      const path = bondsPath(cmd, io);
      refuseUnattended(io, opts.yes, `remove the bond with ${address}`);
      const store = await JsonFileBondStore.open(path, storeOptions(io));
      try {
        let matches = store.list().filter((b) => b.peer.address === address && (opts.type === undefined || b.peer.type === opts.type));
        if (matches.length === 0 && opts.type !== 'public') {
          const candidate: Address = { type: 'random', address };
          const resolved = isResolvablePrivateAddress(candidate) ? store.resolve(candidate) : undefined;
          if (resolved) matches = [resolved];
        }
        if (matches.length === 0) {
          throw new WearableHostError('cli', `no bond with ${address}${opts.type ? ` (${opts.type})` : ''} in ${store.path}; 'wearable-host bonds list' shows the stored ones`);
        }
        if (matches.length > 1) {
          throw new WearableHostError('cli', `${address} has both a public and a random bond in ${store.path}; say which with --type public or --type random`);
        }
        const bond = matches[0] as BondRecord;
        const name = `${bond.peer.address} (${bond.peer.type})`;
        const ok = await confirmed(io, opts.yes, `remove the bond with ${name}`, `Remove the bond with ${name} from ${store.path}? The phone will then need to forget this device. [y/N] `);
        if (!ok) {
          io.out('Nothing removed.\n');
          return;
        }
        await store.remove(bond.peer);
        io.out(`Removed the bond with ${name} from ${store.path}.\nNext: ${FORGET_HINT}.\n`);
      } finally {
        await store.close();
      }
    });

  bonds
    .command('clear')
    .description('forget every bonded peer (our own identity and IRK are kept)')
    .option('--yes', 'do not ask for confirmation')
    .option('--bonds <file>', 'bond file (default: $XDG_STATE_HOME/wearable-host/bonds.json)')
    .action(async (opts: { yes?: boolean }, cmd: Command) => {
      const path = bondsPath(cmd, io);
      refuseUnattended(io, opts.yes, 'remove every bond');
      const store = await JsonFileBondStore.open(path, storeOptions(io));
      try {
        const n = store.list().length;
        if (n === 0) {
          io.out(`No bonds in ${store.path}; nothing to clear.\n`);
          return;
        }
        const ok = await confirmed(io, opts.yes, 'remove every bond', `Remove all ${n} bond${n === 1 ? '' : 's'} from ${store.path}? Every bonded phone will then need to forget this device. [y/N] `);
        if (!ok) {
          io.out('Nothing removed.\n');
          return;
        }
        await store.clear();
        io.out(`Removed ${n} bond${n === 1 ? '' : 's'} from ${store.path} (our identity address and IRK are kept).\nNext: on each phone, ${FORGET_HINT}.\n`);
      } finally {
        await store.close();
      }
    });

  return bonds;
}
