/**
 * Classification of big statement texts on a worker thread. Parsing and scanning cost about 50 ms a
 * megabyte in the WASM parser; on the event loop a 20 MB literal would hold up every session for a
 * second. Off it, the session that sent the text waits alone (its messages stay in order) while the
 * others go on. One worker, created on first use, serves the process; its requests queue in order.
 */
import { Worker } from 'node:worker_threads';
import type { WorkerReply, WorkerRequest } from './classify-text.js';

type Pending = { resolve: (r: WorkerReply) => void };

/** Texts from this size up end the worker after use, returning its memory (a new one starts on demand). */
const RECYCLE_BYTES = 32 * 1024 * 1024;

export class OffThreadClassifier {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** A request this big leaves the worker's heap large for long: the worker is ended once idle. */
  private recycle = false;

  /** `bytes` is copied (the caller's frame buffer stays the caller's) and the copy moved to the worker. */
  classify(bytes: Uint8Array, req: Omit<WorkerRequest, 'id' | 'bytes'>): Promise<WorkerReply> {
    const id = this.nextId++;
    // A fresh ArrayBuffer of exactly these bytes (Buffer#slice would share, and transferring it would detach the frame).
    if (bytes.length >= RECYCLE_BYTES) this.recycle = true;
    const copy = new Uint8Array(bytes.length);
    copy.set(bytes);
    return new Promise((resolve) => {
      this.pending.set(id, { resolve });
      this.started().postMessage({ ...req, id, bytes: copy } satisfies WorkerRequest, [copy.buffer]);
    });
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(new URL('./parse-worker.js', import.meta.url));
    // It must not keep the process alive, nor take it down: a dead worker fails its requests safely.
    w.unref();
    w.on('message', (r: WorkerReply) => {
      const p = this.pending.get(r.id);
      this.pending.delete(r.id);
      p?.resolve(r);
      if (this.recycle && this.pending.size === 0 && this.worker === w) {
        this.recycle = false;
        this.worker = undefined;
        void w.terminate();
      }
    });
    const lost = (why: string): void => {
      if (this.worker !== w) return;
      this.worker = undefined;
      for (const [id, p] of this.pending) p.resolve({ id, kind: 'forward', failure: why });
      this.pending.clear();
    };
    w.on('error', (e) => lost(e.message));
    w.on('exit', (code) => lost(`parse worker exited with code ${code}`));
    this.worker = w;
    return w;
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }
}
