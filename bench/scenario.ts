/**
 * What a benchmark scenario is. Each scenario lives in its own file and has two halves:
 *
 * - `load(ctx)` runs inside the load-generator process (bench/load-process.ts), pinned to its own
 *   CPU, and drives one server that is already listening on 127.0.0.1:`ctx.port`.
 * - the rest (`metric`, `target`, ...) tells the runner (bench/run.ts) how to compare the
 *   lab-server's figures with the baseline's.
 *
 * Every load is bounded twice: in count (connections, bytes) and in time (`ctx.durationMs`),
 * and stops by itself.
 */

export type ProtocolName = 'echo' | 'daytime';
export type ServerKind = 'lab-server' | 'baseline';

export interface LoadContext {
  /** Which server is under test, for a scenario whose load differs by server (the startup scenarios). */
  kind: ServerKind;
  port: number;
  /** The server's process id, so the load generator can read its CPU time and RSS from /proc. */
  serverPid: number;
  /** Untimed warm-up, so the server's JIT compiler has settled before we measure. */
  warmupMs: number;
  durationMs: number;
}

/** What one run of a scenario measured. `value` is the headline figure, in `metric.unit`. */
export interface Measurement {
  value: number;
  /** Operations done while measuring (bytes, round trips, connections), for CPU time per operation. */
  operations?: number;
  /** Server CPU time (user + system) while measuring, in ms. */
  serverCpuMs?: number;
  /** How long the measuring window lasted, in ms. */
  windowMs?: number;
  /** Secondary figures (latency percentiles, RSS), shown in the details column. */
  details?: Record<string, number>;
}

/**
 * The targets: `min-ratio` (lab-server / baseline must be at least `value`, for rates),
 * `max-ratio` (at most `value`, for memory) or `max-value` (lab-server's own figure at most `value`).
 */
export type Target = { kind: 'min-ratio'; value: number } | { kind: 'max-ratio'; value: number } | { kind: 'max-value'; value: number };

export interface Scenario {
  /** Used on the command line: `npm run bench -- echo-bulk-1`. */
  name: string;
  summary: string;
  protocol: ProtocolName;
  /**
   * Flags lab-server needs for this load beyond its defaults: its connection limits
   * (--max-connections 1024, --max-per-source a quarter of that) would otherwise refuse a load
   * of more clients, which all come from 127.0.0.1.
   */
  labServerFlags?: readonly string[];
  /**
   * Measure a feature's cost instead: the ratio's other side is lab-server itself, run with these
   * flags, rather than the bare baseline server.
   */
  baseline?: { labServerFlags: readonly string[] };
  /** Keep a page reading lab-server's --dashboard event stream during the load, as a projected page would. */
  watchDashboard?: boolean;
  /** Environment variables for both servers alike (say, malloc tunables): a controlled condition, not a flag. */
  serverEnv?: Readonly<Record<string, string>>;
  metric: { name: string; unit: string };
  /** What one operation is, for the CPU-per-operation column ("round trip", "MB"...). */
  operation?: { name: string; perUnit: number };
  /** None for a reference comparison that no target of the issue applies to. */
  target?: Target;
  /** Runs per server. Memory scenarios are slow and steady, so they run fewer times. */
  runs?: { full: number; quick: number };
  /** Whether warm-up and duration apply; memory scenarios set their own time limits. */
  timed: boolean;
  /** A longer warm-up than the runner's, for a load that takes longer to reach its steady state. */
  warmupMs?: number;
  load(ctx: LoadContext): Promise<Measurement>;
}
