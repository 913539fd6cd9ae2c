/**
 * Errors that keep the rewrite out of sight. (Materialized views, which only upstream's own
 * evaluation can serve, are decided in select.ts's planRead: callback mode passes them through.)
 */
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import { type Node, type StatementInfo } from '../sql/analyze.js';

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
    // One push per element: a 150,000-row VALUES spread into one call overflowed the stack.
    if (Array.isArray(x)) for (const y of x) stack.push(y);
    else if (x !== null && typeof x === 'object') {
      const p = (x as Node).ParamRef as { number?: number; location?: number } | undefined;
      if (p && typeof p.number === 'number' && (first === undefined || Number(p.location) < first.location)) first = { number: p.number, location: Number(p.location) };
      for (const v of Object.values(x)) if (v !== null && typeof v === 'object') stack.push(v);
    }
  }
  if (!first) return undefined;
  return new PgError('42P02', `there is no parameter $${first.number}`, { position: charPos(first.location) });
}
