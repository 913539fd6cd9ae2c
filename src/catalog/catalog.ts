/**
 * Redis foreign tables as upstream's pg_catalog describes them. Upstream is the catalog: the proxy
 * only caches. Two reads:
 * - the name index: every relname of a foreign table on a wrapper marked as ours, per database, shared
 *   by sessions; it lets the statement hook skip statements that can't mention one;
 * - resolution: the full definition of named tables, read on the client's own session as its role, so
 *   search_path, temp schemas and privileges are Postgres's decisions.
 */
import type { NameIndex } from '../sql/classify.js';
import { quoteIdent } from '../sql/quote.js';
import type { ColumnDef } from '../redis/table-spec.js';
import type { Options } from './options.js';

/**
 * The option that marks a wrapper as served by this proxy. The wrapper's real handler is either none
 * (handler-less mode) or postgres_fdw's, pointed back at the proxy (callback mode, DESIGN §7).
 */
export const FDW_MARK_OPTION = 'handler';
export const FDW_HANDLER = 'redis_fdw_handler';
export const OUR_FDW_SQL = `'${FDW_MARK_OPTION}=${FDW_HANDLER}' = ANY (w.fdwoptions)`;

export const NAME_INDEX_SQL = `SELECT DISTINCT c.relname FROM pg_catalog.pg_foreign_table ft
 JOIN pg_catalog.pg_class c ON c.oid = ft.ftrelid
 JOIN pg_catalog.pg_foreign_server s ON s.oid = ft.ftserver
 JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw
 WHERE ${OUR_FDW_SQL}`;

const opts = (col: string): string => `(SELECT pg_catalog.json_object_agg(o.option_name, o.option_value) FROM pg_catalog.pg_options_to_table(${col}) o)`;

/** $1: text[] of relation names as SQL would write them; returns one JSON row per name that is ours. */
export const RESOLVE_SQL = `SELECT pg_catalog.json_build_object(
  'i', q.i, 'oid', c.oid, 'schema', n.nspname, 'name', c.relname,
  'table', ${opts('ft.ftoptions')}, 'server', ${opts('s.srvoptions')}, 'serverName', s.srvname,
  'mapping', (SELECT ${opts('um.umoptions')} FROM pg_catalog.pg_user_mappings um
     WHERE um.srvid = s.oid AND um.umuser IN (0, (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user))
     ORDER BY um.umuser DESC LIMIT 1),
  'columns', (SELECT pg_catalog.json_agg(pg_catalog.json_build_array(a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.atttypid, a.attnotnull, pg_catalog.pg_get_expr(d.adbin, d.adrelid),
       pg_catalog.has_column_privilege(c.oid, a.attnum, 'SELECT'), pg_catalog.has_column_privilege(c.oid, a.attnum, 'INSERT'), pg_catalog.has_column_privilege(c.oid, a.attnum, 'UPDATE')) ORDER BY a.attnum)
     FROM pg_catalog.pg_attribute a LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
  'select', pg_catalog.has_table_privilege(c.oid, 'SELECT'),
  'insert', pg_catalog.has_table_privilege(c.oid, 'INSERT'),
  'update', pg_catalog.has_table_privilege(c.oid, 'UPDATE'),
  'delete', pg_catalog.has_table_privilege(c.oid, 'DELETE'),
  'truncate', pg_catalog.has_table_privilege(c.oid, 'TRUNCATE'),
  'handler', w.fdwhandler <> 0)
 FROM pg_catalog.unnest($1::text[]) WITH ORDINALITY AS q(name, i)
 JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(q.name)
 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 JOIN pg_catalog.pg_foreign_table ft ON ft.ftrelid = c.oid
 JOIN pg_catalog.pg_foreign_server s ON s.oid = ft.ftserver
 JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw
 WHERE ${OUR_FDW_SQL}`;

/** $1: wrapper name; one row when it is ours, saying whether it has a handler (callback mode). */
export const FDW_IS_OURS_SQL = `SELECT (w.fdwhandler <> 0)::text FROM pg_catalog.pg_foreign_data_wrapper w WHERE w.fdwname = $1 AND ${OUR_FDW_SQL}`;

/** $1: server name; its options when its wrapper is ours, and whether that wrapper has a handler (callback mode). */
export const SERVER_IF_OURS_SQL = `SELECT ${opts('s.srvoptions')}::text, (w.fdwhandler <> 0)::text FROM pg_catalog.pg_foreign_server s
 JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw WHERE s.srvname = $1 AND ${OUR_FDW_SQL}`;

/** The schema-qualified postgres_fdw handler function of this database, if the extension is installed, and whether it is available. */
export const POSTGRES_FDW_SQL = `SELECT (SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(p.proname) FROM pg_catalog.pg_proc p
   JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE p.proname = 'postgres_fdw_handler' AND p.pronargs = 0 LIMIT 1),
 EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'postgres_fdw')::text`;

/** $1: schema name or NULL (the creation schema); $2: a relation name. Whether that schema holds other tables or views. */
export const SCHEMA_HAS_OTHERS_SQL = `SELECT COALESCE($1, pg_catalog.current_schema()), EXISTS (SELECT 1 FROM pg_catalog.pg_class c
 WHERE c.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = COALESCE($1, pg_catalog.current_schema()))
   AND c.relkind IN ('r', 'p', 'v', 'm') AND c.relname <> $2)::text`;

/** Our servers and their user mappings: what an upgrade to callback mode must complete. */
export const OUR_SERVERS_SQL = `SELECT s.srvname, pg_catalog.array_to_string(s.srvoptions, ','),
 (SELECT pg_catalog.json_agg(pg_catalog.json_build_array(CASE WHEN um.umuser = 0 THEN 'public' ELSE um.usename END, ${opts('um.umoptions')})) FROM pg_catalog.pg_user_mappings um WHERE um.srvid = s.oid)::text
 FROM pg_catalog.pg_foreign_server s JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw WHERE w.fdwname = $1 AND ${OUR_FDW_SQL}`;

export interface ResolvedTable {
  /** Index into the names asked for. */
  i: number;
  oid: number;
  schema: string;
  name: string;
  serverName: string;
  table: Options;
  server: Options;
  mapping: Options | null;
  columns: ColumnDef[];
  privileges: { select: boolean; insert: boolean; update: boolean; delete: boolean; truncate: boolean };
  /** Per column (as `columns`): whether the role holds the privilege on it, through the table or the column. */
  columnPrivileges: { select: boolean[]; insert: boolean[]; update: boolean[] };
  /** Its wrapper has postgres_fdw's handler (callback mode): Postgres can evaluate the table itself. */
  handler: boolean;
}

export function decodeResolved(json: string): ResolvedTable {
  const r = JSON.parse(json) as {
    i: number;
    oid: number;
    schema: string;
    name: string;
    serverName: string;
    table: Options | null;
    server: Options | null;
    mapping: Options | null;
    columns: [string, string, number, boolean, string | null, boolean, boolean, boolean][] | null;
    select: boolean;
    insert: boolean;
    update: boolean;
    delete: boolean;
    truncate: boolean;
    handler?: boolean;
  };
  return {
    i: r.i - 1,
    oid: r.oid,
    schema: r.schema,
    name: r.name,
    serverName: r.serverName,
    table: r.table ?? {},
    server: r.server ?? {},
    mapping: r.mapping,
    columns: (r.columns ?? []).map(([name, type, typeOid, notNull, dflt]) => ({ name, type, typeOid, notNull, ...(dflt === null ? {} : { default: dflt }) })),
    privileges: { select: r.select, insert: r.insert, update: r.update, delete: r.delete, truncate: r.truncate },
    columnPrivileges: { select: (r.columns ?? []).map((c) => c[5] === true), insert: (r.columns ?? []).map((c) => c[6] === true), update: (r.columns ?? []).map((c) => c[7] === true) },
    handler: r.handler === true,
  };
}

export const qualifiedName = (schema: string | undefined, name: string): string => (schema === undefined ? quoteIdent(name) : `${quoteIdent(schema)}.${quoteIdent(name)}`);

/** Display form, as Postgres prints relation names in messages. */
export const displayName = (schema: string, name: string): string => `${/^[a-z_][a-z0-9_$]*$/.test(schema) ? schema : quoteIdent(schema)}.${/^[a-z_][a-z0-9_$]*$/.test(name) ? name : quoteIdent(name)}`;

class NameSet implements NameIndex {
  readonly lowerNames: ReadonlySet<string>;
  constructor(readonly names: ReadonlySet<string>) {
    this.lowerNames = new Set([...names].map((n) => n.toLowerCase()));
  }
  get size(): number {
    return this.names.size;
  }
  has(relname: string): boolean {
    return this.names.has(relname);
  }
}

interface DbEntry {
  index: NameSet;
  loadedAt: number;
  generation: number;
}

/**
 * Name indexes per database, shared by every session of this proxy. A DDL statement through any
 * session bumps the generation; another proxy's or psql's DDL is noticed within `ttlMs`.
 */
export class CatalogCache {
  private readonly dbs = new Map<string, DbEntry>();
  private generation = 0;

  constructor(readonly ttlMs = 1000) {}

  index(db: string): NameIndex | undefined {
    return this.dbs.get(db)?.index;
  }

  /** Whether the database's index should be read again before the next statement. */
  stale(db: string, now = Date.now()): boolean {
    const e = this.dbs.get(db);
    return e === undefined || e.generation !== this.generation || now - e.loadedAt > this.ttlMs;
  }

  store(db: string, names: Iterable<string>, generationAtStart: number): void {
    this.dbs.set(db, { index: new NameSet(new Set(names)), loadedAt: Date.now(), generation: generationAtStart });
  }

  /** Databases whose index was read: every database sessions have run statements in (for /ready). */
  databases(): string[] {
    return [...this.dbs.keys()];
  }

  get currentGeneration(): number {
    return this.generation;
  }

  /** Foreign-table DDL ran somewhere through this proxy. */
  bump(): void {
    this.generation++;
  }
}

export function unionIndex(a: NameIndex | undefined, extra: ReadonlySet<string>): NameIndex {
  if (extra.size === 0) return a ?? new NameSet(new Set());
  const names = new Set(extra);
  if (a instanceof NameSet) for (const n of a.names) names.add(n);
  return new NameSet(names);
}
