/**
 * Foreign-data DDL. All of it is stored by upstream (the catalog is Postgres's); the proxy plays the
 * validator, and picks the handler:
 * - CREATE EXTENSION wrappers | redis_fdw_rs | redis_fdw: accepted, nothing to install; DROP EXTENSION
 *   of them likewise (the wrapper, servers and tables are dropped with DROP FOREIGN DATA WRAPPER ... CASCADE);
 * - CREATE FOREIGN DATA WRAPPER ... HANDLER redis_fdw_handler: marked as ours with the option
 *   handler 'redis_fdw_handler'. Callback mode (the proxy knows the address upstream reaches it at, and
 *   upstream has postgres_fdw): the handler is postgres_fdw_handler, no validator. Otherwise none;
 * - callback mode: each server gets libpq options host/port/dbname leading back to the proxy's
 *   reserved callback database, and a PUBLIC user mapping holding a generated secret, which is what
 *   the callback authenticates with (only the server's owner and superusers can read it);
 * - ALTER FOREIGN DATA WRAPPER w HANDLER redis_fdw_handler: upgrades a wrapper (and its servers and
 *   mappings) to callback mode, or re-points it at the proxy's current address;
 * - servers, user mappings and foreign tables of our wrapper: options validated, then passed through.
 */
import crypto from 'node:crypto';
import { encodeError } from '../protocol/backend.js';
import { callbackDbname, CALLBACK_SECRET_OPTION, CALLBACK_USER } from '../callback/reserved.js';
import { splitAdvertise } from '../callback/advertise.js';
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import { displayName, FDW_HANDLER, FDW_IS_OURS_SQL, FDW_MARK_OPTION, OUR_SERVERS_SQL, POSTGRES_FDW_SQL, SCHEMA_HAS_OTHERS_SQL, SERVER_IF_OURS_SQL } from '../catalog/catalog.js';
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
  'AlterFdwStmt',
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

/** DROP EXTENSION of only our extensions: like CREATE EXTENSION of them, nothing to do upstream. */
function dropsOnlyOurExtensions(n: Node): boolean {
  if (n.removeType !== 'OBJECT_EXTENSION') return false;
  const objects = (n.objects as Node[] | undefined) ?? [];
  return objects.length > 0 && objects.every((o) => OUR_EXTENSIONS.has(String(inner(o).sval)));
}

/** DDL forwarded as written (only the name index is re-read), unlike the DDL planDdl handles. */
export function passesThrough(kind: string, n: Node): boolean {
  return PASSTHROUGH_DDL.has(kind) && !(kind === 'DropStmt' && dropsOnlyOurExtensions(n));
}

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
      return createFdw(port, n);
    case 'AlterFdwStmt':
      return alterFdw(port, n);
    case 'CreateForeignServerStmt': {
      const ours = await runInternal(port, FDW_IS_OURS_SQL, [String(n.fdwname)], { errorIsReply: true });
      if (ours.kind !== 'rows') return { kind: 'failed' };
      if (ours.rows.length === 0) return { kind: 'plain', catalogChanged: true };
      // A dump restored through the proxy carries the callback options of where it came from: ours replace them.
      validateServerOptions(withoutLibpq(asOptions(n.options)));
      if (ours.rows[0]![0]?.toString() !== 'true') return { kind: 'plain', catalogChanged: true };
      return createCallbackServer(port, n);
    }
    case 'AlterForeignServerStmt': {
      const current = await serverOptions(port, String(n.servername));
      if (current === 'failed') return { kind: 'failed' };
      if (current) validateServerOptions(merge(withoutLibpq(current.options), n.options));
      return { kind: 'plain', catalogChanged: true };
    }
    case 'CreateUserMappingStmt':
    case 'AlterUserMappingStmt': {
      const current = await serverOptions(port, String(n.servername));
      if (current === 'failed') return { kind: 'failed' };
      if (!current) return { kind: 'plain', catalogChanged: true };
      validateMappingOptions(asOptions(n.options));
      if (kind === 'CreateUserMappingStmt' && current.callback) return createCallbackMapping(port, n);
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
        if (!current.callback && !(await warnIfSharedSchema(port, rel.schemaname === undefined ? null : String(rel.schemaname), String(rel.relname)))) return { kind: 'failed' };
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
    case 'DropStmt':
      if (dropsOnlyOurExtensions(n)) return { kind: 'tag', tag: 'DROP EXTENSION' };
      return { kind: 'plain', catalogChanged: true };
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

async function serverOptions(port: SessionPort, server: string): Promise<{ options: Options; callback: boolean } | undefined | 'failed'> {
  const r = await runInternal(port, SERVER_IF_OURS_SQL, [server], { errorIsReply: true });
  if (r.kind !== 'rows') return 'failed';
  const row = r.rows[0];
  if (!row) return undefined;
  const v = row[0];
  return { options: (v === null || v === undefined ? {} : JSON.parse(v.toString('utf8'))) as Options, callback: row[1]?.toString() === 'true' };
}

/** The libpq options callback mode adds to a server: not Redis options, so not validated as such. */
const LIBPQ_SERVER_OPTIONS = ['host', 'port', 'dbname'];

function withoutLibpq(o: Options): Options {
  const r = { ...o };
  for (const k of LIBPQ_SERVER_OPTIONS) delete r[k];
  return r;
}

function needAddress(port: SessionPort): string {
  const a = port.callbackAddress;
  if (a === undefined) {
    throw new PgError(SqlState.FeatureNotSupported, 'this wrapper uses postgres_fdw to call the proxy back, but this proxy does not know the address upstream reaches it at', { hint: 'Start the proxy with --advertise HOST:PORT (or --advertise auto when it and upstream run on the same machine).' });
  }
  return a;
}

const optionList = (opts: [string, string][]): string => (opts.length ? ` OPTIONS (${opts.map(([k, v]) => `${quoteIdent(k)} ${quoteLiteral(v)}`).join(', ')})` : '');

function callbackServerOptions(port: SessionPort): [string, string][] {
  const { host, port: p } = splitAdvertise(needAddress(port));
  return [['host', host], ['port', p], ['dbname', callbackDbname(port.database)]];
}

/** A fresh secret for a PUBLIC user mapping: what postgres_fdw presents to the callback. */
function callbackSecretOptions(): [string, string][] {
  return [['user', CALLBACK_USER], ['password', crypto.randomBytes(24).toString('base64url')], [CALLBACK_SECRET_OPTION, 'true']];
}

/** CREATE SERVER with the callback's libpq options, then its PUBLIC mapping with a generated secret. */
async function createCallbackServer(port: SessionPort, n: Node): Promise<DdlAction> {
  const opts: [string, string][] = defOptions(n.options).filter((d) => !LIBPQ_SERVER_OPTIONS.includes(d.name)).map((d) => [d.name, d.value ?? '']);
  opts.push(...callbackServerOptions(port));
  const name = quoteIdent(String(n.servername));
  const text = `CREATE SERVER ${n.if_not_exists ? 'IF NOT EXISTS ' : ''}${name}${n.servertype ? ` TYPE ${quoteLiteral(String(n.servertype))}` : ''}${n.version ? ` VERSION ${quoteLiteral(String(n.version))}` : ''} FOREIGN DATA WRAPPER ${quoteIdent(String(n.fdwname))}${optionList(opts)}`;
  if ((await runInternal(port, text, [], { errorIsReply: true })).kind !== 'rows') return { kind: 'failed' };
  const mapping = await runInternal(port, `CREATE USER MAPPING IF NOT EXISTS FOR PUBLIC SERVER ${name}${optionList(callbackSecretOptions())}`, [], { errorIsReply: true });
  return mapping.kind === 'rows' ? { kind: 'tag', tag: 'CREATE SERVER' } : { kind: 'failed' };
}

/**
 * A user's mapping replaces the generated PUBLIC one (for PUBLIC), and gets a secret of its own when
 * it has no password (with one, that password is both Redis's and the callback's secret).
 */
async function createCallbackMapping(port: SessionPort, n: Node): Promise<DdlAction> {
  const role = inner({ RoleSpec: n.user });
  const server = quoteIdent(String(n.servername));
  const given = defOptions(n.options).map((d): [string, string] => [d.name, d.value ?? '']);
  if (role.roletype === 'ROLESPEC_PUBLIC') {
    const drop = `DO $$BEGIN IF EXISTS (SELECT 1 FROM pg_catalog.pg_user_mappings WHERE srvname = ${quoteLiteral(String(n.servername))} AND umuser = 0 AND umoptions @> ARRAY['${CALLBACK_SECRET_OPTION}=true']) THEN DROP USER MAPPING FOR PUBLIC SERVER ${server}; END IF; END$$`;
    if ((await runInternal(port, drop, [], { errorIsReply: true })).kind !== 'rows') return { kind: 'failed' };
  }
  if (given.some(([k]) => k === 'password')) return { kind: 'plain', catalogChanged: true };
  const who = role.roletype === 'ROLESPEC_PUBLIC' ? 'PUBLIC' : role.roletype === 'ROLESPEC_CSTRING' ? quoteIdent(String(role.rolename)) : String(role.roletype).replace('ROLESPEC_', '');
  const opts = [...given.filter(([k]) => k !== 'user'), ...callbackSecretOptions()];
  return { kind: 'text', text: `CREATE USER MAPPING ${n.if_not_exists ? 'IF NOT EXISTS ' : ''}FOR ${who} SERVER ${server}${optionList(opts)}` };
}

/** The handler-less mode's landmine: information_schema.tables fails for a schema holding such a table. */
async function warnIfSharedSchema(port: SessionPort, schema: string | null, name: string): Promise<boolean> {
  const r = await runInternal(port, SCHEMA_HAS_OTHERS_SQL, [schema, name], { errorIsReply: true });
  if (r.kind !== 'rows') return false;
  const row = r.rows[0];
  if (row?.[1]?.toString() === 'true') {
    const where = row[0]?.toString() ?? 'this schema';
    port.reply(encodeError(new PgError('01000', `foreign table "${name}" goes into schema "${where}", which holds other tables`, {
      severity: 'WARNING',
      detail: `This proxy runs without a handler for Redis foreign tables (no --advertise address, or no postgres_fdw upstream), so queries of information_schema.tables over schema "${where}" fail, and ORM introspection of its other tables fails with them.`,
      hint: 'Create Redis foreign tables in a schema of their own (e.g. CREATE SCHEMA redis), or start the proxy with --advertise and upgrade the wrapper.',
    }), true));
  }
  return true;
}

/** The wrapper's handler: postgres_fdw's (installing the extension when upstream offers it), or none. */
async function postgresFdwHandler(port: SessionPort): Promise<string | undefined | 'failed'> {
  if (port.callbackAddress === undefined) return undefined;
  const r = await runInternal(port, POSTGRES_FDW_SQL, [], { errorIsReply: true });
  if (r.kind !== 'rows') return 'failed';
  const handler = r.rows[0]?.[0]?.toString();
  if (handler) return handler;
  if (r.rows[0]?.[1]?.toString() !== 'true') return undefined;
  if ((await runInternal(port, 'CREATE EXTENSION IF NOT EXISTS postgres_fdw', [], { errorIsReply: true })).kind !== 'rows') return 'failed';
  const again = await runInternal(port, POSTGRES_FDW_SQL, [], { errorIsReply: true });
  return again.kind === 'rows' ? (again.rows[0]?.[0]?.toString() ?? undefined) : 'failed';
}

/**
 * ALTER FOREIGN DATA WRAPPER w HANDLER redis_fdw_handler: callback mode for a wrapper of an earlier
 * version (or re-pointing one at the proxy's current address). Every server gets the libpq options,
 * every mapping without a password a secret, every server without a mapping a PUBLIC one.
 */
async function alterFdw(port: SessionPort, n: Node): Promise<DdlAction> {
  const handler = ((n.func_options as Node[] | undefined) ?? []).map((d) => inner(d)).find((d) => d.defname === 'handler');
  const handlerName = handler?.arg ? ((inner(handler.arg).items as Node[]) ?? []).map((x) => String(inner(x).sval)).pop() : undefined;
  if (handlerName !== FDW_HANDLER) return { kind: 'plain', catalogChanged: true };
  const fdw = String(n.fdwname);
  const ours = await runInternal(port, FDW_IS_OURS_SQL, [fdw], { errorIsReply: true });
  if (ours.kind !== 'rows') return { kind: 'failed' };
  if (ours.rows.length === 0) throw new PgError(SqlState.UndefinedObject, `foreign-data wrapper "${fdw}" is not a Redis wrapper of this proxy`);
  needAddress(port);
  const h = await postgresFdwHandler(port);
  if (h === 'failed') return { kind: 'failed' };
  if (h === undefined) throw new PgError(SqlState.FeatureNotSupported, 'upstream has no postgres_fdw extension, so Redis foreign tables stay without a handler', { hint: 'Install PostgreSQL\'s contrib package (postgres_fdw) on upstream.' });
  const run = async (sql: string): Promise<boolean> => (await runInternal(port, sql, [], { errorIsReply: true })).kind === 'rows';
  if (!(await run(`ALTER FOREIGN DATA WRAPPER ${quoteIdent(fdw)} HANDLER ${h} NO VALIDATOR`))) return { kind: 'failed' };
  const servers = await runInternal(port, OUR_SERVERS_SQL, [fdw], { errorIsReply: true });
  if (servers.kind !== 'rows') return { kind: 'failed' };
  for (const row of servers.rows) {
    const server = quoteIdent(row[0]!.toString());
    const have = new Set((row[1]?.toString() ?? '').split(',').map((kv) => kv.slice(0, kv.indexOf('='))));
    const set = callbackServerOptions(port).map(([k, v]) => `${have.has(k) ? 'SET' : 'ADD'} ${quoteIdent(k)} ${quoteLiteral(v)}`);
    if (!(await run(`ALTER SERVER ${server} OPTIONS (${set.join(', ')})`))) return { kind: 'failed' };
    const mappings = JSON.parse(row[2]?.toString() ?? 'null') as [string, Options | null][] | null;
    if (!mappings?.length) {
      if (!(await run(`CREATE USER MAPPING FOR PUBLIC SERVER ${server}${optionList(callbackSecretOptions())}`))) return { kind: 'failed' };
      continue;
    }
    for (const [who, o] of mappings) {
      if (o?.password !== undefined) continue;
      const add = callbackSecretOptions().filter(([k]) => !(k in (o ?? {}))).map(([k, v]) => `ADD ${quoteIdent(k)} ${quoteLiteral(v)}`);
      if (!(await run(`ALTER USER MAPPING FOR ${who === 'public' ? 'PUBLIC' : quoteIdent(who)} SERVER ${server} OPTIONS (${add.join(', ')})`))) return { kind: 'failed' };
    }
  }
  return { kind: 'tag', tag: 'ALTER FOREIGN DATA WRAPPER' };
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

async function createFdw(port: SessionPort, n: Node): Promise<DdlAction> {
  const rawFuncs = ((n.func_options as Node[] | undefined) ?? []).map((d) => inner(d));
  const handler = rawFuncs.find((d) => d.defname === 'handler');
  const handlerName = handler ? ((inner(handler.arg).items as Node[]) ?? []).map((x) => String(inner(x).sval)).pop() : undefined;
  if (handlerName !== FDW_HANDLER) return { kind: 'plain', catalogChanged: true };
  const validator = rawFuncs.find((d) => d.defname === 'validator');
  const validatorName = validator?.arg ? ((inner(validator.arg).items as Node[]) ?? []).map((x) => String(inner(x).sval)).pop() : undefined;
  const opts: [string, string][] = [[FDW_MARK_OPTION, FDW_HANDLER]];
  if (validatorName) opts.push(['validator', validatorName]);
  for (const d of defOptions(n.options)) if (d.name !== FDW_MARK_OPTION && d.name !== 'validator') opts.push([d.name, d.value ?? '']);
  const h = await postgresFdwHandler(port);
  if (h === 'failed') return { kind: 'failed' };
  return { kind: 'text', text: `CREATE FOREIGN DATA WRAPPER ${quoteIdent(String(n.fdwname))}${h ? ` HANDLER ${h} NO VALIDATOR` : ''}${optionList(opts)}` };
}
