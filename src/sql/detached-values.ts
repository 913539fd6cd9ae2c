/**
 * A big VALUES list crossing from the parse worker in slices. Structured-cloning a 100,000-row
 * INSERT … VALUES's parse tree held the event loop for ~160–250 ms in one piece (the clone of a
 * reply is deserialized whole, before any of it can be used). The worker instead sends the tree with
 * each big `valuesLists` emptied, and the rows apart, serialized in slices of a few thousand
 * (`v8.serialize`, moved as one buffer); the event loop deserializes them back into place a slice
 * at a time, giving way between slices. The tree the session then gets is the one the parser made.
 *
 * The statement's analysis (analyze.ts) walks every row (~100 ms at that size): when the worker has
 * checked that analysing the tree without those rows gives the same result, the event loop analyses
 * the small tree before the rows are back, and `rememberAnalysis` keeps that result for the
 * statement's node.
 */
import { deserialize, serialize } from 'node:v8';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { analyzeStatement, rememberAnalysis, type Node, type StatementInfo } from './analyze.js';
import type { ParseResult } from './parser.js';

/** VALUES lists of fewer rows cross with the tree. */
export const DETACH_ROWS = 2048;
/** Rows deserialized as one piece: ~2 ms of the loop each. */
const SLICE_ROWS = 1024;
/** How long reattaching may run before it lets other work in. */
const SLICE_MS = 4;

/** One emptied `valuesLists`: where it is, and its rows serialized in slices. */
export interface DetachedRows {
  /** Keys from the tree's root to the SelectStmt body whose `valuesLists` was emptied. */
  path: (string | number)[];
  /** `bytes[ends[i-1] ?? 0, ends[i])` is slice i, `v8.serialize` of an array of rows. */
  ends: Int32Array;
  bytes: Uint8Array;
}

export interface Detached {
  rows: DetachedRows[];
  /**
   * Statements (indexes into `stmts`) whose analysis without their detached rows is their analysis,
   * but for the highest `$n`: the rows may hold parameters, and `maxParams[i]` is the whole statement's.
   */
  analysable: number[];
  maxParams: number[];
}

interface Frame {
  x: unknown;
  parent: Frame | undefined;
  key: string | number;
}

/**
 * Worker side: empties each VALUES list of DETACH_ROWS rows or more in `tree`, in place, and returns
 * them; undefined (the tree untouched) when there is none.
 */
export function detachBigValues(tree: ParseResult): Detached | undefined {
  const stmts = (tree.stmts ?? []) as { stmt?: unknown }[];
  const rows: DetachedRows[] = [];
  const analysable: number[] = [];
  const maxParams: number[] = [];
  stmts.forEach((s, i) => {
    const found = bigValuesUnder(s.stmt, ['stmts', i, 'stmt']);
    if (!found.length) return;
    // Analysed whole first (~100 ms here, off the event loop): the check needs it, and detaching changes the tree.
    const whole = analyzeStatement(s.stmt as Node);
    for (const f of found) {
      rows.push({ path: f.path, ...serialized(f.lists) });
      f.sel.valuesLists = [];
    }
    if (sameAnalysis(whole, analyzeStatement(s.stmt as Node))) {
      analysable.push(i);
      maxParams.push(whole.maxParam);
    }
  });
  return rows.length ? { rows, analysable, maxParams } : undefined;
}

/** The big VALUES lists under `root` (not those inside another's rows: they go with its rows). */
function bigValuesUnder(root: unknown, rootPath: (string | number)[]): { sel: Node; lists: unknown[]; path: (string | number)[] }[] {
  const out: { sel: Node; lists: unknown[]; path: (string | number)[] }[] = [];
  // Parent links instead of a path per node: a path is built only for what is found.
  const stack: Frame[] = [{ x: root, parent: undefined, key: '' }];
  const pathOf = (f: Frame): (string | number)[] => {
    const path: (string | number)[] = [];
    for (let p: Frame | undefined = f; p?.parent; p = p.parent) path.unshift(p.key);
    return [...rootPath, ...path];
  };
  while (stack.length) {
    const f = stack.pop()!;
    const x = f.x;
    if (Array.isArray(x)) {
      for (let k = x.length - 1; k >= 0; k--) if (x[k] !== null && typeof x[k] === 'object') stack.push({ x: x[k], parent: f, key: k });
      continue;
    }
    // A SelectStmt's body (node-wrapped, or bare as a set operation's branch) holds the lists.
    const lists = (x as Node).valuesLists;
    if (Array.isArray(lists) && lists.length >= DETACH_ROWS) {
      out.push({ sel: x as Node, lists, path: pathOf(f) });
      for (const [k, v] of Object.entries(x as Node)) if (k !== 'valuesLists' && v !== null && typeof v === 'object') stack.push({ x: v, parent: f, key: k });
      continue;
    }
    for (const [k, v] of Object.entries(x as Node)) if (v !== null && typeof v === 'object') stack.push({ x: v, parent: f, key: k });
  }
  return out;
}

function serialized(lists: unknown[]): { ends: Int32Array; bytes: Uint8Array } {
  const parts: Buffer[] = [];
  for (let i = 0; i < lists.length; i += SLICE_ROWS) parts.push(serialize(lists.slice(i, i + SLICE_ROWS)));
  const ends = new Int32Array(parts.length);
  let total = 0;
  parts.forEach((p, i) => (ends[i] = total += p.length));
  // One fresh buffer of exactly these bytes, to be moved, not copied, to the event loop.
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  return { ends, bytes };
}

function sameAnalysis(a: StatementInfo, b: StatementInfo): boolean {
  const sameRefs = (x: StatementInfo['reads'], y: StatementInfo['reads']): boolean =>
    x.length === y.length &&
    x.every((r, i) => {
      const s = y[i]!;
      return r.schemaname === s.schemaname && r.relname === s.relname && r.location === s.location && r.alias === s.alias && r.where === s.where && r.sole === s.sole && r.limit === s.limit && r.offset === s.offset && r.limitStopsRead === s.limitStopsRead;
    });
  // maxParam may differ: the whole statement's is sent along (Detached.maxParams).
  return a.kind === b.kind && a.node === b.node && sameRefs(a.reads, b.reads) && sameRefs(a.targets, b.targets);
}

/** What a reply's postMessage moves rather than copies. */
export function detachedTransferables(d: Detached | undefined): ArrayBuffer[] {
  return d ? d.rows.flatMap((r) => [r.ends.buffer as ArrayBuffer, r.bytes.buffer as ArrayBuffer]) : [];
}

/**
 * Event-loop side: analyses the statements the worker found analysable while their rows are still
 * out (remembered for analyzeStatement), then puts the rows back, giving way every few milliseconds.
 */
export async function reattachValues(tree: ParseResult, d: Detached): Promise<void> {
  const stmts = (tree.stmts ?? []) as { stmt?: unknown }[];
  d.analysable.forEach((i, k) => {
    const stmt = stmts[i]?.stmt as Node | undefined;
    if (stmt) rememberAnalysis(stmt, { ...analyzeStatement(stmt), maxParam: d.maxParams[k]! });
  });
  let since = performance.now();
  for (const r of d.rows) {
    let body: unknown = tree;
    for (const k of r.path) body = (body as Record<string | number, unknown>)[k];
    const lists = (body as Node).valuesLists as unknown[];
    const buf = Buffer.from(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength);
    for (let i = 0; i < r.ends.length; i++) {
      const slice = deserialize(buf.subarray(r.ends[i - 1] ?? 0, r.ends[i])) as unknown[];
      for (const row of slice) lists.push(row);
      if (performance.now() - since >= SLICE_MS) {
        await nextTurn();
        since = performance.now();
      }
    }
  }
}
