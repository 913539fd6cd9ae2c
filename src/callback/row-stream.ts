/**
 * A remote scan read from Redis while postgres_fdw fetches it: the reader (readTable) runs ahead of the
 * FETCHes by at most `highWater` rows plus one Redis page, then waits (ReadOptions.pace) until a FETCH
 * takes rows. So a cursor over a 1,000,000-field hash holds a bounded number of rows, not the key.
 */
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';

/** Rows read ahead before the reader waits: a few of postgres_fdw's fetches (fetch_size 100 by default). */
export const HIGH_WATER = 5000;

export class RowStream {
  private buf: Buffer[] = [];
  private head = 0;
  private done = false;
  private error: unknown;
  /** Resumes the paused reader. */
  private resume: (() => void) | undefined;
  /** Wakes a FETCH waiting for rows. */
  private wake: (() => void) | undefined;
  private readonly controller = new AbortController();

  constructor(private readonly highWater = HIGH_WATER) {}

  /** The reader's signal: fires when the cursor is closed (its transaction ended, the session left). */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  private get buffered(): number {
    return this.buf.length - this.head;
  }

  push(row: Buffer): void {
    this.buf.push(row);
  }

  /** For ReadOptions.pace: holds the reader while enough rows wait to be fetched. */
  readonly pace = (): Promise<void> | undefined => {
    this.wake?.();
    if (this.buffered < this.highWater || this.controller.signal.aborted) return undefined;
    return new Promise((resolve) => (this.resume = resolve));
  };

  /** Follows the reader: its end (or error) is what the last FETCH sees. */
  follow(reading: Promise<void>): void {
    reading.then(
      () => (this.done = true),
      (e: unknown) => {
        this.done = true;
        this.error = e;
      },
    ).finally(() => this.wake?.());
  }

  /**
   * Up to `n` rows, waiting for the reader as needed; fewer only at the end. `signal` (the FETCH's
   * cancel) stops the wait with 57014. A read error is raised here, to the FETCH that reaches it.
   */
  async take(n: number, signal?: AbortSignal): Promise<Buffer[]> {
    while (this.buffered < n && !this.done) {
      if (signal?.aborted) throw signal.reason as Error;
      this.resumeReader();
      await new Promise<void>((resolve) => {
        const onAbort = (): void => resolve();
        signal?.addEventListener('abort', onAbort, { once: true });
        this.wake = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
      });
      this.wake = undefined;
    }
    if (signal?.aborted) throw signal.reason as Error;
    if (this.buffered === 0 && this.error !== undefined) throw this.error;
    const rows = this.buf.slice(this.head, this.head + n);
    this.head += rows.length;
    // Drop what was fetched once it is most of the array, so the array does not grow with the key.
    if (this.head > 1024 && this.head * 2 > this.buf.length) {
      this.buf = this.buf.slice(this.head);
      this.head = 0;
    }
    if (this.buffered < this.highWater) this.resumeReader();
    return rows;
  }

  private resumeReader(): void {
    const r = this.resume;
    this.resume = undefined;
    r?.();
  }

  /** Stops the reader (it ends with 57014 at its next round trip, which nobody waits for). */
  close(): void {
    if (!this.controller.signal.aborted) this.controller.abort(new PgError(SqlState.QueryCanceled, 'cursor closed'));
    this.resumeReader();
  }
}
