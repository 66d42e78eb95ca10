import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { registerBondsCommand, type BondsCommandIo } from '../../src/cli/bonds-command.js';
import { BondStoreError } from '../../src/bonds/errors.js';
import { JsonFileBondStore } from '../../src/bonds/json-store.js';
import { generateIrk, generateRpa } from '../../src/privacy/rpa.js';
import { toHex } from '../../src/util/bytes.js';
import { WearableHostError } from '../../src/util/errors.js';
import { seededRandom } from '../../src/util/random.js';
import { fullBond, minimalBond, peerAddress } from '../bonds/fixtures/records.js';

const LOCAL = { address: { type: 'random' as const, address: 'C3:11:22:33:44:55' }, irk: new Uint8Array(16).fill(7) };

interface Harness {
  dir: string;
  path: string;
  out: string[];
  questions: string[];
  run(args: string[], io?: Partial<BondsCommandIo>): Promise<string>;
}

async function withHarness(fn: (h: Harness) => Promise<void>, seed: (s: JsonFileBondStore) => Promise<void> = async () => {}): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'wh-bonds-cli-'));
  const path = join(dir, 'bonds.json');
  try {
    const s = await JsonFileBondStore.open(path);
    await seed(s);
    await s.close();
    const out: string[] = [];
    const questions: string[] = [];
    const h: Harness = {
      dir,
      path,
      out,
      questions,
      async run(args, io = {}) {
        out.length = 0;
        const program = new Command('wearable-host').exitOverride().configureOutput({ writeOut: () => {}, writeErr: () => {} });
        registerBondsCommand(program, {
          out: (t) => void out.push(t),
          isInteractive: () => false,
          confirm: async (q) => {
            questions.push(q);
            return false;
          },
          defaultPath: () => join(dir, 'default-not-used.json'),
          ...io,
        });
        await program.parseAsync(args, { from: 'user' });
        return out.join('');
      },
    };
    await fn(h);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function seedTwo(s: JsonFileBondStore): Promise<void> {
  await s.setLocalIdentity(LOCAL);
  await s.put(fullBond(1));
  await s.put(minimalBond(2, { lastSeenAt: '2026-05-01T00:00:00.000Z' }));
}

test('bonds list prints identity, type, key size, SC/authenticated, IRK, CCCDs and times, and no key material', async () => {
  await withHarness(async (h) => {
    const text = await h.run(['bonds', 'list', '--bonds', h.path]);
    assert.match(text, new RegExp(`Bond file: ${h.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match(text, /Local identity: C3:11:22:33:44:55 {2}random static, IRK stored/);
    assert.match(text, /2 bonds, most recently seen first/);
    // Most recently seen (peer 2, May) first.
    assert.ok(text.indexOf(peerAddress(2).address) < text.indexOf(peerAddress(1).address));
    assert.match(text, /00:1B:DC:F0:00:02 {2}public\n {2}key size 16, LE Secure Connections, unauthenticated \(Just Works\)\n {2}peer IRK: no, CSRK: no\n {2}CCCDs: none/);
    assert.match(text, /00:1B:DC:F0:00:01 {2}public\n {2}key size 16, legacy pairing, authenticated \(MITM-protected\)/);
    assert.match(text, /peer IRK: yes .*, CSRK: yes/);
    assert.match(text, /CCCDs: 0x000C = 0x0001 \(notify\), 0x0010 = 0x0002 \(indicate\)/);
    assert.match(text, /GATT: database hash 00112233445566778899aabbccddeeff, client features 0x01, change-aware/);
    assert.match(text, /created 2026-01-01T00:00:01\.000Z, last seen 2026-01-02T00:00:01\.000Z/);
    for (const secret of [fullBond(1).ltk, fullBond(1).peerIrk as Uint8Array, minimalBond(2).ltk, LOCAL.irk]) {
      assert.equal(text.includes(toHex(secret)), false, 'no key in the listing');
    }
  }, seedTwo);
});

test('bonds list --json gives the same facts machine-readably, without keys', async () => {
  await withHarness(async (h) => {
    const doc = JSON.parse(await h.run(['bonds', 'list', '--json', '--bonds', h.path])) as {
      file: string;
      localIdentity: { address: string; type: string };
      bonds: Record<string, unknown>[];
    };
    assert.equal(doc.file, h.path);
    assert.deepEqual(doc.localIdentity, { address: 'C3:11:22:33:44:55', type: 'random', hasIrk: true });
    assert.equal(doc.bonds.length, 2);
    assert.deepEqual(doc.bonds[1], {
      address: '00:1B:DC:F0:00:01',
      type: 'public',
      keySize: 16,
      secureConnections: false,
      authenticated: true,
      hasIrk: true,
      hasCsrk: true,
      cccd: { '12': 1, '16': 2 },
      gatt: { databaseHash: '00112233445566778899aabbccddeeff', clientFeatures: 1, changeAware: true },
      createdAt: '2026-01-01T00:00:01.000Z',
      lastSeenAt: '2026-01-02T00:00:01.000Z',
    });
    assert.equal(JSON.stringify(doc).includes('ltk'), false);
  }, seedTwo);
});

test('bonds list works while wearable-host holds the lock, and on a missing file creates nothing', async () => {
  await withHarness(async (h) => {
    const running = await JsonFileBondStore.open(h.path);
    try {
      assert.match(await h.run(['bonds', 'list', '--bonds', h.path]), /2 bonds/);
    } finally {
      await running.close();
    }
    const missing = join(h.dir, 'nowhere', 'bonds.json');
    assert.match(await h.run(['bonds', 'list', '--bonds', missing]), /No bonds stored\./);
    assert.equal(existsSync(join(h.dir, 'nowhere')), false);
  }, seedTwo);
});

test('--bonds given on the root program is honoured (optsWithGlobals)', async () => {
  await withHarness(async (h) => {
    const out: string[] = [];
    const program = new Command('wearable-host').exitOverride().option('--bonds <file>');
    registerBondsCommand(program, { out: (t) => void out.push(t), defaultPath: () => '/nonexistent/should-not-be-used.json' });
    await program.parseAsync(['--bonds', h.path, 'bonds', 'list'], { from: 'user' });
    assert.match(out.join(''), /2 bonds/);
  }, seedTwo);
});

test('bonds remove --yes removes one bond and says to forget the device on the phone', async () => {
  await withHarness(async (h) => {
    const text = await h.run(['bonds', 'remove', peerAddress(1).address.toLowerCase(), '--yes', '--bonds', h.path]);
    assert.match(text, /Removed the bond with 00:1B:DC:F0:00:01 \(public\)/);
    assert.match(text, /Forget This Device/);
    const s = await JsonFileBondStore.open(h.path, { readOnly: true });
    assert.deepEqual(s.list().map((b) => b.peer.address), [peerAddress(2).address]);
    await s.close();
  }, seedTwo);
});

test('bonds remove without --yes when stdin is not a TTY refuses, says to pass --yes, and changes nothing', async () => {
  await withHarness(async (h) => {
    const before = await readFile(h.path);
    await assert.rejects(h.run(['bonds', 'remove', peerAddress(1).address, '--bonds', h.path]), (e: unknown) => {
      assert.ok(e instanceof WearableHostError);
      assert.equal(e.layer, 'cli');
      assert.match(e.message, /stdin is not a terminal\. Pass --yes/);
      return true;
    });
    assert.deepEqual(await readFile(h.path), before);
    assert.deepEqual(h.questions, []);
  }, seedTwo);
});

test('bonds remove on a TTY asks first: "no" keeps the bond, "yes" removes it', async () => {
  await withHarness(async (h) => {
    const before = await readFile(h.path);
    const no = await h.run(['bonds', 'remove', peerAddress(2).address, '--bonds', h.path], { isInteractive: () => true });
    assert.match(no, /Nothing removed/);
    assert.match(h.questions[0] ?? '', /Remove the bond with 00:1B:DC:F0:00:02 \(public\) from .*bonds\.json\? .*\[y\/N\]/);
    assert.deepEqual(await readFile(h.path), before);
    const yes = await h.run(['bonds', 'remove', peerAddress(2).address, '--bonds', h.path], { isInteractive: () => true, confirm: async () => true });
    assert.match(yes, /Removed the bond with 00:1B:DC:F0:00:02/);
    const s = await JsonFileBondStore.open(h.path, { readOnly: true });
    assert.equal(s.get(peerAddress(2)), undefined);
    await s.close();
  }, seedTwo);
});

test('bonds remove accepts a private address the bond IRK resolves, and reports an unknown address', async () => {
  const rng = seededRandom('cli-rpa');
  const irk = generateIrk(rng);
  await withHarness(
    async (h) => {
      const rpa = generateRpa(irk, rng);
      assert.match(await h.run(['bonds', 'remove', rpa.address, '--yes', '--bonds', h.path]), /Removed the bond with 00:1B:DC:F0:00:03 \(public\)/);
      await assert.rejects(h.run(['bonds', 'remove', '11:22:33:44:55:66', '--yes', '--bonds', h.path]), /no bond with 11:22:33:44:55:66 in .*bonds list/);
      await assert.rejects(h.run(['bonds', 'remove', 'nonsense', '--yes', '--bonds', h.path]), /not a Bluetooth address/);
    },
    async (s) => {
      await s.put(minimalBond(3, { peerIrk: irk }));
    },
  );
});

test('bonds remove asks for --type when a public and a random bond share the address', async () => {
  await withHarness(
    async (h) => {
      await assert.rejects(h.run(['bonds', 'remove', 'C0:00:00:00:00:01', '--yes', '--bonds', h.path]), /--type public or --type random/);
      await h.run(['bonds', 'remove', 'C0:00:00:00:00:01', '--type', 'random', '--yes', '--bonds', h.path]);
      const s = await JsonFileBondStore.open(h.path, { readOnly: true });
      assert.deepEqual(s.list().map((b) => b.peer.type), ['public']);
      await s.close();
    },
    async (s) => {
      await s.put(minimalBond(1, { peer: { type: 'public', address: 'C0:00:00:00:00:01' } }));
      await s.put(minimalBond(2, { peer: { type: 'random', address: 'C0:00:00:00:00:01' } }));
    },
  );
});

test('bonds remove while wearable-host runs fails with the lock error naming the pid', async () => {
  await withHarness(async (h) => {
    const running = await JsonFileBondStore.open(h.path);
    try {
      await assert.rejects(h.run(['bonds', 'remove', peerAddress(1).address, '--yes', '--bonds', h.path]), (e: unknown) => {
        assert.ok(e instanceof BondStoreError);
        assert.equal(e.code, 'locked');
        assert.match(e.message, new RegExp(`process \\(it is already open\\)|kill ${process.pid}`));
        return true;
      });
    } finally {
      await running.close();
    }
  }, seedTwo);
});

test('bonds clear refuses without --yes off a TTY, and with --yes removes every bond but keeps our identity', async () => {
  await withHarness(async (h) => {
    await assert.rejects(h.run(['bonds', 'clear', '--bonds', h.path]), /Pass --yes to remove every bond/);
    const text = await h.run(['bonds', 'clear', '--yes', '--bonds', h.path]);
    assert.match(text, /Removed 2 bonds from .* \(our identity address and IRK are kept\)/);
    const s = await JsonFileBondStore.open(h.path, { readOnly: true });
    assert.equal(s.list().length, 0);
    assert.deepEqual(s.getLocalIdentity(), LOCAL);
    await s.close();
    assert.match(await h.run(['bonds', 'clear', '--yes', '--bonds', h.path]), /nothing to clear/);
  }, seedTwo);
});

test('bonds clear on a TTY asks with the count and keeps everything on "no"', async () => {
  await withHarness(async (h) => {
    assert.match(await h.run(['bonds', 'clear', '--bonds', h.path], { isInteractive: () => true }), /Nothing removed/);
    assert.match(h.questions[0] ?? '', /Remove all 2 bonds from .*\[y\/N\]/);
    const s = await JsonFileBondStore.open(h.path, { readOnly: true });
    assert.equal(s.list().length, 2);
    await s.close();
  }, seedTwo);
});
