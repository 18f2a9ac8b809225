/**
 * The plugin interface. A protocol is a plain object: its name, its RFC, its well-known port,
 * the command-line options it adds, and functions that serve one TCP connection and answer
 * one UDP datagram. It knows nothing about listening, limits, guards or logging; the
 * framework (server.ts, datagram-server.ts) does that, and turns what happens into events.
 */
import type { InferredOptionTypes, Options } from 'yargs';
import type { Connection } from './connection.js';

/** What the framework lends a protocol. Injected, so tests can fix the clock. */
export interface ProtocolContext {
  now(): Date;
  /**
   * Aborted when the server begins to shut down. A protocol that would go on forever (chargen)
   * listens to it and closes its connections, so that they end before the shutdown deadline.
   */
  shutdown: AbortSignal;
}

/** Serves one accepted connection. Called once per connection, when it becomes active. */
export type ConnectionHandler = (conn: Connection) => void;

/** Answers one UDP datagram: the reply, or undefined to send nothing. */
export type DatagramHandler = (request: Buffer) => Buffer | undefined;

export interface ProtocolHandlers {
  tcp: ConnectionHandler;
  /** Absent when the protocol's RFC defines no UDP service. */
  udp?: DatagramHandler;
}

export interface Protocol {
  /** The command name: `lab-server <name>`. */
  readonly name: string;
  readonly rfc: number;
  /** One line for `--help`. */
  readonly summary: string;
  /** The port its RFC assigns. `lab-server all --base-port B` serves it at B + this port. */
  readonly wellKnownPort: number;
  /** The port `lab-server <name>` listens on without --port. Below 1024 it needs root. */
  readonly defaultPort: number;
  /**
   * True when the server closes first (an active close, as daytime does). Such protocols
   * end a connection with `conn.close()`, and the close-behaviour switches apply to them.
   */
  readonly closesFirst: boolean;
  /** Command-line options of this protocol only, as yargs option definitions. */
  readonly options: Readonly<Record<string, Options>>;
  createHandlers(settings: Readonly<Record<string, unknown>>, context: ProtocolContext): ProtocolHandlers;
}

interface ProtocolSpec<O extends Record<string, Options>> extends Omit<Protocol, 'options' | 'createHandlers'> {
  readonly options: O;
  /** `settings` holds the values of `options`, typed from their definitions. */
  createHandlers(settings: InferredOptionTypes<O>, context: ProtocolContext): ProtocolHandlers;
}

/**
 * Declares a protocol with typed settings. The registry holds protocols of different
 * option types side by side, so this is the one place where the settings type is erased:
 * yargs has already checked the values against `options` before `createHandlers` runs.
 */
export function defineProtocol<O extends Record<string, Options>>(spec: ProtocolSpec<O>): Protocol {
  return spec as unknown as Protocol;
}
