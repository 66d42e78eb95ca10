/**
 * SIGTERM (a service manager) and SIGHUP (the terminal closed) stop the real CLI the way Ctrl-C
 * does: advertising off, every link disconnected (0x15 Remote Device Terminated due to Power Off),
 * the port closed, the btsnoop trace complete up to its last record, exit code 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveControllers } from '../../src/sim/serve.js';
import { TcpTransport } from '../../src/hci/tcp-transport.js';
import { Central } from '../../src/central/central.js';
import { MemoryBondStore } from '../../src/bonds/memory.js';
import { readBtsnoop } from '../../src/hci/btsnoop.js';
import { RealClock } from '../../src/util/clock.js';
import { seededRandom } from '../../src/util/random.js';
import { silentLogger } from '../../src/util/log.js';
import { startCli } from './fixtures/cli-process.js';

for (const signal of ['SIGTERM', 'SIGHUP'] as const) {
  test(`${signal} stops like Ctrl-C: advertising off, the phone disconnected with 0x15, a whole btsnoop trace, exit 0`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wh-signal-'));
    const served = await serveControllers({ count: 2, tcp: 0, seed: `signal-${signal}`, log: silentLogger() });
    const trace = join(dir, 'trace.btsnoop');
    const cli = startCli(['--port', `tcp://127.0.0.1:${served.controllers[0]!.port}`, '--bonds', join(dir, 'bonds.json'), '--btsnoop', trace, '--name', 'Signal Band', '--log-json']);
    const transport = await TcpTransport.connect(`tcp://127.0.0.1:${served.controllers[1]!.port}`);
    const central = new Central({ transport, clock: new RealClock(), random: seededRandom('signal-phone'), log: silentLogger(), bonds: new MemoryBondStore() });
    try {
      await cli.waitFor(/is advertising/);
      await central.start();
      const reasons: number[] = [];
      central.on('disconnected', (_l, reason) => reasons.push(reason));
      await central.connect({ name: 'Signal Band' }, { timeoutMs: 10_000 });
      await cli.waitFor(/connected: /);
      cli.child.kill(signal);
      const r = await cli.exited;
      assert.equal(r.hung, false, cli.output());
      assert.equal(r.signal, null, `the CLI handled ${signal} instead of dying of it`);
      assert.equal(r.code, 0, cli.output());
      assert.match(cli.output(), new RegExp(`${signal}: stopping \\(advertising off, disconnecting`));
      for (let i = 0; i < 100 && reasons.length === 0; i++) await new Promise((res) => setTimeout(res, 20));
      assert.deepEqual(reasons, [0x15], 'the phone saw the link end with 0x15 Remote Device Terminated due to Power Off');
      const file = readBtsnoop(new Uint8Array(readFileSync(trace)));
      const hex = file.records.map((rec) => Buffer.from(rec.packet).toString('hex'));
      // Advertising is off at the end: stopped by the host, or by the controller when the phone connected
      // (one connection at a time) and not enabled again.
      const lastOn = hex.lastIndexOf('010a200101');
      assert.ok(lastOn >= 0, 'advertising was on');
      assert.ok(
        hex.slice(lastOn + 1).some((h) => h === '010a200100' || /^043e..0a00/.test(h) || /^043e..0100/.test(h)),
        'after the last LE Set Advertising Enable (on): a disable, or the connection that ended advertising',
      );
      assert.ok(hex.some((h) => /^01060403....15$/.test(h)), 'HCI Disconnect with reason 0x15 is in the trace');
      assert.ok(hex.some((h) => h.startsWith('0405')), 'the Disconnection Complete event is in the trace');
    } finally {
      cli.child.kill('SIGKILL');
      central.hci.close();
      await transport.close().catch(() => undefined);
      await served.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
