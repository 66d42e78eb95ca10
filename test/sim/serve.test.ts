import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { TcpTransport } from '../../src/hci/tcp-transport.js';
import { SerialTransport } from '../../src/hci/serial-transport.js';
import { H4Framer, H4Type, encodeH4 } from '../../src/hci/h4.js';
import { encodeCommand, type CommandName, type CommandParams } from '../../src/hci/commands.js';
import { decodeEvent, type HciEvent } from '../../src/hci/events.js';
import type { Transport } from '../../src/hci/transport.js';
import { fromHex, toHex } from '../../src/util/bytes.js';
import { serveControllers, type ServedControllers } from '../../src/sim/serve.js';
import { silentLogger as silent } from '../../src/util/log.js';
import { registerSimControllerCommand } from '../../src/cli/sim-controller-command.js';

const RESET = fromHex('01030c00');
const RESET_COMPLETE = '040e0401030c00';

/** A host on a real transport: raw bytes in, decoded packets kept, waits in real time with a deadline. */
class WireHost {
  bytes: number[] = [];
  events: HciEvent[] = [];
  private readonly framer = new H4Framer({
    direction: 'host',
    onPacket: (p) => {
      if (p[0] !== H4Type.Event) return;
      const d = decodeEvent(p.subarray(1));
      if (d.ok && d.event) this.events.push(d.event);
    },
  });
  constructor(readonly t: Transport) {
    t.on('data', (chunk) => {
      this.bytes.push(...chunk);
      this.framer.push(chunk);
    });
  }
  async until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  async cmd<N extends CommandName>(name: N, params: CommandParams<N>): Promise<void> {
    const n = this.events.filter((e) => e.name === 'CommandComplete' || e.name === 'CommandStatus').length;
    await this.t.write(encodeH4(H4Type.Command, encodeCommand(name, params)));
    await this.until(() => this.events.filter((e) => e.name === 'CommandComplete' || e.name === 'CommandStatus').length > n, `answer to ${name}`);
  }
}

async function withServed(opts: Parameters<typeof serveControllers>[0], fn: (s: ServedControllers) => Promise<void>): Promise<void> {
  const s = await serveControllers(opts);
  try {
    await fn(s);
  } finally {
    await s.close();
  }
}

test('over TCP a client connects, sends HCI Reset and gets 04 0e 04 01 03 0c 00; one line per controller', () =>
  withServed({ count: 2, tcp: 0 }, async (s) => {
    assert.equal(s.lines.length, 2);
    for (const [i, line] of s.lines.entries()) assert.equal(line, `TCP 127.0.0.1:${s.controllers[i]!.port}`);
    const t = await TcpTransport.connect(`tcp://127.0.0.1:${s.controllers[1]!.port}`);
    try {
      const host = new WireHost(t);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(host.bytes.length, 0, 'nothing before the host speaks');
      await t.write(RESET);
      await host.until(() => host.bytes.length >= 7, 'Reset complete');
      assert.equal(toHex(Uint8Array.from(host.bytes)), RESET_COMPLETE);
    } finally {
      await t.close();
    }
  }));

test('a second host connection replaces the first and resets nothing by itself', () =>
  withServed({ count: 1, tcp: 0 }, async (s) => {
    const url = `tcp://127.0.0.1:${s.controllers[0]!.port}`;
    const a = await TcpTransport.connect(url);
    const ha = new WireHost(a);
    await ha.cmd('Reset', {});
    await ha.cmd('ZephyrWriteBdAddr', { address: '11:22:33:44:55:66' });
    const closed = new Promise<void>((r) => a.once('close', () => r()));
    const b = await TcpTransport.connect(url);
    try {
      await closed;
      const hb = new WireHost(b);
      await hb.cmd('ReadBdAddr', {});
      const cc = hb.events.find((e) => e.name === 'CommandComplete');
      assert.ok(cc && cc.name === 'CommandComplete');
      assert.equal(toHex(cc.params.returnParameters), '00665544332211');
    } finally {
      await b.close();
    }
  }));

test('two hosts over TCP share one air: an advertisement from one is seen by the other', () =>
  withServed({ count: 2, tcp: 0, seed: 'serve-air' }, async (s) => {
    const [t0, t1] = await Promise.all(s.controllers.map((c) => TcpTransport.connect(`tcp://127.0.0.1:${c.port}`)));
    try {
      const adv = new WireHost(t0!);
      const scn = new WireHost(t1!);
      for (const h of [adv, scn]) {
        await h.cmd('Reset', {});
        await h.cmd('SetEventMask', { mask: 0x3fffffffffffffffn });
        await h.cmd('LeSetRandomAddress', { address: h === adv ? 'C1:00:00:00:00:01' : 'C1:00:00:00:00:02' });
      }
      await adv.cmd('LeSetAdvertisingParameters', { intervalMin: 0x20, intervalMax: 0x20, advertisingType: 0, ownAddressType: 1, peerAddressType: 0, peerAddress: '00:00:00:00:00:00', channelMap: 7, filterPolicy: 0 });
      await adv.cmd('LeSetAdvertisingData', { data: fromHex('020106') });
      await adv.cmd('LeSetAdvertisingEnable', { enable: true });
      await scn.cmd('LeSetScanParameters', { scanType: 0, interval: 0x10, window: 0x10, ownAddressType: 1, filterPolicy: 0 });
      await scn.cmd('LeSetScanEnable', { enable: true, filterDuplicates: true });
      await scn.until(() => scn.events.some((e) => e.name === 'LeAdvertisingReport'), 'an advertising report');
      const r = scn.events.find((e) => e.name === 'LeAdvertisingReport');
      assert.ok(r && r.name === 'LeAdvertisingReport');
      assert.equal(r.params.reports[0]!.address, 'C1:00:00:00:00:01');
    } finally {
      await Promise.all([t0!.close(), t1!.close()]);
    }
  }));

const hasSocat = spawnSync('socat', ['-V'], { stdio: 'ignore' }).status === 0;

test('over a pty (socat) the host opens /dev/pts/N like a DK port and HCI Reset is answered', { skip: hasSocat ? false : 'socat is not installed (apt-get install socat)' }, () =>
  withServed({ count: 2, pty: true }, async (s) => {
    assert.equal(s.lines.length, 2);
    for (const c of s.controllers) {
      assert.match(c.line, /^PTY \/dev\/pts\/\d+$/);
      assert.equal(c.line, `PTY ${c.pty}`);
    }
    // Open, reset, close, and open again: the bridge survives a host closing the port.
    for (let round = 0; round < 2; round++) {
      const t = await SerialTransport.open(s.controllers[0]!.pty!, { rtscts: false, baudRate: 1_000_000 });
      try {
        const host = new WireHost(t);
        await t.write(RESET);
        await host.until(() => host.bytes.length >= 7, 'Reset complete over the pty');
        assert.equal(toHex(Uint8Array.from(host.bytes.slice(-7))), RESET_COMPLETE);
      } finally {
        await t.close();
      }
    }
    const links = s.controllers.map((c) => c.ptyLink!);
    await s.close();
    assert.ok(links.every((l) => !existsSync(l)), 'pty links removed on close');
  }));

test('over a pty, serving resolves only once socat is connected to each controller, so a host that connects over TCP right after is not displaced by it', { skip: hasSocat ? false : 'socat is not installed (apt-get install socat)' }, async () => {
  // A socat that is slow to connect (a loaded machine): it makes the pty at once and reaches the
  // TCP port half a second later.
  const dir = mkdtempSync(join(tmpdir(), 'wh-slow-socat-'));
  const slowSocat = join(dir, 'socat');
  const connect = join(dir, 'connect');
  writeFileSync(slowSocat, `#!/bin/sh\nprintf '#!/bin/sh\\nsleep 0.5\\nexec socat - %s\\n' "$2" > ${connect}\nchmod +x ${connect}\nexec socat "$1" EXEC:${connect}\n`, { mode: 0o755 });
  try {
    await withServed({ count: 2, pty: true, socatPath: slowSocat }, async (s) => {
      for (const c of s.controllers) assert.ok(c.controller.attachedTransport, `${c.controller.name}: socat's connection is attached when serving resolves`);
      const t = await TcpTransport.connect(`tcp://127.0.0.1:${s.controllers[1]!.port}`);
      try {
        const host = new WireHost(t);
        await t.write(RESET);
        await host.until(() => host.bytes.length >= 7, 'Reset complete over TCP');
        assert.equal(toHex(Uint8Array.from(host.bytes.slice(-7))), RESET_COMPLETE);
        await new Promise((r) => setTimeout(r, 700));
        assert.equal(t.isOpen, true, 'the TCP host keeps the controller');
      } finally {
        await t.close();
      }
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without socat, --pty fails with a message that says how to install it', async () => {
  await assert.rejects(serveControllers({ count: 1, pty: true, socatPath: '/nonexistent/socat' }), (err: Error) => {
    assert.match(err.message, /socat is not installed/);
    assert.match(err.message, /apt-get install socat/);
    return true;
  });
});

test('sim-controller --tcp 0 --count 2 prints one TCP line per controller and serves until stopped', async () => {
  let out = '';
  let stop!: (sig: string) => void;
  let served: ServedControllers | undefined;
  const program = new Command().exitOverride();
  registerSimControllerCommand(program, {
    out: (t) => {
      out += t;
    },
    logger: () => silent(),
    waitForStop: () => new Promise<string>((r) => (stop = r)),
    onServing: (s) => {
      served = s;
    },
  });
  const run = program.parseAsync(['node', 'wearable-host', 'sim-controller', '--tcp', '0', '--count', '2', '--seed', 'cli']);
  while (!served) await new Promise((r) => setTimeout(r, 5));
  const lines = out.trim().split('\n');
  assert.equal(lines.length, 2);
  assert.ok(lines.every((l) => /^TCP 127\.0\.0\.1:\d+$/.test(l)), out);
  const t = await TcpTransport.connect(`tcp://${lines[0]!.slice(4)}`);
  const host = new WireHost(t);
  await t.write(RESET);
  await host.until(() => host.bytes.length >= 7, 'Reset complete');
  assert.equal(toHex(Uint8Array.from(host.bytes)), RESET_COMPLETE);
  await t.close();
  stop('SIGINT');
  await run;
  await assert.rejects(TcpTransport.connect(`tcp://${lines[0]!.slice(4)}`, { connectTimeoutMs: 1000 }));
});

test('sim-controller refuses to start without --pty or --tcp, or with a bad count', async () => {
  for (const args of [[], ['--tcp', '0', '--count', '0'], ['--tcp', 'x'], ['--tcp', '0', '--log-level', 'loud']]) {
    const program = new Command().exitOverride();
    registerSimControllerCommand(program, { out: () => undefined, logger: () => silent(), waitForStop: () => Promise.resolve('SIGINT') });
    await assert.rejects(program.parseAsync(['node', 'wearable-host', 'sim-controller', ...args]), /--pty|--tcp|--count|--log-level/);
  }
});

