/**
 * Cancelling the proxy's own part of a statement: the Redis reads and the work around them, which
 * upstream's backend knows nothing about. Relaying a CancelRequest upstream (as libpq does) stops only
 * what upstream runs; this module stops what the proxy runs.
 *
 * - `CancelRegistry` maps the BackendKeyData a session relayed to its client onto that session, so a
 *   CancelRequest arriving on a fresh connection finds the statement it is meant for.
 * - `StatementScope` is one intercepted message's AbortSignal. A CancelRequest aborts it, and so does
 *   the session's `statement_timeout`, which is learnt lazily: only a statement still running after
 *   `PROBE_AFTER_MS` asks upstream for its current value, so the common, fast statement pays nothing.
 * - `abortable` makes any wait (a Redis reply, a pooled client) give up as soon as the signal fires.
 *
 * The abort reason is a PgError 57014 worded as Postgres words it; the interceptor sends it through
 * `failWith`, so upstream's transaction state afterwards is what a cancelled Postgres statement leaves.
 */
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';

export const canceledByUser = (): PgError => new PgError(SqlState.QueryCanceled, 'canceling statement due to user request');
export const canceledByTimeout = (): PgError => new PgError(SqlState.QueryCanceled, 'canceling statement due to statement timeout');

/**
 * How long a statement runs in the proxy before it asks upstream for `statement_timeout`. Long enough
 * that a point lookup on a loaded machine never pays the extra round trip (the syscall budget test
 * counts it); a timeout shorter than this fires at this mark instead.
 */
export const PROBE_AFTER_MS = 250;

/** Sessions by the BackendKeyData (process id and secret key) their clients were given. */
export class CancelRegistry {
  private readonly sessions = new Map<string, () => void>();

  /** `key` is BackendKeyData's payload; `cancel` stops whatever the session's statement waits on. */
  register(key: Buffer, cancel: () => void): void {
    this.sessions.set(key.toString('hex'), cancel);
  }

  unregister(key: Buffer): void {
    this.sessions.delete(key.toString('hex'));
  }

  /**
   * `key` is a CancelRequest's process id and secret key. True when a session of this proxy holds it
   * (the secret must match byte for byte, as Postgres checks it).
   */
  cancel(key: Buffer): boolean {
    const f = this.sessions.get(key.toString('hex'));
    f?.();
    return f !== undefined;
  }

  get size(): number {
    return this.sessions.size;
  }
}

/**
 * The scope of one intercepted client message. `probe` asks upstream for the session's
 * statement_timeout in milliseconds (undefined when it can't tell); it runs at most once, and only
 * when the statement is still running after PROBE_AFTER_MS.
 */
export class StatementScope {
  private readonly controller = new AbortController();
  private readonly started = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private ended = false;

  constructor(probe?: () => Promise<number | undefined>) {
    if (probe) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        probe().then(
          (ms) => this.armTimeout(ms),
          () => {},
        );
      }, PROBE_AFTER_MS);
    }
  }

  /** Made on first use: an AbortSignal costs microseconds, and most statements never look at theirs. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Whether the statement was cancelled (without making its signal). */
  get canceled(): boolean {
    return this.aborted;
  }

  private aborted = false;

  cancel(reason: PgError = canceledByUser()): void {
    if (this.ended || this.aborted) return;
    this.aborted = true;
    this.controller.abort(reason);
  }

  /** The statement's proxy-side work is over: nothing can abort it any more. */
  end(): void {
    this.ended = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private armTimeout(ms: number | undefined): void {
    if (this.ended || ms === undefined || ms <= 0) return;
    const left = ms - (Date.now() - this.started);
    if (left <= 0) return this.cancel(canceledByTimeout());
    this.timer = setTimeout(() => this.cancel(canceledByTimeout()), left);
  }
}

/** Signals whose abort has failed a statement (so a pending cancel has been used up). */
const tookEffect = new WeakSet<AbortSignal>();

/** Whether the signal's abort made some wait fail (rather than firing after the work was done). */
export function cancelTookEffect(signal: AbortSignal): boolean {
  return tookEffect.has(signal);
}

/**
 * Settles as `p` does, unless `signal` aborts first: then rejects at once with its reason. `p` itself
 * runs on (a Redis reply still arrives and is dropped), so this is for waits whose late result is
 * harmless — reads, not writes.
 */
export function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) {
    p.catch(() => {});
    tookEffect.add(signal);
    return Promise.reject(signal.reason as Error);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      tookEffect.add(signal);
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e as Error);
      },
    );
  });
}

/** Throws the signal's reason (a 57014 PgError) when it has fired. */
export function throwIfCanceled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    tookEffect.add(signal);
    throw signal.reason as Error;
  }
}

/**
 * statement_timeout as `current_setting` shows it (`0`, `250ms`, `5s`, `2min`, `1h`, `1d`; a bare
 * number is milliseconds) → milliseconds; undefined when it can't be read.
 */
export function parseStatementTimeout(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*$/.exec(text);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = { us: 0.001, ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 'ms'] ?? 1;
  return n * unit;
}
