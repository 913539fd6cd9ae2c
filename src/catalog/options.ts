/**
 * The validator's job, played by the proxy: option names and values for the wrapper, servers, user
 * mappings and foreign tables of both dialects (Supabase Wrappers' redis_fdw and redis_fdw_rs), and
 * the column shape each Redis type needs. Errors are the FDW class (HV) with messages that say what
 * was expected.
 */
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import type { ColumnDef, ColumnRole, RedisType, TableSpec } from '../redis/table-spec.js';
import { fromConnUrl, fromHostPort } from '../redis/connection.js';
import { shapeError } from '../redis/types/shape.js';
import { typeOf } from '../redis/types/type.js';

export type Options = Record<string, string>;

/**
 * postgres_fdw's own tuning options, meaningful in callback mode (its handler reads them). Not
 * `extensions`: it would let postgres_fdw ship user functions, which could read a foreign table again.
 */
const POSTGRES_FDW_OPTIONS = ['use_remote_estimate', 'fetch_size', 'batch_size', 'updatable', 'truncatable', 'async_capable', 'fdw_startup_cost', 'fdw_tuple_cost', 'keep_connections', 'parallel_commit'];
const SERVER_OPTIONS = ['conn_url', 'conn_url_id', 'host_port', 'password', 'username', 'database', ...POSTGRES_FDW_OPTIONS];
const TABLE_OPTIONS = ['src_type', 'src_key', 'table_type', 'table_key_prefix', 'database', 'schema_name', 'table_name', ...POSTGRES_FDW_OPTIONS.filter((o) => !['fdw_startup_cost', 'fdw_tuple_cost', 'keep_connections', 'parallel_commit'].includes(o))];
const MAPPING_OPTIONS = ['password', 'username', 'user', 'callback_secret'];

const SUPABASE_TYPES = ['list', 'set', 'hash', 'zset', 'stream', 'multi_list', 'multi_set', 'multi_hash', 'multi_zset'] as const;
const RS_TYPES = ['hash', 'list', 'set', 'zset', 'string', 'stream'] as const;

function checkNames(opts: Options, valid: readonly string[], what: string): void {
  for (const k of Object.keys(opts)) {
    if (!valid.includes(k)) {
      throw new PgError(SqlState.FdwInvalidOptionName, `invalid option "${k}" for ${what}`, { hint: `Valid options in this context are: ${valid.join(', ')}` });
    }
  }
}

function missing(option: string, what: string, hint?: string): PgError {
  return new PgError(SqlState.FdwOptionNameNotFound, `${what} requires option "${option}"`, hint ? { hint } : {});
}

export function validateServerOptions(opts: Options): void {
  checkNames(opts, SERVER_OPTIONS, 'a Redis foreign server');
  if (opts.conn_url === undefined && opts.conn_url_id === undefined && opts.host_port === undefined) {
    throw missing('conn_url', 'a Redis foreign server', "Give conn_url 'redis://[user:password@]host:port/db' (Supabase Wrappers) or host_port 'host:port' (redis_fdw_rs).");
  }
  if (opts.conn_url !== undefined && opts.host_port !== undefined) {
    throw new PgError(SqlState.FdwInvalidOptionName, 'options "conn_url" and "host_port" cannot be used together');
  }
  // The same parsers the connection uses, so what passes here connects the way it reads.
  if (opts.conn_url !== undefined) fromConnUrl(opts.conn_url);
  checkDatabase(opts.database);
  if (opts.host_port !== undefined) {
    if (!/^(\[[^\]]+\]|[^:\s]+):\d+$/.test(opts.host_port)) {
      throw new PgError(SqlState.FdwInvalidAttributeValue, `invalid value for option "host_port": expected host:port, got "${opts.host_port}"`);
    }
    fromHostPort(opts.host_port, opts.database);
  }
}

export function validateMappingOptions(opts: Options): void {
  checkNames(opts, MAPPING_OPTIONS, 'a Redis user mapping');
}

function checkDatabase(db: string | undefined): void {
  if (db !== undefined && !/^\d+$/.test(db)) {
    throw new PgError(SqlState.FdwInvalidAttributeValue, `invalid value for option "database": expected a Redis database number, got "${db}"`);
  }
}

const isGlob = (s: string): boolean => /[*?[]/.test(s);

/** Checks table options and columns together, and says what the table reads. */
export function tableSpecFrom(table: string, opts: Options, columns: ColumnDef[]): TableSpec {
  checkNames(opts, TABLE_OPTIONS, 'a Redis foreign table');
  if (opts.src_type !== undefined && opts.table_type !== undefined) {
    throw new PgError(SqlState.FdwInvalidOptionName, 'options "src_type" (Supabase Wrappers) and "table_type" (redis_fdw_rs) cannot be used together');
  }
  checkDatabase(opts.database);
  if (opts.table_type !== undefined) return rsSpec(table, opts, columns);
  if (opts.src_type === undefined) throw missing('src_type', `foreign table ${table}`, "Give src_type and src_key (Supabase Wrappers), or table_type and table_key_prefix (redis_fdw_rs).");
  const t = opts.src_type;
  if (!(SUPABASE_TYPES as readonly string[]).includes(t)) {
    throw new PgError(SqlState.FdwInvalidAttributeValue, `invalid src_type "${t}" for foreign table ${table}`, { hint: `Valid types are: ${SUPABASE_TYPES.join(', ')}` });
  }
  if (opts.src_key === undefined) throw missing('src_key', `foreign table ${table}`);
  const multi = t.startsWith('multi_');
  const type = (multi ? t.slice(6) : t) as RedisType;
  return { table, type, multi: multi ? 'aggregate' : 'none', key: opts.src_key, columns, roles: supabaseRoles(table, t, type, multi, columns) };
}

function supabaseRoles(table: string, srcType: string, type: RedisType, multi: boolean, cols: ColumnDef[]): ColumnRole[] {
  if (multi) {
    if (cols.length !== 2) throw shapeError(table, `'${srcType}'`, '(key text, items jsonb)', cols);
    return [{ kind: 'key' }, { kind: 'items' }];
  }
  // SUPABASE_TYPES named only types that have a Supabase shape.
  return typeOf(type).supabaseColumns!(table, cols);
}

function rsSpec(table: string, opts: Options, cols: ColumnDef[]): TableSpec {
  const t = opts.table_type!;
  if (!(RS_TYPES as readonly string[]).includes(t)) {
    throw new PgError(SqlState.FdwInvalidAttributeValue, `invalid table_type "${t}" for foreign table ${table}`, { hint: `Valid types are: ${RS_TYPES.join(', ')}` });
  }
  if (opts.table_key_prefix === undefined) throw missing('table_key_prefix', `foreign table ${table}`);
  const type = t as RedisType;
  const glob = isGlob(opts.table_key_prefix);
  const rest = glob ? cols.slice(1) : cols;
  if (glob && cols.length === 0) throw shapeError(table, `'${t}' with a key pattern`, '(key text, ...)', cols);
  const roles: ColumnRole[] = glob ? [{ kind: 'key' }] : [];
  roles.push(...typeOf(type).rsColumns(table, rest, glob ? '(key text, ' : '(', cols));
  return { table, type, multi: glob ? 'rows' : 'none', key: opts.table_key_prefix, columns: cols, roles };
}
