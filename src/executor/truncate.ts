/** TRUNCATE of Redis foreign tables: DEL of the table's key, or of every key its pattern matches. */
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import type { StatementInfo } from '../sql/analyze.js';
import type { NameIndex } from '../sql/classify.js';
import type { SessionPort } from '../session/types.js';
import type { RedisOp } from '../redis/write.js';
import { checkPrivilege, resolveTables, type ForeignTable } from './select.js';

export interface TruncatePlan {
  tables: ForeignTable[];
}

export async function planTruncate(port: SessionPort, names: NameIndex, info: StatementInfo): Promise<TruncatePlan | undefined | 'failed'> {
  const refs = info.targets.filter((r) => names.has(r.relname));
  if (refs.length === 0) return undefined;
  const res = await resolveTables(port, info.targets);
  if (res.kind === 'failed') return 'failed';
  const tables = res.tables.filter((t): t is ForeignTable => t !== undefined);
  if (tables.length === 0) return undefined;
  if (tables.length !== info.targets.length) {
    throw new PgError(SqlState.FeatureNotSupported, 'TRUNCATE cannot mix Redis foreign tables with other tables', { hint: 'Truncate the Redis foreign tables in a statement of their own.' });
  }
  for (const t of tables) checkPrivilege(t, 'truncate');
  return { tables };
}

export function truncateOps(t: ForeignTable): RedisOp[] {
  return t.spec.multi === 'none' ? [{ op: 'del', key: t.spec.key }] : [{ op: 'delPattern', pattern: t.spec.key, type: t.spec.type }];
}
