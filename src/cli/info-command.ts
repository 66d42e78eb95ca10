/**
 * `wearable-host info --port PATH [--json]`: brings the controller up and prints who it is:
 * version, company, Zephyr vendor platform/variant, identity address, buffer sizes and the LE
 * features that matter here. `--sim` asks the embedded virtual controller instead.
 */
import type { Command } from 'commander';
import { Hci } from '../hci/driver.js';
import type { Transport } from '../hci/transport.js';
import { createMemoryTransportPair } from '../hci/memory-transport.js';
import { VirtualAir } from '../sim/air.js';
import { RealClock } from '../util/clock.js';
import { WearableHostError } from '../util/errors.js';
import { addPortOptions, makeLogger } from './common.js';
import { controllerOption, parseIntOption } from './options.js';
import type { FirmwareName } from '../sim/firmware.js';
import { openPort } from '../lib/session.js';

interface InfoOptions {
  port?: string;
  sim?: boolean;
  baud: string;
  rtscts: boolean;
  chunkSize: string;
  json?: boolean;
  logLevel: string;
  controller: string;
}

export function registerInfoCommand(program: Command, out: (text: string) => void = (t) => void process.stdout.write(t)): Command {
  const cmd = program.command('info').description('bring the controller up and print its identity, buffers and LE features');
  addPortOptions(cmd, 'the DK\'s serial port or tcp://host:port');
  return cmd
    .option('--sim', 'ask the embedded virtual controller')
    .addOption(controllerOption('with --sim: the firmware the virtual controller runs'))
    .option('--json', 'machine-readable output')
    .option('--log-level <level>', 'log level', 'warn')
    .action(async (opts: InfoOptions) => {
      const log = makeLogger(opts.logLevel, false);
      const clock = new RealClock();
      let transport: Transport;
      let air: VirtualAir | undefined;
      if (opts.sim) {
        air = new VirtualAir({ clock, log, firmware: opts.controller as FirmwareName });
        const [host, ctrl] = createMemoryTransportPair('host', 'virtual-nrf5340');
        air.createController({ name: 'virtual-nrf5340' }).attach(ctrl);
        transport = host;
      } else {
        if (!opts.port) throw new WearableHostError('cli', 'info needs --port PATH (the DK\'s serial port) or --sim');
        transport = await openPort(opts.port, {
          baud: parseIntOption('--baud', opts.baud, 1200, 12_000_000),
          rtscts: opts.rtscts,
          chunkSize: parseIntOption('--chunk-size', opts.chunkSize, 1, 4096),
          log,
        });
      }
      const hci = new Hci(transport, { clock, log });
      try {
        const info = await hci.init();
        out(opts.json ? JSON.stringify(info.toJSON(), null, 2) + '\n' : info.toText() + '\n');
      } finally {
        hci.close();
        await transport.close().catch(() => undefined);
        air?.close();
      }
    });
}
