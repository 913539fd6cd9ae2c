/**
 * The statement hook: every Query and Parse passes through `classify`, which decides whether the
 * statement is forwarded untouched or handed to the interceptor. It must be cheap, so it rules text
 * out before it parses: only text that can mention a Redis foreign table, or be foreign-table DDL,
 * reaches the parser, and parse results are cached by text.
 */
import type { ParseResult } from './parser.js';
import { ParseCache } from './parse-cache.js';

/** What the hook knows of the catalog: the names that make a statement worth parsing. */
export interface NameIndex {
  /** True when `lowerText` may refer to a known Redis foreign table. */
  mayMention(lowerText: string): boolean;
  /** Whether a relation name, as the parser folded it, is a known Redis foreign table's. */
  has(relname: string): boolean;
  readonly size: number;
}

export const EMPTY_INDEX: NameIndex = { mayMention: () => false, has: () => false, size: 0 };

export type Decision = { kind: 'forward' } | { kind: 'inspect'; text: string; tree: ParseResult };

export const FORWARD: Decision = { kind: 'forward' };

/** Keywords without which a statement cannot be foreign-data-wrapper DDL. */
const DDL_HINT = /foreign|server|mapping|extension/i;

export class StatementHook {
  readonly cache: ParseCache;

  constructor(cache?: ParseCache) {
    this.cache = cache ?? new ParseCache();
  }

  /** `names` is what the session knows of its database; `watchDdl` is off in pure passthrough. */
  classify(text: string, names: NameIndex, watchDdl: boolean, all = false): Decision {
    const mayBeDdl = all || (watchDdl && DDL_HINT.test(text));
    if (!mayBeDdl && (names.size === 0 || !names.mayMention(text.toLowerCase()))) return FORWARD;
    let tree: ParseResult;
    try {
      tree = this.cache.get(text);
    } catch {
      // Upstream will report the syntax error itself, exactly as Postgres words it.
      return FORWARD;
    }
    return { kind: 'inspect', text, tree };
  }
}
