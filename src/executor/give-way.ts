/**
 * Long loops on the shared event loop (grouping, encoding, queueing a big COMMIT's writes, loading
 * and emitting an overlay read) give way to other sessions every few milliseconds, so one session's
 * big statement never stalls the rest. A cancel can only arrive while the loop has given way, so a
 * loop with its statement's signal stops (57014) right after the turn in which it fired.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { throwIfCanceled } from '../session/cancel.js';

/** How long a loop may run before it lets other work in. */
const SLICE_MS = 4;

/** Loop iterations between looks at the clock (`at`): one look costs about as much as a cheap iteration. */
const STRIDE = 256;

/**
 * The statement's cancel, or a getter for it: a session makes its statement's signal only when asked
 * (a fast statement never pays for one), and a loop needs it only once it has given way.
 */
export type CancelSignal = AbortSignal | (() => AbortSignal | undefined) | undefined;

export class GiveWay {
  private since = performance.now();

  /** `signal`: the statement's cancel; its 57014 is thrown after a turn in which it fired. */
  constructor(private readonly signal?: CancelSignal) {}

  /** Call often inside a loop: resolves at once, or after one turn of the event loop when the slice is spent. */
  maybe(): Promise<void> | undefined {
    if (performance.now() - this.since < SLICE_MS) return undefined;
    return nextTurn().then(() => {
      this.since = performance.now();
      throwIfCanceled(typeof this.signal === 'function' ? this.signal() : this.signal);
    });
  }

  /** maybe() at every STRIDE-th iteration `i` of a loop, undefined at the others. */
  at(i: number): Promise<void> | undefined {
    return i % STRIDE === STRIDE - 1 ? this.maybe() : undefined;
  }
}
