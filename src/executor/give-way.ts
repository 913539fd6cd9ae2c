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

export class GiveWay {
  private since = performance.now();

  /** `signal`: the statement's cancel; its 57014 is thrown after a turn in which it fired. */
  constructor(private readonly signal?: AbortSignal) {}

  /** Call often inside a loop: resolves at once, or after one turn of the event loop when the slice is spent. */
  maybe(): Promise<void> | undefined {
    if (performance.now() - this.since < SLICE_MS) return undefined;
    return nextTurn().then(() => {
      this.since = performance.now();
      throwIfCanceled(this.signal);
    });
  }
}
