/**
 * The plugin interface. A protocol is a plain object: its name, its RFC, its well-known port,
 * the command-line options it adds, and a function that serves one connection.
 * It knows nothing about listening, limits or shutdown; the framework (server.ts) does that.
 */
import type { InferredOptionTypes, Options } from 'yargs';
import type { Connection } from './connection.js';

/** What the framework lends a protocol. Injected, so tests can fix the clock. */
export interface ProtocolContext {
  now(): Date;
}

/** Serves one accepted connection. Called once per connection, when it becomes active. */
export type ConnectionHandler = (conn: Connection) => void;

export interface Protocol {
  /** The command name: `lab-server <name>`. */
  readonly name: string;
  readonly rfc: number;
  /** One line for `--help`. */
  readonly summary: string;
  /** The well-known port. Below 1024 it needs root; users pass `--port`. */
  readonly defaultPort: number;
  /**
   * True when the server closes first (an active close, as daytime does). Such protocols
   * end a connection with `conn.close()`, and the close-behaviour switches apply to them.
   */
  readonly closesFirst: boolean;
  /** Command-line options of this protocol only, as yargs option definitions. */
  readonly options: Readonly<Record<string, Options>>;
  createHandler(settings: Readonly<Record<string, unknown>>, context: ProtocolContext): ConnectionHandler;
}

interface ProtocolSpec<O extends Record<string, Options>> extends Omit<Protocol, 'options' | 'createHandler'> {
  readonly options: O;
  /** `settings` holds the values of `options`, typed from their definitions. */
  createHandler(settings: InferredOptionTypes<O>, context: ProtocolContext): ConnectionHandler;
}

/**
 * Declares a protocol with typed settings. The registry holds protocols of different
 * option types side by side, so this is the one place where the settings type is erased:
 * yargs has already checked the values against `options` before `createHandler` runs.
 */
export function defineProtocol<O extends Record<string, Options>>(spec: ProtocolSpec<O>): Protocol {
  return spec as unknown as Protocol;
}
