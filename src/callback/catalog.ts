/**
 * What a callback session knows of the catalog, read over its own upstream link (it has no client
 * session to borrow): which user mappings the presented password unlocks, and the definition of the
 * foreign table a remote query names. The remote name is postgres_fdw's: the table's `schema_name` /
 * `table_name` options, else its own schema and name.
 */
import crypto from 'node:crypto';
import { decodeResolved, OUR_FDW_SQL } from '../catalog/catalog.js';
import type { Options } from '../catalog/options.js';
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import { foreignTable, type ForeignTable } from '../executor/select.js';
import type { UpstreamLink } from './upstream-link.js';

const opts = (col: string): string => `(SELECT pg_catalog.json_object_agg(o.option_name, o.option_value) FROM pg_catalog.pg_options_to_table(${col}) o)`;
const opt = (col: string, name: string): string => `(SELECT o.option_value FROM pg_catalog.pg_options_to_table(${col}) o WHERE o.option_name = '${name}')`;

/** Every user mapping of our servers that has a password, with its options. */
const MAPPINGS_SQL = `SELECT s.srvname, ${opts('um.umoptions')}::text FROM pg_catalog.pg_user_mappings um
 JOIN pg_catalog.pg_foreign_server s ON s.oid = um.srvid
 JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw
 WHERE ${OUR_FDW_SQL} AND ${opt('um.umoptions', 'password')} IS NOT NULL`;

/** $1 remote schema, $2 remote table name. */
const TABLE_SQL = `SELECT pg_catalog.json_build_object(
  'i', 1, 'oid', c.oid, 'schema', n.nspname, 'name', c.relname,
  'table', ${opts('ft.ftoptions')}, 'server', ${opts('s.srvoptions')}, 'serverName', s.srvname, 'mapping', NULL,
  'columns', (SELECT pg_catalog.json_agg(pg_catalog.json_build_array(a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.atttypid, a.attnotnull, NULL) ORDER BY a.attnum)
     FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
  'select', true, 'insert', true, 'update', true, 'delete', true, 'truncate', true, 'handler', true,
  'owner', pg_catalog.pg_get_userbyid(s.srvowner))::text
 FROM pg_catalog.pg_foreign_table ft
 JOIN pg_catalog.pg_class c ON c.oid = ft.ftrelid
 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 JOIN pg_catalog.pg_foreign_server s ON s.oid = ft.ftserver
 JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw
 WHERE ${OUR_FDW_SQL} AND COALESCE(${opt('ft.ftoptions', 'schema_name')}, n.nspname) = $1
   AND COALESCE(${opt('ft.ftoptions', 'table_name')}, c.relname) = $2`;

const sha = (s: string): Buffer => crypto.createHash('sha256').update(s).digest();

/** Compares in constant time (over digests, so lengths don't leak either). */
const sameSecret = (a: string, b: string): boolean => crypto.timingSafeEqual(sha(a), sha(b));

export class CallbackCatalog {
  /** The mappings (by server name) whose password the session presented. */
  private mappings = new Map<string, Options>();
  private readonly tables = new Map<string, { table: ForeignTable | undefined; at: number }>();
  /** The owner of each table's server (by table display name): what evaluation runs as. */
  private readonly owners = new Map<string, string>();

  constructor(
    private readonly link: UpstreamLink,
    private readonly ttlMs = 1000,
  ) {}

  /** Whether `password` is the password of at least one user mapping of our servers. */
  async authenticate(password: string): Promise<boolean> {
    const r = await this.link.query(MAPPINGS_SQL);
    this.mappings = new Map();
    for (const row of r.rows) {
      const [server, json] = dataRowText(row);
      const o = JSON.parse(json ?? '{}') as Options;
      if (server != null && o.password !== undefined && sameSecret(o.password, password)) this.mappings.set(server, o);
    }
    return this.mappings.size > 0;
  }

  /**
   * Forgets table definitions: called when postgres_fdw opens a remote transaction, so DDL committed
   * anywhere before the local transaction began is seen (one catalog read per table per transaction).
   */
  forgetTables(): void {
    this.tables.clear();
  }

  /** The Redis foreign table postgres_fdw calls `schema.name`; read again once older than the TTL. */
  async table(schema: string, name: string): Promise<ForeignTable> {
    const key = `${schema}\0${name}`;
    const hit = this.tables.get(key);
    let t = hit && Date.now() - hit.at < this.ttlMs ? hit.table : undefined;
    if (!t) {
      const r = await this.link.query(TABLE_SQL, [schema, name]);
      const json = r.rows[0] ? dataRowText(r.rows[0])[0] : null;
      if (json) {
        const resolved = decodeResolved(json);
        const mapping = this.mappings.get(resolved.serverName);
        if (!mapping) throw new PgError(SqlState.InsufficientPrivilege, `the callback's credentials are not those of a user mapping for server "${resolved.serverName}"`);
        resolved.mapping = mapping;
        t = foreignTable(resolved);
        this.owners.set(t.display, (JSON.parse(json) as { owner: string }).owner);
      }
      this.tables.set(key, { table: t, at: Date.now() });
    }
    if (!t) throw new PgError(SqlState.UndefinedTable, `relation "${schema}.${name}" does not exist`, { hint: 'A callback session serves only Redis foreign tables.' });
    return t;
  }

  /**
   * The role upstream evaluates a callback's statements over these tables as: their server's owner
   * (one who can read the secret anyway). Tables of servers with different owners can't be mixed.
   */
  ownerOf(tables: readonly ForeignTable[]): string {
    const owners = new Set(tables.map((t) => this.owners.get(t.display) ?? 'none'));
    if (owners.size !== 1) throw new PgError(SqlState.FeatureNotSupported, 'a remote query over Redis servers of different owners');
    return [...owners][0]!;
  }
}

/** The text values of a whole DataRow message. */
export function dataRowText(msg: Buffer): (string | null)[] {
  const n = msg.readUInt16BE(5);
  const out: (string | null)[] = [];
  let off = 7;
  for (let i = 0; i < n; i++) {
    const len = msg.readInt32BE(off);
    off += 4;
    if (len < 0) out.push(null);
    else {
      out.push(msg.toString('utf8', off, off + len));
      off += len;
    }
  }
  return out;
}
