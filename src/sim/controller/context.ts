/**
 * What a command handler of the virtual controller may use: the controller's public LE state, the
 * two ways to answer (Command Complete, Command Status), the open links, and the few private
 * values the handlers need. The handler tables (one module per area) build on this.
 */
import type { CommandName, CommandParams, CommandReturn } from '../../hci/commands.js';
import type { RandomSource } from '../../util/random.js';
import type { LinkEnd } from '../air.js';
import type { VirtualController } from '../controller.js';

/** Handles one decoded command; `opcode` is for the Command Status. */
export type Handler<N extends CommandName> = (params: CommandParams<N>, opcode: number) => void;
export type HandlerTable = { [N in CommandName]?: Handler<N> };

export interface CommandContext {
  readonly ctrl: VirtualController;
  /** Command Complete for `name`; without `ret`, zero-filled return parameters after the status. */
  complete<N extends CommandName>(name: N, status: number, ret?: CommandReturn<N>): void;
  /** Command Status for `opcode`. */
  status(opcode: number, status: number): void;
  /** The local end of the connection behind `handle`. */
  link(handle: number): LinkEnd | undefined;
  /** HCI Reset of the LE state. */
  reset(): void;
  /** Source of LE Rand output. */
  readonly random: RandomSource;
  readonly falSize: number;
  readonly rlSize: number;
  /** False when a public address was programmed: Zephyr Read Static Addresses reports none. */
  hasStaticAddress(): boolean;
}
