import type { Logger } from 'pino';
import type { Decision, NameIndex } from '../sql/classify.js';
import type { Entry } from './expected-queue.js';

/** What an interceptor may do with the session it serves. All of it keeps the client's order. */
export interface SessionPort {
  readonly log: Logger;
  /** The user and database from the client's StartupMessage. */
  readonly user: string;
  readonly database: string;
  /** Every parameter of the client's StartupMessage, in one string: sessions started alike have the same. */
  readonly startupKey: string;
  /** HOST:PORT upstream's postgres_fdw reaches the proxy at (callback mode), when known. */
  readonly callbackAddress: string | undefined;
  /** Last ReadyForQuery status: 'I' idle, 'T' in a transaction block, 'E' failed transaction. */
  readonly txStatus: 'I' | 'T' | 'E';
  /** Upstream is inside a transaction block, as of the last reply seen (BEGIN counts before its ReadyForQuery). */
  readonly inTransactionBlock: boolean;
  /** Called with COMMIT / ROLLBACK / PREPARE TRANSACTION command tags as they pass, while set. */
  onTxEnd: ((tag: string) => void) | undefined;
  /** Upstream discards messages until the next Sync (an error happened earlier in this batch). */
  readonly inFailedBatch: boolean;
  /** Extended-protocol messages were sent since the last Sync: the proxy must not Sync on its own. */
  readonly batchOpen: boolean;
  /** Fires (reason: a 57014 PgError) when the client cancels the statement in progress or it hits statement_timeout. */
  readonly signal?: AbortSignal | undefined;
  /** `signal` has fired (asking this doesn't make the signal, which costs more than most statements). */
  readonly canceled?: boolean;
  /** No Sync or Query sent upstream still awaits its ReadyForQuery: `txStatus` is upstream's current one. */
  readonly upstreamSettled: boolean;
  /** No reply at all is owed by upstream. */
  readonly upstreamIdle: boolean;
  /**
   * The server encoding is UTF8, the client's UTF8 or one the proxy converts, and
   * standard_conforming_strings is on, as upstream reported.
   */
  readonly textConvertible: boolean;
  /** The client's encoding, as upstream last reported it (upstream reads and writes text in it). */
  readonly clientEncoding: string;
  /** Counts the proxy's writes to upstream: a setting read upstream holds while this hasn't moved. */
  readonly upstreamWrites: number;
  /** How many Syncs and Queries the client has sent: what a batch's messages have in common. */
  readonly batches: number;
  /** Something of the client's current batch went upstream since its last Sync. */
  readonly sentSinceSync: boolean;
  /** The proxy ended upstream's side of the batch with its own Sync: the client's Sync may be answered locally. */
  syncedUpstream(): void;
  /** Sends bytes upstream and records what their replies are for, in one step so order can't slip. */
  send(bytes: Buffer | Buffer[], entries: Entry[]): void;
  /** Queues bytes the proxy produced itself, sent when every earlier reply has been. */
  reply(bytes: Buffer, endsBatch?: boolean): void;
  /**
   * Writes bytes the proxy produced to the client at once, past the turn's hold, when no reply is owed
   * before them; false (nothing written) when one is. For a big result streamed as it is made.
   */
  replyNow(bytes: Buffer): boolean;
  /** Queues `bytes` then a ReadyForQuery with upstream's status when it is sent: a Query answered locally. */
  replyReady(bytes: Buffer): void;
}

/** Where a client message the hook flagged goes. Resolves once the message's effects are queued. */
export interface Interceptor {
  /** Names of the Redis foreign tables this session can see, for the statement hook's cheap check. */
  readonly names: NameIndex;
  /** Every statement must be inspected (transaction control matters while Redis writes wait for COMMIT). */
  readonly inspectAll: boolean;
  /** The name index is stale and should be read again before the next statement, when possible. */
  wantsRefresh(): boolean;
  refresh(port: SessionPort): Promise<void>;
  /** A statement or portal name was reused by a message the proxy forwarded untouched. */
  forget(kind: 'S' | 'P', name: string): void;
  onQuery(port: SessionPort, text: string, decision: Decision & { kind: 'inspect' }, raw: Buffer): Promise<void>;
  onParse(port: SessionPort, raw: Buffer, decision: Decision & { kind: 'inspect' }): Promise<void>;
  /** Bind/Describe/Execute/Close messages naming a statement or portal the interceptor owns. */
  onExtended(port: SessionPort, code: number, raw: Buffer): Promise<void> | void;
  /** Whether the named statement (kind 'S') or portal ('P') belongs to the interceptor. */
  owns(kind: 'S' | 'P', name: string): boolean;
  /** Any statement or portal owned at all: lets the hot path skip name lookups. */
  readonly ownsAny: boolean;
  /** The interceptor holds name resolutions that a statement passing by (SET search_path...) could stale. */
  readonly cachesNames: boolean;
  /** A statement the hook let through untouched, while `cachesNames`. */
  passedThrough(text: string): void;
  /** Called when the session ends, to release what it holds. */
  close(): void;
}
