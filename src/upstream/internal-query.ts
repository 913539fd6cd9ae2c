/**
 * The proxy's own queries on the client's upstream session (catalog reads, privilege checks), run
 * as the client's role so Postgres decides what they may see. They travel in the same ordered stream
 * as the client's messages: Parse/Bind/Execute of a reserved named statement, then Close, so the
 * client's unnamed statement and portal are never touched.
 */
import { serialize } from 'pg-protocol';
import { Backend } from '../protocol/codes.js';
import { MessageWriter } from '../protocol/writer.js';
import { decodeDataRow, decodeErrorFields, type UpstreamError } from '../protocol/backend.js';
import { forward, Req, type Capture } from '../session/expected-queue.js';
import type { SessionPort } from '../session/types.js';
import { codecFor, type Codec } from '../protocol/encoding.js';
import { encodeBindParts } from '../protocol/frontend.js';

export const INTERNAL_STATEMENT = '__redis_fdw_proxy';

export type InternalResult =
  | { kind: 'rows'; rows: (Buffer | null)[][] }
  /** Upstream refused; with `errorIsReply` its ErrorResponse has already gone to the client. */
  | { kind: 'error'; error: UpstreamError }
  /** Upstream discarded the query because an earlier message in the batch failed. */
  | { kind: 'skipped' };

export interface InternalOptions {
  /** The error, if any, is the reply to the client message being handled (so it is forwarded). */
  errorIsReply: boolean;
  /** End with Sync (own implicit transaction; only when no client batch is open), else Flush. */
  sync?: boolean;
}

/** A parameter: a string (text format), bytes (binary format), or bytes in pieces (sent as they are). */
export type InternalParam = string | Buffer | readonly Buffer[] | null;

export function runInternal(port: SessionPort, sql: string, params: readonly InternalParam[], opts: InternalOptions): Promise<InternalResult> {
  return new Promise((resolve) => {
    const rows: (Buffer | null)[][] = [];
    let error: UpstreamError | undefined;
    let skipped = false;
    const capture = (req: Req, last: boolean): Capture => ({
      kind: 'capture',
      req,
      onFrame(code, buf, start, end) {
        if (code === Backend.DataRow) rows.push(decodeDataRow(buf, start, end));
        else if (code === Backend.ErrorResponse && error === undefined) {
          error = decodeErrorFields(buf, start, end);
          if (opts.errorIsReply) return Buffer.from(buf.subarray(start, end));
        }
        return null;
      },
      onDone(outcome) {
        if (outcome === 'skipped' && error === undefined) skipped = true;
        if (last || (outcome === 'done' && error !== undefined) || outcome === 'skipped') settle();
      },
    });
    let settled = false;
    const settle = (): void => {
      if (settled) return;
      settled = true;
      resolve(error ? { kind: 'error', error } : skipped ? { kind: 'skipped' } : { kind: 'rows', rows });
    };
    // Closing first makes this self-healing: a statement or portal left behind when an earlier
    // batch failed half-way (so its Closes were discarded) can't make this Parse or Bind fail.
    // Closing after leaves nothing the client could see in pg_prepared_statements or pg_cursors.
    const msgs = [
      serialize.close({ type: 'P', name: INTERNAL_STATEMENT }),
      serialize.close({ type: 'S', name: INTERNAL_STATEMENT }),
      serialize.parse({ name: INTERNAL_STATEMENT, text: sql }),
      ...encodeBindParts(INTERNAL_STATEMENT, INTERNAL_STATEMENT, params),
      serialize.execute({ portal: INTERNAL_STATEMENT }),
      serialize.close({ type: 'P', name: INTERNAL_STATEMENT }),
      serialize.close({ type: 'S', name: INTERNAL_STATEMENT }),
      opts.sync ? serialize.sync() : serialize.flush(),
    ];
    const entries = [
      capture(Req.Close, false),
      capture(Req.Close, false),
      capture(Req.Parse, false),
      capture(Req.Bind, false),
      capture(Req.Execute, false),
      capture(Req.Close, false),
      capture(Req.Close, !opts.sync),
    ];
    if (opts.sync) entries.push(capture(Req.Sync, true));
    port.send(msgs, entries);
  });
}

/** Makes upstream fail the current message, so its transaction state is what Postgres's would be, and replaces the error with `reply`. */
export function failWith(port: SessionPort, reply: Buffer): void {
  const codec = codecFor(port.clientEncoding);
  const capture: Capture = {
    kind: 'capture',
    req: Req.Parse,
    onFrame: (code) => (code === Backend.ErrorResponse ? (codec ? errorIn(reply, codec) : reply) : null),
    onDone: () => {},
  };
  // A syntax error in a named Parse creates nothing and changes nothing but the error state.
  port.send(serialize.parse({ name: `${INTERNAL_STATEMENT}_fail`, text: 'redis_fdw_proxy_error' }), [capture]);
}

/**
 * Closes a batch the proxy's own Flush-ended queries opened upstream, when no client Sync will: a
 * simple Query answered locally. Its ReadyForQuery is the proxy's, not the client's.
 */
export function closeOwnBatch(port: SessionPort, onDone: () => void = () => {}): void {
  port.send(serialize.sync(), [{ kind: 'capture', req: Req.Sync, onFrame: () => null, onDone }]);
  port.syncedUpstream();
}

/** closeOwnBatch, resolved once upstream has answered it: nothing is then owed before a local reply. */
export function settleOwnBatch(port: SessionPort): Promise<void> {
  return new Promise((resolve) => closeOwnBatch(port, resolve));
}

/**
 * The proxy's own ErrorResponse (UTF-8) in the client's encoding, as Postgres sends its messages; a
 * character the encoding lacks (in a key or value the message quotes) becomes '?' rather than a
 * second error about the first.
 */
function errorIn(reply: Buffer, codec: Codec): Buffer {
  if (reply.length === 0) return reply;
  const e = decodeErrorFields(reply, 0, reply.length);
  const w = new MessageWriter(reply[0]!, reply.length + 8);
  for (const [k, v] of e.fields) {
    let bytes: Buffer;
    try {
      bytes = codec.encode(v);
    } catch {
      bytes = codec.encode([...v].map((ch) => (ch.codePointAt(0)! < 0x80 ? ch : safe(codec, ch))).join(''));
    }
    w.int8(k.charCodeAt(0)).bytes(bytes).int8(0);
  }
  return w.int8(0).finish();
}

function safe(codec: Codec, ch: string): string {
  try {
    codec.encode(ch);
    return ch;
  } catch {
    return '?';
  }
}

export { forward };
