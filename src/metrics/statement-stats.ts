/**
 * Per-statement attribution for the slow-statement log: which Redis commands a session's statement
 * sent, and how many rows it read from or wrote to Redis.
 *
 * A session's interceptor reaches Redis through `attributedAccess`, which hands out a thin view of
 * each shared pooled client (a prototype-derived object whose only own property is `sendCommand`).
 * Every command of that session, pipelined or not, then counts into the session's stats; the shared
 * client and its other sessions are untouched. Passthrough never reaches Redis, so it pays nothing.
 */
import type { RedisClient } from '../redis/pool.js';
import type { RedisConnSpec } from '../redis/connection.js';

/** What the session's current statement has done so far; reset when the next statement starts. */
export class StatementStats {
  commands = 0;
  readonly names = new Map<string, number>();
  rows: number | undefined;
  /** A local read whose rows left as Redis's reply was parsed (true), or only once all were made (false). */
  streamed: boolean | undefined;

  reset(): void {
    this.commands = 0;
    this.names.clear();
    this.rows = undefined;
    this.streamed = undefined;
  }

  /** A command sent without a pooled ioredis client (the raw lookup pipe). */
  count(name: string): void {
    this.commands++;
    this.names.set(name, (this.names.get(name) ?? 0) + 1);
  }

  addRows(n: number): void {
    this.rows = (this.rows ?? 0) + n;
  }

  /** Command names with their counts, most used first: `HGETALL×3 SCAN`. */
  commandNames(): string {
    return [...this.names]
      .sort((a, b) => b[1] - a[1])
      .map(([name, n]) => (n > 1 ? `${name}×${n}` : name))
      .join(' ');
  }
}

type Sendable = { sendCommand: (command: { name: string }, ...rest: unknown[]) => unknown };

/** Access to the pooled clients whose commands count into `stats` (a RedisAccess, plus the stats). */
export function attributedAccess(access: { client(conn: RedisConnSpec): Promise<RedisClient> }, stats: StatementStats): { client(conn: RedisConnSpec): Promise<RedisClient>; stats: StatementStats } {
  const views = new WeakMap<RedisClient, RedisClient>();
  const viewOf = (client: RedisClient): RedisClient => {
    let view = views.get(client);
    if (view) return view;
    const base = client as unknown as Sendable;
    view = Object.create(client) as RedisClient;
    const note = (name: string): void => {
      stats.commands++;
      const upper = name.toUpperCase();
      stats.names.set(upper, (stats.names.get(upper) ?? 0) + 1);
    };
    (view as unknown as Sendable).sendCommand = (command, ...rest) => {
      note(command.name);
      return base.sendCommand(command, ...rest);
    };
    // Commands a big scan sends on its own raw connection (redis/resp-scan.ts) count here too.
    (view as unknown as { noteCommand: (name: string) => void }).noteCommand = note;
    views.set(client, view);
    return view;
  };
  return { client: async (conn) => viewOf(await access.client(conn)), stats };
}
