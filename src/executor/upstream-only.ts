/**
 * Statements the rewrite can't serve, whatever the proxy does with their text, and the errors that
 * keep the rewrite out of sight when they are refused.
 *
 * A materialized view stores its query and runs it again at every REFRESH, long after the Redis rows
 * bound to this one statement are gone: Postgres itself refuses the rewritten form ("materialized
 * views may not be defined using bound parameters"). Only upstream evaluating the foreign table on its
 * own can serve it, i.e. the callback (the wrapper's postgres_fdw handler pointing back at the proxy).
 * `shouldPassThroughToCallback` is the seam for that path: when the callback is configured, such a
 * statement goes upstream untouched; when it isn't, `callbackRequired` is the client's error.
 */
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import { inner, nodeKind, type Node, type StatementInfo } from '../sql/analyze.js';

/** Whether only upstream's own evaluation of the foreign tables (the callback) can serve the statement. */
export function shouldPassThroughToCallback(info: StatementInfo): boolean {
  const node = info.kind === 'ExplainStmt' ? inner(info.node.query) : info.node;
  const kind = info.kind === 'ExplainStmt' ? nodeKind(info.node.query) : info.kind;
  return kind === 'CreateTableAsStmt' && (node as Node).objtype === 'OBJECT_MATVIEW';
}

/** The 0A000 for such a statement when the callback isn't there to serve it. */
export function callbackRequired(info: StatementInfo): PgError {
  const names = [...new Set(info.reads.map((r) => r.relname))].join(', ');
  return new PgError(SqlState.FeatureNotSupported, `materialized views over Redis foreign tables are not supported in this mode (${names})`, {
    detail: 'A materialized view reads its foreign tables again at every REFRESH, without the proxy seeing the statement.',
    hint: 'Give the wrapper the postgres_fdw handler so upstream can call the proxy back, or use CREATE TABLE ... AS for a snapshot.',
  });
}

/**
 * A simple Query can't bind parameters: `$1` in one is Postgres's 42P02, which the rewrite, adding
 * parameters of its own, must not turn into a bind-count complaint. Position: the first `$n`.
 */
export function simpleQueryParam(info: StatementInfo, charPos: (byte: number) => number): PgError | undefined {
  if (info.maxParam === 0) return undefined;
  let first: { number: number; location: number } | undefined;
  const stack: unknown[] = [info.node];
  while (stack.length) {
    const x = stack.pop();
    if (Array.isArray(x)) stack.push(...x);
    else if (x !== null && typeof x === 'object') {
      const p = (x as Node).ParamRef as { number?: number; location?: number } | undefined;
      if (p && typeof p.number === 'number' && (first === undefined || Number(p.location) < first.location)) first = { number: p.number, location: Number(p.location) };
      for (const v of Object.values(x)) if (v !== null && typeof v === 'object') stack.push(v);
    }
  }
  if (!first) return undefined;
  return new PgError('42P02', `there is no parameter $${first.number}`, { position: charPos(first.location) });
}
