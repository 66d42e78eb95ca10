/**
 * Pieces every CLI command shares: the serial port options and the logger.
 */
import type { Command } from 'commander';
import { createLogger, type Logger, type LogLevel } from '../util/log.js';
import { LOG_LEVELS, parseChoice } from './options.js';

/** Serial options shared by every command that opens a DK. */
export function addPortOptions(cmd: Command, portHelp: string): Command {
  return cmd
    .option('--port <path>', portHelp)
    .option('--baud <n>', 'UART baud rate (hci_uart on the nRF5340-DK: 1000000)', '1000000')
    .option('--no-rtscts', 'turn RTS/CTS hardware flow control off (on by default; hci_uart requires it)')
    .option('--chunk-size <bytes>', 'largest single write to the port (J-Link VCOM truncates long writes)', '64');
}

export function makeLogger(levelText: string, json: boolean | undefined): Logger {
  const level = parseChoice('--log-level', levelText, LOG_LEVELS) as LogLevel;
  return createLogger({ level, ...(json ? { pretty: false } : {}) });
}

