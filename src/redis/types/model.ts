/**
 * The in-memory model of one key, for reads of a table whose transaction has writes staged on it
 * (overlay.ts): each type's module says how the items its read cursor returns build the key, how a
 * staged command changes it and what rows it then reads as. Values are text (the model is compared
 * with what statements wrote).
 */
import type { RedisOp, XaddOp } from '../write.js';

/** One row of a model, in the terms of the column roles (as the reader's Item, but text). */
export interface ModelItem {
  field?: string;
  value?: string;
  element?: string;
  score?: string;
  index?: string;
  /** A stream entry's id; null for an entry Redis has not numbered yet (its XADD is `staged`). */
  id?: string | null;
  pairs?: string[];
  /** The staged XADD this row is, when Redis has not numbered it yet: what a DELETE of the row cancels. */
  staged?: XaddOp;
}

export interface KeyModel {
  /**
   * Adds one item of the key as Redis holds it, in the order the type's read cursor returns them
   * (overlay.ts pages the key with it), before any staged command is applied.
   */
  add(item: ModelItem): void;
  /** Applies one staged command on this key; a command of another type's is not this model's. */
  apply(op: RedisOp): void;
  /** The key's rows, in the order a read returns them. */
  items(): Iterable<ModelItem>;
  /** A multi_* row's `items` JSON; undefined when the key is empty (no row) or the type can't aggregate. */
  json(): string | undefined;
}

/** How one type's keys are modelled. */
export interface ModelOf {
  /** A key that doesn't exist (after DEL, TRUNCATE, or before the first write); loading adds its items. */
  empty(): KeyModel;
}

/** {"f1":"v1",...} from flat [f1, v1, ...] text (a repeated field keeps its last value). */
export function pairsText(pairs: string[]): string {
  const obj = new Map<string, string>();
  for (let i = 0; i + 1 < pairs.length; i += 2) obj.set(pairs[i]!, pairs[i + 1]!);
  return `{${[...obj].map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`;
}
