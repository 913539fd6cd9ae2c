/**
 * Names a statement uses as whole-row references (`SELECT h FROM t h`, `row_to_json(h)`): a column
 * reference of one bare name. Such a name may also be a column; treating it as a row reference as
 * well only costs the read a different form, never a different result.
 */
import { inner, nodeKind, type Node } from './analyze.js';

export function wholeRowNames(tree: unknown): Set<string> {
  const out = new Set<string>();
  for (const r of wholeRowRefs(tree)) out.add(r.name);
  return out;
}

/** Where (byte offsets) `name` is used as a whole-row reference. */
export function wholeRowLocations(tree: unknown, name: string): number[] {
  return wholeRowRefs(tree).filter((r) => r.name === name).map((r) => r.location);
}

function wholeRowRefs(tree: unknown): { name: string; location: number }[] {
  const out: { name: string; location: number }[] = [];
  const stack: unknown[] = [tree];
  while (stack.length) {
    const x = stack.pop();
    if (Array.isArray(x)) {
      for (const y of x) stack.push(y);
      continue;
    }
    if (x === null || typeof x !== 'object') continue;
    if (nodeKind(x) === 'ColumnRef') {
      const fields = (inner(x).fields as Node[] | undefined) ?? [];
      if (fields.length === 1 && nodeKind(fields[0]) === 'String') out.push({ name: String(inner(fields[0]).sval), location: Number(inner(x).location) });
      continue;
    }
    for (const v of Object.values(x)) if (v !== null && typeof v === 'object') stack.push(v);
  }
  return out;
}
