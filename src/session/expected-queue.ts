/**
 * The one queue of replies the client is owed, in the order it is owed them.
 *
 * Every message sent upstream that Postgres answers gets an entry saying what to do with the answer:
 * forward it raw, capture it (the proxy's own queries, or replies it rewrites), or, for replies the
 * proxy makes itself, a `local` entry holding the bytes, sent when it reaches the head. Upstream frames
 * that no entry asked for (notices, notifications, parameter status) are always forwarded.
 */
import { codecFor } from '../protocol/encoding.js';
import { Backend } from '../protocol/codes.js';
import { encodeReadyForQuery, isFatalError } from '../protocol/backend.js';

/** What upstream is answering: decides which reply frame ends the entry. */
export const enum Req {
  Parse,
  Bind,
  Describe,
  Execute,
  Close,
  Sync,
  Query,
  FunctionCall,
}

export type Outcome = 'done' | 'skipped';

export interface Capture {
  readonly kind: 'capture';
  readonly req: Req;
  /**
   * Sees each reply frame of this entry; returns bytes for the client, null to swallow it, or PASS to
   * send the frame as it came (it then stays in the run of untouched frames: no copy, no extra write).
   */
  onFrame(code: number, buf: Buffer, start: number, end: number): Buffer | null;
  /** 'skipped' means upstream discarded the request after an earlier error in the batch. */
  onDone(outcome: Outcome): void;
}

/** A capture's answer for a frame the client gets unchanged (compared by identity). */
export const PASS: Buffer = Buffer.alloc(0);

export interface Forward {
  readonly kind: 'forward';
  readonly req: Req;
}

export interface Local {
  readonly kind: 'local';
  readonly bytes: Buffer;
  /**
   * Whether this reply ends with a ReadyForQuery that answers a Sync or Query. Errors are never local:
   * the proxy makes upstream fail instead, so upstream's transaction state stays Postgres's own.
   */
  readonly endsBatch: boolean;
  /** Marks where the client ended a COPY IN (CopyDone/CopyFail); carries no bytes. */
  readonly copyEnd?: boolean;
  /**
   * Ends with a ReadyForQuery whose status is upstream's last one, read when this reaches the head:
   * the answer to a Sync or Query for which nothing went upstream (the local fast path).
   */
  readonly ready?: boolean;
}

export type Entry = Forward | Capture | Local;

const FORWARD: readonly Forward[] = [Req.Parse, Req.Bind, Req.Describe, Req.Execute, Req.Close, Req.Sync, Req.Query, Req.FunctionCall].map((req) => ({ kind: 'forward', req }) as const);
export const forward = (req: Req): Forward => FORWARD[req]!;

/** Whether `code` is the last reply upstream sends for `req`. */
function ends(req: Req, code: number): boolean {
  switch (req) {
    case Req.Execute:
      return code === Backend.CommandComplete || code === Backend.ErrorResponse || code === Backend.EmptyQueryResponse || code === Backend.PortalSuspended;
    case Req.Parse:
      return code === Backend.ParseComplete || code === Backend.ErrorResponse;
    case Req.Bind:
      return code === Backend.BindComplete || code === Backend.ErrorResponse;
    case Req.Describe:
      return code === Backend.RowDescription || code === Backend.NoData || code === Backend.ErrorResponse;
    case Req.Close:
      return code === Backend.CloseComplete || code === Backend.ErrorResponse;
    default:
      return code === Backend.ReadyForQuery;
  }
}

// First two bytes of BEGIN, START TRANSACTION, COMMIT (and COPY, COMMENT), ROLLBACK, PREPARE TRANSACTION.
const [BE, ST, CO, RO, PR] = ['BE', 'ST', 'CO', 'RO', 'PR'].map((t) => (t.charCodeAt(0) << 8) | t.charCodeAt(1));
const isExtended = (req: Req): boolean => req <= Req.Close;
const EMPTY = Buffer.alloc(0);
const isAsync = (code: number): boolean => code === Backend.NoticeResponse || code === Backend.ParameterStatus || code === Backend.NotificationResponse;

export class ExpectedQueue {
  private items: Entry[] = [];
  private head = 0;
  /** Upstream reported an extended-protocol error and ignores everything until our next Sync. */
  private skipping = false;
  /** Upstream is in COPY IN and the client hasn't ended it: upstream ignores Sync and Flush meanwhile. */
  private copyIn = false;
  /** Upstream sent a FATAL error: it hangs up on purpose next, and owes the client nothing more. */
  fatalSeen = false;
  /** Status byte of the last ReadyForQuery seen. */
  txStatus = 0x49; // 'I'
  /**
   * Whether upstream is inside a transaction block as of the last reply seen: the last ReadyForQuery,
   * corrected by BEGIN/COMMIT/ROLLBACK command tags that came after it in the same batch.
   */
  inBlock = false;
  /** Sees transaction-ending command tags (COMMIT, ROLLBACK, PREPARE TRANSACTION) when set. */
  onTxEnd: ((tag: string) => void) | undefined;
  /**
   * Upstream's reported settings that decide how text crosses the wire: the local fast path answers
   * only while the server encoding is UTF8, the client's is UTF8 or one the proxy converts exactly
   * (protocol/encoding.ts), and string literals are standard.
   */
  textConvertible = true;
  private readonly settings = new Map<string, string>();

  /** The client's encoding, as upstream last reported it. */
  get clientEncoding(): string {
    return this.settings.get('client_encoding') ?? 'UTF8';
  }

  /**
   * While consume() runs: what it owes the client, gathered so that a reply mixing forwarded, captured
   * and local frames still leaves in one write (one syscall) rather than one per piece.
   */
  private gathering = false;
  private readonly gathered: Buffer[] = [];

  constructor(
    private readonly write: (bytes: Buffer) => void,
    private readonly onIdle: () => void = () => {},
    private readonly writeMany: (bytes: Buffer[]) => void = (bs) => bs.forEach((b) => write(b)),
  ) {}

  get size(): number {
    return this.items.length - this.head;
  }

  get idle(): boolean {
    return this.size === 0;
  }

  /** True while upstream is discarding messages until Sync: the proxy's own requests would get no reply. */
  get inFailedBatch(): boolean {
    return this.skipping;
  }

  /** The client sent CopyDone or CopyFail. */
  markCopyEnd(): void {
    if (this.copyIn) {
      this.copyIn = false;
      return;
    }
    this.push({ kind: 'local', bytes: EMPTY, endsBatch: false, copyEnd: true });
  }

  push(e: Entry): void {
    if (this.copyIn && e.kind !== 'local' && e.req === Req.Sync) return;
    if (this.skipping) {
      const endsBatch = e.kind === 'local' ? e.endsBatch : e.req === Req.Sync;
      if (!endsBatch) {
        if (e.kind === 'capture') e.onDone('skipped');
        return;
      }
      this.skipping = false;
    }
    if (e.kind === 'local' && this.size === 0) {
      this.emitLocal(e);
      return;
    }
    this.items.push(e);
  }

  /** Processes the whole frames in buf[0, end), writing what the client is owed in order. */
  consume(buf: Buffer, end: number): void {
    this.gathering = true;
    try {
      this.consumeFrames(buf, end);
    } finally {
      this.gathering = false;
      this.flushGathered();
    }
    if (this.size === 0) this.onIdle();
  }

  /** Writes what consume() has gathered so far: for a caller about to write to the client itself. */
  flushGathered(): void {
    const out = this.gathered;
    if (out.length === 1) this.write(out[0]!);
    else if (out.length > 1) this.writeMany(out.slice());
    out.length = 0;
  }

  private emit(bytes: Buffer): void {
    if (this.gathering) this.gathered.push(bytes);
    else this.write(bytes);
  }

  private consumeFrames(buf: Buffer, end: number): void {
    let runStart = 0; // start of the current run of frames forwarded untouched
    let off = 0;
    while (off < end) {
      const code = buf[off]!;
      const next = off + 1 + buf.readInt32BE(off + 1);
      if (code === Backend.ReadyForQuery) {
        this.txStatus = buf[off + 5]!;
        this.inBlock = this.txStatus !== 0x49;
      } else if (code === Backend.CommandComplete) this.noteTag(buf, off);
      else if (code === Backend.ErrorResponse && isFatalError(buf, off)) this.fatalSeen = true;
      else if (code === Backend.ParameterStatus) this.noteSetting(buf, off, next);
      const e = this.head < this.items.length ? (this.items[this.head] as Forward | Capture) : undefined;
      if (e === undefined || isAsync(code)) {
        // An error nobody asked for answers a message that has no entry (a malformed Flush): upstream
        // now discards until Sync. A FATAL one ends the connection anyway.
        if (e === undefined && code === Backend.ErrorResponse && !isFatalError(buf, off)) this.skipping = true;
        off = next;
        continue;
      }
      if (code === Backend.CopyInResponse) this.enterCopyIn();
      if (e.kind === 'forward') {
        if (ends(e.req, code)) {
          this.endEntry(e, code);
          if (this.headIsLocal()) {
            this.emit(buf.subarray(runStart, next));
            runStart = next;
            this.flushLocals();
          }
        }
        off = next;
        continue;
      }
      const out = e.onFrame(code, buf, off, next);
      if (out === PASS) {
        // Still part of the run; an entry's last frame sends it, so locals queued behind it follow it.
        if (ends(e.req, code)) {
          this.emit(buf.subarray(runStart, next));
          runStart = next;
          this.endEntry(e, code);
          e.onDone('done');
          this.flushLocals();
        }
        off = next;
        continue;
      }
      if (runStart < off) this.emit(buf.subarray(runStart, off));
      runStart = next;
      if (out !== null) this.emit(out);
      if (ends(e.req, code)) {
        this.endEntry(e, code);
        e.onDone('done');
        this.flushLocals();
      }
      off = next;
    }
    if (runStart < end) this.emit(runStart === 0 && end === buf.length ? buf : buf.subarray(runStart, end));
  }

  /**
   * Tracks transaction-block tags. Two bytes rule out every other tag (SELECT, INSERT, UPDATE, SET...)
   * before any string is made, which keeps this off the hot path's bill.
   */
  private noteTag(buf: Buffer, off: number): void {
    const two = (buf[off + 5]! << 8) | buf[off + 6]!;
    if (two !== BE && two !== ST && two !== CO && two !== RO && two !== PR) return;
    const tag = buf.toString('latin1', off + 5, buf.indexOf(0, off + 5));
    if (tag === 'BEGIN' || tag === 'START TRANSACTION') this.inBlock = true;
    else if (tag === 'COMMIT' || tag === 'ROLLBACK' || tag === 'PREPARE TRANSACTION') {
      this.inBlock = false;
      this.onTxEnd?.(tag);
    }
  }

  private noteSetting(buf: Buffer, off: number, next: number): void {
    const nameEnd = buf.indexOf(0, off + 5);
    if (nameEnd < 0 || nameEnd >= next) return;
    const name = buf.toString('utf8', off + 5, nameEnd);
    if (name !== 'client_encoding' && name !== 'server_encoding' && name !== 'standard_conforming_strings') return;
    this.settings.set(name, buf.toString('utf8', nameEnd + 1, next - 1));
    const s = this.settings;
    const client = s.get('client_encoding') ?? 'UTF8';
    this.textConvertible = (client === 'UTF8' || codecFor(client) !== undefined) && (s.get('server_encoding') ?? 'UTF8') === 'UTF8' && (s.get('standard_conforming_strings') ?? 'on') === 'on';
  }

  /** Whether a Sync or Query sent upstream still awaits its ReadyForQuery (so the status may yet change). */
  get batchPending(): boolean {
    for (let i = this.head; i < this.items.length; i++) {
      const e = this.items[i]!;
      if (e.kind !== 'local' && (e.req === Req.Sync || e.req === Req.Query)) return true;
    }
    return false;
  }

  /** Syncs sent after the COPY's Execute and before the client ends the copy are ignored by upstream. */
  private enterCopyIn(): void {
    for (let i = this.head + 1; i < this.items.length; i++) {
      const e = this.items[i]!;
      if (e.kind === 'local' && e.copyEnd) return;
      if (e.kind !== 'local' && e.req === Req.Sync) {
        this.items.splice(i, 1);
        i--;
      }
    }
    this.copyIn = true;
  }

  private headIsLocal(): boolean {
    return this.head < this.items.length && this.items[this.head]!.kind === 'local';
  }

  private endEntry(e: Forward | Capture, code: number): void {
    this.shift();
    if (code === Backend.ErrorResponse && isExtended(e.req)) this.skipUntilSync();
  }

  private shift(): void {
    this.items[this.head++] = undefined as unknown as Entry;
    if (this.head === this.items.length) {
      this.items.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  private skipUntilSync(): void {
    while (this.head < this.items.length) {
      const e = this.items[this.head]!;
      if (e.kind === 'local' ? e.endsBatch : e.req === Req.Sync) return;
      this.shift();
      if (e.kind === 'capture') e.onDone('skipped');
    }
    this.skipping = true;
  }

  private flushLocals(): void {
    while (this.head < this.items.length) {
      const e = this.items[this.head]!;
      if (e.kind !== 'local') return;
      this.shift();
      this.emitLocal(e);
    }
  }

  private emitLocal(e: Local): void {
    if (e.bytes.length) this.emit(e.bytes);
    if (e.ready) this.emit(encodeReadyForQuery(String.fromCharCode(this.txStatus) as 'I' | 'T' | 'E'));
    else if (e.endsBatch) {
      this.txStatus = e.bytes[e.bytes.length - 1] ?? this.txStatus;
      this.inBlock = this.txStatus !== 0x49;
    }
  }

  /** Drops everything owed, e.g. when upstream is gone. Captures learn they were skipped. */
  clear(): void {
    while (this.head < this.items.length) {
      const e = this.items[this.head]!;
      this.shift();
      if (e.kind === 'capture') e.onDone('skipped');
    }
    this.skipping = false;
    this.copyIn = false;
  }
}
