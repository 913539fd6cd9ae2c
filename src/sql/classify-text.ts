/**
 * The statement hook's decision for one statement text, as a pure function over its bytes: used inline
 * for ordinary texts, and inside the parse worker for big ones. Cheapest tests first: a substring
 * test for any foreign table's name, then a lexer that ignores names inside literals and comments,
 * then the parser.
 */
import { isUtf8 } from 'node:buffer';
import type { ParseResult } from './parser.js';
import { parseSql } from './parser.js';
import { mentionsAny } from './mentions.js';
import { packedTokensOf, type PackedTokens } from './text-builder.js';
import { splitStatements } from './statements.js';
import { detachBigValues, detachedTransferables, type Detached } from './detached-values.js';
import { decodeClientText, isUtf8Encoding } from '../protocol/client-encoding.js';
import { codecFor, decodes } from '../protocol/encoding.js';

/** Keywords without which a statement cannot be foreign-data-wrapper DDL. */
const DDL_HINT = /foreign|server|mapping|extension/i;

export interface TextFilter {
  /** Relation names of the session's foreign tables, lower case. */
  lowerNames: ReadonlySet<string>;
  /** Foreign-table DDL may be in this text (off in pure passthrough). */
  watchDdl: boolean;
  /** Every statement must be inspected. */
  all: boolean;
}

const PREFILTER_MAX = 1024 * 1024;

/** Whether decoded text needs parsing at all. */
export function worthParsing(text: string, f: TextFilter): boolean {
  if (f.all || (f.watchDdl && DDL_HINT.test(text))) return true;
  if (f.lowerNames.size === 0) return false;
  // The substring prefilter lower-cases a copy of the text; for a big text (decided off-thread) the
  // lexer alone is as fast and needs no second copy.
  if (text.length <= PREFILTER_MAX) {
    const lower = text.toLowerCase();
    let hit = false;
    for (const n of f.lowerNames) {
      if (lower.includes(n)) {
        hit = true;
        break;
      }
    }
    if (!hit) return false;
  }
  return mentionsAny(text, f.lowerNames);
}

/**
 * Text that isn't valid in the client's encoding is never intercepted: forwarded as it is, upstream
 * rejects it with 22021 in Postgres's own words, where decoding it with replacement characters would
 * have stored corrupted values.
 */
export function validInEncoding(bytes: Uint8Array, encoding: string): boolean {
  if (isUtf8Encoding(encoding)) return isUtf8(bytes);
  const codec = codecFor(encoding);
  return !codec || decodes(codec, bytes);
}

export interface WorkerRequest extends Omit<TextFilter, 'lowerNames'> {
  id: number;
  bytes: Uint8Array;
  encoding: string;
  lowerNames: string[];
}

/**
 * A statement's text as the interceptor cuts it from the whole (undefined: the whole text, so it
 * isn't copied twice), with its scanner tokens.
 */
export interface StatementScan {
  text: string | undefined;
  tokens: PackedTokens;
}

export type WorkerReply =
  | { id: number; kind: 'forward'; failure?: string }
  | { id: number; kind: 'inspect'; text: string; tree: ParseResult; scans: StatementScan[]; detached?: Detached };

/** The whole decision, as the parse worker makes it for a big text. */
export function classifyText(req: WorkerRequest): WorkerReply {
  const bytes = Buffer.from(req.bytes.buffer, req.bytes.byteOffset, req.bytes.byteLength);
  const text = decodeClientText(bytes, req.encoding);
  if (!worthParsing(text, { ...req, lowerNames: new Set(req.lowerNames) })) return { id: req.id, kind: 'forward' };
  if (!validInEncoding(bytes, req.encoding)) return { id: req.id, kind: 'forward' };
  let tree: ParseResult;
  try {
    tree = parseSql(text);
  } catch {
    return { id: req.id, kind: 'forward' };
  }
  const scans = statementScans(text, tree);
  // Big VALUES lists cross apart, to be put back a slice at a time (detached-values.ts).
  const detached = detachBigValues(tree);
  return detached ? { id: req.id, kind: 'inspect', text, tree, scans, detached } : { id: req.id, kind: 'inspect', text, tree, scans };
}

/** Each statement's text cut as the interceptor cuts it, and its tokens, so it needn't scan on the event loop. */
function statementScans(text: string, tree: ParseResult): StatementScan[] {
  return splitStatements(text, tree).map((s) => ({ text: s.text === text ? undefined : s.text, tokens: packedTokensOf(s.text) }));
}

/** What a reply's postMessage moves rather than copies. */
export function transferables(r: WorkerReply): ArrayBuffer[] {
  return r.kind === 'inspect' ? [...r.scans.map((s) => s.tokens.spans.buffer as ArrayBuffer), ...detachedTransferables(r.detached)] : [];
}
