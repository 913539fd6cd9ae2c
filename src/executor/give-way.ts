/**
 * Long loops on the shared event loop (grouping, encoding, queueing a big COMMIT's writes) give way
 * to other sessions every few milliseconds, so one session's big statement never stalls the rest.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';

/** How long a loop may run before it lets other work in. */
const SLICE_MS = 4;

export class GiveWay {
  private since = performance.now();

  /** Call often inside a loop: resolves at once, or after one turn of the event loop when the slice is spent. */
  maybe(): Promise<void> | undefined {
    if (performance.now() - this.since < SLICE_MS) return undefined;
    return nextTurn().then(() => {
      this.since = performance.now();
    });
  }
}
