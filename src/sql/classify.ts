/**
 * The statement hook: every Query and Parse passes through `classifyFrame`, which decides whether the
 * statement is forwarded untouched or handed to the interceptor. It must be cheap, so it rules text
 * out before it parses: only text that can mention a Redis foreign table (outside literals and
 * comments), or be foreign-table DDL, reaches the parser, and parse results are cached by text.
 * Big texts are decided on a worker thread, so no statement's size stalls the other sessions.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Frontend } from '../protocol/codes.js';
import type { ParseResult } from './parser.js';
import { ParseCache } from './parse-cache.js';
import { decodeClientText } from '../protocol/client-encoding.js';
import { isConvertible, SUPPORTED_ENCODINGS } from '../protocol/encoding.js';
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import { analyzeStatement, type Node } from './analyze.js';
import { validInEncoding, worthParsing, type WorkerReply } from './classify-text.js';
import { OffThreadClassifier } from './off-thread.js';
import { reattachValues } from './detached-values.js';
import { rememberTokens } from './text-builder.js';

/** What the hook knows of the catalog: the names that make a statement worth parsing. */
export interface NameIndex {
  /** Lower-cased relation names of the known Redis foreign tables. */
  readonly lowerNames: ReadonlySet<string>;
  /** Whether a relation name, as the parser folded it, is a known Redis foreign table's. */
  has(relname: string): boolean;
  readonly size: number;
}

export const EMPTY_INDEX: NameIndex = { lowerNames: new Set(), has: () => false, size: 0 };

export type Decision = { kind: 'forward' } | { kind: 'inspect'; text: string; tree: ParseResult };

export const FORWARD: Decision = { kind: 'forward' };

/** Statement texts from this size (bytes) up are decided off the event loop. */
export const OFF_THREAD_BYTES = 256 * 1024;

export interface HookOptions {
  offThreadBytes?: number;
  /** Told when the parse worker failed a request (the statement was then forwarded). */
  onWorkerFailure?: (message: string) => void;
}

export class StatementHook {
  readonly cache: ParseCache;
  private readonly offThread = new OffThreadClassifier();
  private readonly offThreadBytes: number;

  constructor(
    cache?: ParseCache,
    private readonly options: HookOptions = {},
  ) {
    this.cache = cache ?? new ParseCache();
    this.offThreadBytes = options.offThreadBytes ?? OFF_THREAD_BYTES;
  }

  /**
   * Decides a Query or Parse frame (`buf[start, next)`). A big text's decision is a promise; until it
   * settles, the session holds this client's later messages back, and only them. Throws RangeError
   * for a frame too malformed to read.
   */
  classifyFrame(code: number, buf: Buffer, start: number, next: number, names: NameIndex, watchDdl: boolean, all = false, encoding = 'UTF8'): Decision | Promise<Decision> {
    if (!all && !watchDdl && names.size === 0) return FORWARD;
    const [from, to] = textSpan(code, buf, start, next);
    const bytes = buf.subarray(from, to);
    const filter = { lowerNames: names.lowerNames, watchDdl, all };
    if (to - from >= this.offThreadBytes) {
      // Receiving the reply (its parse tree, cloned) holds the loop for long on a big text: the
      // session's own work on it (analysis, planning) starts on a later turn, not in the same stretch.
      return this.offThread
        .classify(bytes, { ...filter, lowerNames: [...names.lowerNames], encoding })
        .then(async (r) => {
          await nextTurn();
          if (r.kind === 'inspect' && r.detached) {
            try {
              await reattachValues(r.tree, r.detached);
            } catch (e) {
              // As a failed worker request: the statement is forwarded, never half a tree inspected.
              return this.fromWorker({ id: r.id, kind: 'forward', failure: e instanceof Error ? e.message : String(e) });
            }
          }
          return this.fromWorker(r);
        });
    }
    return this.classifyBytes(bytes, filter, encoding);
  }

  private classifyBytes(bytes: Buffer, filter: { lowerNames: ReadonlySet<string>; watchDdl: boolean; all: boolean }, encoding: string): Decision {
    const text = decodeClientText(bytes, encoding);
    if (!worthParsing(text, filter) || !validInEncoding(bytes, encoding)) return FORWARD;
    let tree: ParseResult;
    try {
      tree = this.cache.get(text);
    } catch {
      // Upstream will report the syntax error itself, exactly as Postgres words it.
      return FORWARD;
    }
    return { kind: 'inspect', text, tree };
  }

  private fromWorker(r: WorkerReply): Decision {
    if (r.kind === 'forward') {
      if (r.failure !== undefined) this.options.onWorkerFailure?.(r.failure);
      return FORWARD;
    }
    for (const s of r.scans) rememberTokens(s.text ?? r.text, s.tokens);
    return { kind: 'inspect', text: r.text, tree: r.tree };
  }

  close(): Promise<void> {
    return this.offThread.close();
  }
}

/**
 * Redis holds UTF-8; the proxy converts values to and from UTF8, SQL_ASCII and the single-byte
 * encodings of protocol/encoding.ts. A session in another client_encoding (the multi-byte ones:
 * SJIS, BIG5, EUC_*, GBK...) gets this error for a statement that reads or writes a foreign table,
 * and nothing is stored; DDL and everything else pass as usual.
 */
export function encodingRefusal(d: Decision & { kind: 'inspect' }, names: NameIndex, encoding: string): PgError | undefined {
  if (isConvertible(encoding)) return undefined;
  const touches = (d.tree.stmts ?? []).some((s) => {
    const info = analyzeStatement(s.stmt as Node);
    return [...info.reads, ...info.targets].some((r) => names.has(r.relname));
  });
  if (!touches) return undefined;
  return new PgError(SqlState.FeatureNotSupported, `Redis foreign tables don't support client_encoding "${encoding}"`, {
    hint: `SET client_encoding TO 'UTF8' (or one of ${SUPPORTED_ENCODINGS.join(', ')}) for statements on Redis foreign tables: Redis stores the values as UTF-8 and the proxy converts only these.`,
  });
}

/** The statement text of a Query or Parse frame (`buf[start, next)`), decoded. */
export function statementText(code: number, buf: Buffer, start: number, next: number): string {
  const [from, to] = textSpan(code, buf, start, next);
  return buf.toString('utf8', from, to);
}

/** Byte span of the statement text of a Query or Parse frame, without its NUL. */
function textSpan(code: number, buf: Buffer, start: number, next: number): [number, number] {
  let from = start + 5;
  if (code === Frontend.Parse) {
    const nameEnd = buf.indexOf(0, from);
    if (nameEnd < 0 || nameEnd >= next) throw new RangeError('malformed Parse');
    from = nameEnd + 1;
  }
  const end = buf.indexOf(0, from);
  if (end < 0 || end >= next) throw new RangeError(code === Frontend.Parse ? 'malformed Parse' : 'malformed Query');
  return [from, end];
}
