import fs from 'node:fs';
import { Writable } from 'node:stream';
import { format } from 'node:util';
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { LogLevel } from '../config/config.js';

/** Log bytes waiting for a slow stderr are dropped past this, rather than growing memory or blocking. */
const MAX_BUFFERED = 4 * 1024 * 1024;

/**
 * stderr as the log's destination. A reader that stops reading (a full pipe) or goes away
 * (`| head -1`) must not stall the proxy or its SIGTERM: writes are asynchronous and bounded, a broken
 * pipe ends logging. (pino's own destination retried a broken pipe in its exit hook forever.)
 */
class StderrSink extends Writable {
  private broken = false;
  dropped = 0;

  constructor() {
    super({ decodeStrings: false });
  }

  override write(chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
    if (this.broken || this.writableLength > MAX_BUFFERED) {
      this.dropped++;
      return true;
    }
    return super.write(chunk as string, encoding as BufferEncoding, cb as (e?: Error | null) => void);
  }

  override _write(chunk: string | Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    const attempt = (off: number): void => {
      fs.write(2, buf, off, buf.length - off, null, (err, n) => {
        if (err) {
          if (err.code === 'EAGAIN') return void setTimeout(() => attempt(off), 20);
          this.broken = true; // EPIPE and the like: nobody reads our log any more
          return cb();
        }
        if (off + n < buf.length) return attempt(off + n);
        cb();
      });
    };
    attempt(0);
  }
}

export function createLogger(level: LogLevel, fmt: 'json' | 'pretty'): Logger {
  const sink = new StderrSink();
  // pino-pretty as a stream in this thread: no worker transport to resolve, so it works after npm ci --omit=dev.
  if (fmt === 'pretty') return pino({ level }, pretty({ destination: sink, colorize: process.stderr.isTTY }));
  return pino({ level }, sink);
}

/**
 * Libraries that print on their own (ioredis's "[WARN] ..." via console.warn) and Node's process
 * warnings become JSON log lines too, so every line on stderr is one the log format promised.
 */
export function routeStrayOutput(log: Logger): void {
  const lib = log.child({ source: 'console' });
  console.log = (...a: unknown[]) => lib.info(format(...a));
  console.info = (...a: unknown[]) => lib.info(format(...a));
  console.warn = (...a: unknown[]) => lib.warn(format(...a).replace(/^\[(WARN|ERROR)\]\s*/, ''));
  console.error = (...a: unknown[]) => lib.error(format(...a));
  process.removeAllListeners('warning');
  process.on('warning', (w) => log.warn({ source: 'node', name: w.name }, w.message));
  // A closed stdout (nothing is written there, but a library might) must not kill the process.
  process.stdout.on('error', () => {});
  process.stderr.on('error', () => {});
}
