/** What the column-shape checks of every type share (catalog/options.ts asks each type's module). */
import { PgError } from '../../protocol/pg-error.js';
import { SqlState } from '../../protocol/sqlstate.js';
import type { ColumnDef, ColumnRole } from '../table-spec.js';

export function shapeError(table: string, type: string, expected: string, columns: ColumnDef[]): PgError {
  return new PgError(SqlState.FdwInvalidDataType, `foreign table ${table} of type ${type} must have columns ${expected}, but has (${columns.map((c) => `${c.name} ${c.type}`).join(', ')})`);
}

/** list (element [, index]) and zset (element [, score]): the extra column is found by name. */
export function withExtra(table: string, type: string, cols: ColumnDef[], extra: 'index' | 'score'): ColumnRole[] {
  const roles = cols.map((c): ColumnRole => (c.name === extra ? { kind: extra } : { kind: 'element' }));
  if (roles.filter((r) => r.kind === 'element').length !== 1 || cols.length > 2) {
    throw shapeError(table, type, `(element text) with an optional "${extra}" column`, cols);
  }
  return roles;
}
