/**
 * Foreign-data DDL. All of it is stored by upstream (the catalog is Postgres's); the proxy plays the
 * missing handler and validator:
 * - CREATE EXTENSION wrappers | redis_fdw_rs | redis_fdw: accepted, nothing to install;
 * - CREATE FOREIGN DATA WRAPPER ... HANDLER redis_fdw_handler: created without the handler, marked
 *   as ours with the option handler 'redis_fdw_handler';
 * - servers, user mappings and foreign tables of our wrapper: options validated, then passed through.
 */
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import { displayName, FDW_HANDLER, FDW_IS_OURS_SQL, FDW_MARK_OPTION, SERVER_IF_OURS_SQL } from '../catalog/catalog.js';
import { resolveTables } from './select.js';
import { tableSpecFrom, validateMappingOptions, validateServerOptions, type Options } from '../catalog/options.js';
import { inner, nodeKind, type Node } from '../sql/analyze.js';
import { quoteIdent, quoteLiteral } from '../sql/quote.js';
import type { ColumnDef } from '../redis/table-spec.js';
import { runInternal } from '../upstream/internal-query.js';
import type { SessionPort } from '../session/types.js';

export const DDL_KINDS = new Set([
  'CreateExtensionStmt',
  'CreateFdwStmt',
  'CreateForeignServerStmt',
  'AlterForeignServerStmt',
  'CreateUserMappingStmt',
  'AlterUserMappingStmt',
  'CreateForeignTableStmt',
  'ImportForeignSchemaStmt',
  'AlterTableStmt',
  'RenameStmt',
  'DropStmt',
  'CommentStmt',
]);

/** DDL that needs no validation: it passes through, and only invalidates the name index. */
export const PASSTHROUGH_DDL = new Set(['DropStmt', 'CommentStmt', 'RenameStmt']);

const OUR_EXTENSIONS = new Set(['wrappers', 'redis_fdw_rs', 'redis_fdw']);

export type DdlAction =
  /** Send the statement as the client wrote it. */
  | { kind: 'plain'; catalogChanged: boolean; createdTable?: string }
  /** Send this text instead. */
  | { kind: 'text'; text: string }
  /** Nothing to do upstream; reply with this command tag. */
  | { kind: 'tag'; tag: string }
  /** Upstream's error already answered the client. */
  | { kind: 'failed' };

function defOptions(list: unknown): { name: string; value: string | undefined; action: string }[] {
  return ((list as Node[] | undefined) ?? []).map((d) => {
    const e = inner(d);
    const arg = e.arg as Node | undefined;
    return { name: String(e.defname), value: arg && nodeKind(arg) === 'String' ? String(inner(arg).sval) : undefined, action: String(e.defaction ?? 'DEFELEM_UNSPEC') };
  });
}

function asOptions(list: unknown): Options {
  const o: Options = {};
  for (const d of defOptions(list)) if (d.action !== 'DEFELEM_DROP') o[d.name] = d.value ?? '';
  return o;
}

/** Returns what to do with a DDL statement; throws PgError when validation fails. */
export async function planDdl(port: SessionPort, kind: string, n: Node): Promise<DdlAction> {
  switch (kind) {
    case 'CreateExtensionStmt':
      return OUR_EXTENSIONS.has(String(n.extname)) ? { kind: 'tag', tag: 'CREATE EXTENSION' } : { kind: 'plain', catalogChanged: false };
    case 'CreateFdwStmt':
      return createFdw(n);
    case 'CreateForeignServerStmt': {
      const ours = await runInternal(port, FDW_IS_OURS_SQL, [String(n.fdwname)], { errorIsReply: true });
      if (ours.kind !== 'rows') return { kind: 'failed' };
      if (ours.rows.length > 0) validateServerOptions(asOptions(n.options));
      return { kind: 'plain', catalogChanged: true };
    }
    case 'AlterForeignServerStmt': {
      const current = await serverOptions(port, String(n.servername));
      if (current === 'failed') return { kind: 'failed' };
      if (current) validateServerOptions(merge(current, n.options));
      return { kind: 'plain', catalogChanged: true };
    }
    case 'CreateUserMappingStmt':
    case 'AlterUserMappingStmt': {
      const current = await serverOptions(port, String(n.servername));
      if (current === 'failed') return { kind: 'failed' };
      if (current) validateMappingOptions(asOptions(n.options));
      return { kind: 'plain', catalogChanged: true };
    }
    case 'CreateForeignTableStmt': {
      const base = n.base as Node;
      const rel = inner({ RangeVar: base.relation });
      const current = await serverOptions(port, String(n.servername));
      if (current === 'failed') return { kind: 'failed' };
      if (current) {
        const name = rel.schemaname ? `${String(rel.schemaname)}.${String(rel.relname)}` : String(rel.relname);
        tableSpecFrom(name, asOptions(n.options), columnsOf(base.tableElts));
        return { kind: 'plain', catalogChanged: true, createdTable: String(rel.relname) };
      }
      return { kind: 'plain', catalogChanged: false };
    }
    case 'ImportForeignSchemaStmt': {
      const current = await serverOptions(port, String(n.server_name));
      if (current === 'failed') return { kind: 'failed' };
      if (current) throw new PgError(SqlState.FeatureNotSupported, 'IMPORT FOREIGN SCHEMA is not supported for Redis servers', { hint: 'Create each foreign table with CREATE FOREIGN TABLE.' });
      return { kind: 'plain', catalogChanged: false };
    }
    case 'AlterTableStmt':
      if (n.objtype !== 'OBJECT_FOREIGN_TABLE') return { kind: 'plain', catalogChanged: false };
      return (await alterForeignTable(port, n)) ?? { kind: 'failed' };
    default:
      // DROP and COMMENT pass through; a drop may remove a foreign table, so re-read the index.
      return { kind: 'plain', catalogChanged: kind === 'DropStmt' };
  }
}

/** Validates the table ALTER FOREIGN TABLE would leave behind (columns and options together). */
async function alterForeignTable(port: SessionPort, n: Node): Promise<DdlAction | undefined> {
  const rel = inner({ RangeVar: n.relation });
  const res = await resolveTables(port, [{ schemaname: rel.schemaname === undefined ? undefined : String(rel.schemaname), relname: String(rel.relname) }], false);
  if (res.kind === 'failed') return undefined;
  const r = res.tables[0];
  if (!r) return { kind: 'plain', catalogChanged: true };
  let columns = [...r.columns];
  let options = { ...r.table };
  for (const c of (n.cmds as Node[] | undefined) ?? []) {
    const cmd = inner(c);
    if (cmd.subtype === 'AT_AddColumn') columns.push(...columnsOf([cmd.def]));
    else if (cmd.subtype === 'AT_DropColumn') columns = columns.filter((col) => col.name !== cmd.name);
    else if (cmd.subtype === 'AT_GenericOptions') options = merge(options, inner(cmd.def).items);
  }
  tableSpecFrom(displayName(r.schema, r.name), options, columns);
  return { kind: 'plain', catalogChanged: true };
}

async function serverOptions(port: SessionPort, server: string): Promise<Options | undefined | 'failed'> {
  const r = await runInternal(port, SERVER_IF_OURS_SQL, [server], { errorIsReply: true });
  if (r.kind !== 'rows') return 'failed';
  const v = r.rows[0]?.[0];
  return v === undefined ? undefined : ((v === null ? {} : JSON.parse(v.toString('utf8'))) as Options);
}

function merge(current: Options, changes: unknown): Options {
  const o = { ...current };
  for (const d of defOptions(changes)) {
    if (d.action === 'DEFELEM_DROP') delete o[d.name];
    else o[d.name] = d.value ?? '';
  }
  return o;
}

function columnsOf(elts: unknown): ColumnDef[] {
  return ((elts as Node[] | undefined) ?? [])
    .filter((e) => nodeKind(e) === 'ColumnDef')
    .map((e) => {
      const c = inner(e);
      const names = ((inner({ TypeName: c.typeName }).names as Node[]) ?? []).map((x) => String(inner(x).sval));
      const t = names[names.length - 1] ?? 'text';
      return { name: String(c.colname), type: t, typeOid: 0, notNull: false };
    });
}

function createFdw(n: Node): DdlAction {
  const rawFuncs = ((n.func_options as Node[] | undefined) ?? []).map((d) => inner(d));
  const handler = rawFuncs.find((d) => d.defname === 'handler');
  const handlerName = handler ? ((inner(handler.arg).items as Node[]) ?? []).map((x) => String(inner(x).sval)).pop() : undefined;
  if (handlerName !== FDW_HANDLER) return { kind: 'plain', catalogChanged: true };
  const validator = rawFuncs.find((d) => d.defname === 'validator');
  const validatorName = validator?.arg ? ((inner(validator.arg).items as Node[]) ?? []).map((x) => String(inner(x).sval)).pop() : undefined;
  const opts: [string, string][] = [[FDW_MARK_OPTION, FDW_HANDLER]];
  if (validatorName) opts.push(['validator', validatorName]);
  for (const d of defOptions(n.options)) if (d.name !== FDW_MARK_OPTION && d.name !== 'validator') opts.push([d.name, d.value ?? '']);
  return { kind: 'text', text: `CREATE FOREIGN DATA WRAPPER ${quoteIdent(String(n.fdwname))} OPTIONS (${opts.map(([k, v]) => `${quoteIdent(k)} ${quoteLiteral(v)}`).join(', ')})` };
}
