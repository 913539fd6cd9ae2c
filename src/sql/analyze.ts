/**
 * Reads a parse tree (libpg-query JSON) for what the proxy needs: which relations a statement reads
 * and where, the highest $n it uses, and the WHERE clause each relation is filtered by.
 */

/** A node is `{ TypeName: {...fields} }`; fields hold nodes, arrays of nodes, or scalars. */
export type Node = Record<string, unknown>;

export interface RangeVarRef {
  schemaname: string | undefined;
  relname: string;
  /** Byte offset of the relation name in the statement text. */
  location: number;
  alias: string | undefined;
  /** Top-level WHERE of the SELECT/UPDATE/DELETE whose FROM holds this relation, if any. */
  where: Node | undefined;
  /** Whether the relation is the only item in its FROM (no join, so LIMIT could be pushed down). */
  sole: boolean;
  /** LIMIT of that SELECT, when it is the only FROM item. */
  limit: Node | undefined;
  /** OFFSET of that SELECT, when it is the only FROM item. */
  offset: Node | undefined;
  /**
   * The first LIMIT+OFFSET rows read are the rows the LIMIT keeps: nothing (WHERE, grouping,
   * aggregates, DISTINCT, ORDER BY, windows, functions in the target list) could drop, merge or
   * reorder rows before it applies. Then a read may stop there.
   */
  limitStopsRead: boolean;
}

export interface StatementInfo {
  /** The statement's node type, e.g. `SelectStmt`. */
  kind: string;
  node: Node;
  /** Relations read (FROM, USING, subqueries, CTE bodies), excluding CTE names and DML targets. */
  reads: RangeVarRef[];
  /** The relation an INSERT, UPDATE or DELETE writes (its WHERE and `sole` as for a read), or TRUNCATE's. */
  targets: RangeVarRef[];
  maxParam: number;
}

/** Statement kinds whose relation references are reads the proxy may rewrite. */
const READ_KINDS = new Set(['SelectStmt', 'InsertStmt', 'UpdateStmt', 'DeleteStmt', 'CreateTableAsStmt', 'ExplainStmt', 'DeclareCursorStmt', 'CopyStmt']);

export function nodeKind(n: unknown): string | undefined {
  if (n === null || typeof n !== 'object' || Array.isArray(n)) return undefined;
  const keys = Object.keys(n);
  return keys.length === 1 ? keys[0] : undefined;
}

export function inner(n: unknown): Node {
  const k = nodeKind(n);
  return (k ? (n as Node)[k] : {}) as Node;
}

/**
 * Analyses made ahead, by statement node: a big VALUES statement is analysed before its rows are back
 * from the parse worker, where that gives the same result (sql/detached-values.ts).
 */
const remembered = new WeakMap<Node, StatementInfo>();

export function rememberAnalysis(stmt: Node, info: StatementInfo): void {
  remembered.set(stmt, info);
}

export function analyzeStatement(stmt: Node): StatementInfo {
  const ahead = remembered.get(stmt);
  if (ahead) return ahead;
  const kind = nodeKind(stmt) ?? '';
  const info: StatementInfo = { kind, node: inner(stmt), reads: [], targets: [], maxParam: 0 };
  info.maxParam = maxParamRef(stmt);
  if (READ_KINDS.has(kind)) new Walker(info.reads).visit(stmt, new Set());
  const q = info.node;
  if (kind === 'InsertStmt' || kind === 'UpdateStmt' || kind === 'DeleteStmt') {
    const from = (kind === 'DeleteStmt' ? q.usingClause : q.fromClause) as unknown[] | undefined;
    const where = kind === 'InsertStmt' ? undefined : (q.whereClause as Node | undefined);
    info.targets.push(rangeVarRef(q.relation as Node, where, !from?.length, undefined));
  } else if (kind === 'TruncateStmt') {
    for (const r of (q.relations as Node[] | undefined) ?? []) info.targets.push(rangeVarRef(inner(r), undefined, false, undefined));
  }
  return info;
}

interface QueryLimit {
  count: Node | undefined;
  offset: Node | undefined;
  stopsRead: boolean;
}

function rangeVarRef(body: Node, where: Node | undefined, sole: boolean, limit: QueryLimit | undefined): RangeVarRef {
  const relname = String(body.relname);
  const schemaname = body.schemaname === undefined ? undefined : String(body.schemaname);
  const alias = body.alias ? String((body.alias as Node).aliasname) : undefined;
  const l = sole ? limit : undefined;
  return { schemaname, relname, location: Number(body.location ?? 0), alias, where, sole, limit: l?.count, offset: l?.offset, limitStopsRead: l?.stopsRead ?? false };
}

/** Visits every object under `n`, iteratively (parse trees nest deep); stops when `visit` returns true. */
function walkNodes(n: unknown, visit: (x: object) => boolean | void): void {
  const stack: unknown[] = [n];
  while (stack.length) {
    const x = stack.pop();
    if (Array.isArray(x)) {
      for (const y of x) stack.push(y);
    } else if (x !== null && typeof x === 'object') {
      if (visit(x) === true) return;
      for (const v of Object.values(x)) if (v !== null && typeof v === 'object') stack.push(v);
    }
  }
}

/** Whether any node under `n` is of one of these kinds. */
function contains(n: unknown, kinds: ReadonlySet<string>): boolean {
  let found = false;
  walkNodes(n, (x) => {
    const k = nodeKind(x);
    return (found = k !== undefined && kinds.has(k));
  });
  return found;
}

/** Function calls (aggregates, set-returning functions) and subqueries change the row count. */
const ROW_CHANGING = new Set(['FuncCall', 'SubLink', 'GroupingFunc', 'WindowFunc']);

/** The SELECT's LIMIT and OFFSET, and whether reading only LIMIT+OFFSET rows gives the same answer. */
function queryLimit(q: Node): QueryLimit {
  const count = q.limitCount as Node | undefined;
  const offset = q.limitOffset as Node | undefined;
  const rowsKept =
    count !== undefined &&
    q.limitOption === 'LIMIT_OPTION_COUNT' &&
    !(q.whereClause || q.groupClause || q.havingClause || q.distinctClause || q.sortClause || q.windowClause || q.groupDistinct) &&
    !contains(q.targetList, ROW_CHANGING);
  return { count, offset, stopsRead: rowsKept };
}

/** The RETURNING list of an INSERT/UPDATE/DELETE (ResTarget nodes), empty when there is none. */
export function returningList(q: Node): Node[] {
  return ((q.returningClause as Node | undefined)?.exprs as Node[] | undefined) ?? [];
}

/** Whether a target-list entry is `*` or `name.*`. */
export function isStarTarget(resTarget: Node): boolean {
  const v = inner(resTarget).val;
  return nodeKind(v) === 'ColumnRef' && ((inner(v).fields as Node[] | undefined) ?? []).some((f) => nodeKind(f) === 'A_Star');
}

export function maxParamRef(n: unknown): number {
  let max = 0;
  walkNodes(n, (x) => {
    const pr = (x as Node).ParamRef as { number?: number } | undefined;
    if (pr && typeof pr.number === 'number' && pr.number > max) max = pr.number;
  });
  return max;
}

class Walker {
  constructor(private readonly out: RangeVarRef[]) {}

  visit(n: unknown, ctes: ReadonlySet<string>): void {
    if (Array.isArray(n)) {
      for (const x of n) this.visit(x, ctes);
      return;
    }
    if (n === null || typeof n !== 'object') return;
    const kind = nodeKind(n);
    if (kind === undefined) {
      for (const v of Object.values(n)) this.visit(v, ctes);
      return;
    }
    const body = (n as Node)[kind];
    // A one-key object whose value is a scalar (`{ sval: '…' }` inside a String node) is no node:
    // walking a string literal's characters made analysis cost a property per character.
    if (body === null || typeof body !== 'object') return;
    switch (kind) {
      case 'SelectStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'InsertStmt':
        return this.visitQuery(kind, body as Node, ctes);
      case 'RangeVar':
        // A RangeVar reached outside a FROM list (e.g. CREATE TABLE AS's target) is not a read.
        return;
      default:
        for (const v of Object.values(body)) this.visit(v, ctes);
    }
  }

  private visitQuery(kind: string, q: Node, outer: ReadonlySet<string>): void {
    let ctes = outer;
    const withClause = q.withClause as Node | undefined;
    if (withClause) {
      const list = (withClause.ctes as Node[] | undefined) ?? [];
      const names = new Set(outer);
      // A non-recursive CTE sees only the CTEs before it, so `WITH t AS (SELECT * FROM t)` reads the
      // table t; under WITH RECURSIVE every CTE of the list is in scope.
      if (withClause.recursive) for (const c of list) names.add(String(inner(c).ctename));
      for (const c of list) {
        this.visit(inner(c).ctequery, new Set(names));
        names.add(String(inner(c).ctename));
      }
      ctes = names;
    }
    // Set operations keep their branches as bare SelectStmt objects (not node-wrapped).
    if (q.larg || q.rarg) {
      for (const branch of [q.larg, q.rarg]) if (branch) this.visitQuery('SelectStmt', branch as Node, ctes);
    }
    const from = kind === 'DeleteStmt' ? (q.usingClause as unknown[] | undefined) : (q.fromClause as unknown[] | undefined);
    const items = from ?? [];
    const sole = items.length === 1 && nodeKind(items[0]) === 'RangeVar' && kind === 'SelectStmt';
    const limit = sole ? queryLimit(q) : undefined;
    for (const item of items) this.visitFromItem(item, ctes, q.whereClause as Node | undefined, sole, limit);
    for (const [k, v] of Object.entries(q)) {
      // DML targets are writes, handled by the write path; FROM items were visited above.
      if (k === 'withClause' || k === 'fromClause' || k === 'usingClause' || k === 'relation' || k === 'larg' || k === 'rarg') continue;
      this.visit(v, ctes);
    }
  }

  private visitFromItem(item: unknown, ctes: ReadonlySet<string>, where: Node | undefined, sole: boolean, limit: QueryLimit | undefined): void {
    const kind = nodeKind(item);
    const body = inner(item);
    if (kind === 'RangeVar') {
      const ref = rangeVarRef(body, where, sole, limit);
      if (ref.schemaname === undefined && ctes.has(ref.relname)) return;
      this.out.push(ref);
    } else if (kind === 'JoinExpr') {
      this.visitFromItem(body.larg, ctes, where, false, undefined);
      this.visitFromItem(body.rarg, ctes, where, false, undefined);
      this.visit(body.quals, ctes);
    } else {
      this.visit(item, ctes);
    }
  }
}
