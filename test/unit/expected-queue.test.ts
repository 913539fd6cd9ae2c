// ExpectedQueue: the replies owed to the client, in order. Pure: a fake `write` collects the output.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ExpectedQueue, forward, Req, type Capture, type Entry, type Local, type Outcome } from '../../src/session/expected-queue.js';
import { Framer, FrameError } from '../../src/protocol/framer.js';
import { be, pgError, splitFrames } from '../support/frames.js';

// ---- fixtures ----

const T = be.rowDescription([{ name: 'x', tableOid: 0, attnum: 0, typeOid: 23, typeLen: 4, typeMod: -1, format: 0 }]);
const D1 = be.dataRow([Buffer.from('1')]);
const D2 = be.dataRow([Buffer.from('2')]);
const C1 = be.commandComplete('SELECT 1');
const C2 = be.commandComplete('SELECT 2');
const ZI = be.readyForQuery('I');
const ZT = be.readyForQuery('T');
const ZE = be.readyForQuery('E');
const P1 = be.parseComplete();
const B2 = be.bindComplete();
const CL3 = be.closeComplete();
const t = be.parameterDescription([23]);
const n = be.noData();
const I = be.emptyQuery();
const s = be.portalSuspended();
const E = pgError('42601', 'syntax error');
const N = be.noticeResponse([['S', 'NOTICE'], ['C', '00000'], ['M', 'hello']]);
const S = be.parameterStatus('TimeZone', 'UTC');
const A = be.notification(7, 'chan', 'payload');
const V = be.functionCallResponse(Buffer.from([0, 0, 0, 1]));
const G = be.copyInResponse(0, [0]);
const H = be.copyOutResponse(0, [0]);
const d = be.copyData(Buffer.from('row\n'));
const c = be.copyDone();

const cat = (...bs: Buffer[]): Buffer => Buffer.concat(bs);

/** A local reply, recognisable in the output. */
function local(tag: string, endsBatch = false, status: 'I' | 'T' | 'E' = 'I'): Local {
  const cc = be.commandComplete(`LOCAL ${tag}`);
  return { kind: 'local', bytes: endsBatch ? cat(cc, be.readyForQuery(status)) : cc, endsBatch };
}

interface Harness {
  q: ExpectedQueue;
  writes: Buffer[];
  /** Everything written, in order. */
  out(): Buffer;
  /** Ordered log: 'w:<frame codes>' per write and 'done:<name>:<outcome>' per capture. */
  log: string[];
  idleCalls: number;
  /** Feeds whole frames (one consume call). */
  feed(...frames: Buffer[]): void;
}

function harness(): Harness {
  const writes: Buffer[] = [];
  const log: string[] = [];
  const h: Harness = {
    q: undefined as unknown as ExpectedQueue,
    writes,
    log,
    idleCalls: 0,
    out: () => Buffer.concat(writes),
    feed: (...frames) => {
      const buf = Buffer.concat(frames);
      h.q.consume(buf, buf.length);
    },
  };
  h.q = new ExpectedQueue(
    (b) => {
      writes.push(b);
      log.push(`w:${splitFrames(b).frames.map((f) => f.code).join('')}`);
    },
    () => h.idleCalls++,
  );
  return h;
}

interface CaptureProbe extends Capture {
  seen: Buffer[];
  outcomes: Outcome[];
}

/**
 * A capture entry. `map` decides what the client gets for each frame (default: the frame itself).
 * Records the frames it saw (copied) and its outcomes; logs onDone into h.log.
 */
function capture(h: Harness, name: string, req: Req, map: (code: string, frame: Buffer) => Buffer | null = (_c, f) => Buffer.from(f)): CaptureProbe {
  const probe: CaptureProbe = {
    kind: 'capture',
    req,
    seen: [],
    outcomes: [],
    onFrame(code, buf, start, end) {
      const frame = buf.subarray(start, end);
      assert.equal(frame[0], code, 'code is the type byte of the frame');
      assert.equal(frame.readInt32BE(1) + 1, frame.length, 'start/end delimit exactly one frame');
      probe.seen.push(Buffer.from(frame));
      return map(String.fromCharCode(code), frame);
    },
    onDone(outcome) {
      probe.outcomes.push(outcome);
      h.log.push(`done:${name}:${outcome}`);
    },
  };
  return probe;
}

// ---- forward entries end on the right codes ----

describe('forward entries end on the right reply', () => {
  // [name, req, frames that must not end the entry, the frame that ends it]
  const cases: [string, Req, Buffer[], Buffer][] = [
    ['Parse → ParseComplete', Req.Parse, [N], P1],
    ['Bind → BindComplete', Req.Bind, [S], B2],
    ['Close → CloseComplete', Req.Close, [A], CL3],
    ['Describe statement → ParameterDescription, RowDescription', Req.Describe, [t], T],
    ['Describe statement → ParameterDescription, NoData', Req.Describe, [t], n],
    ['Describe portal → NoData', Req.Describe, [], n],
    ['Execute → DataRows, CommandComplete', Req.Execute, [D1, D2, N], C1],
    ['Execute → DataRow, PortalSuspended', Req.Execute, [D1], s],
    ['Execute → EmptyQueryResponse', Req.Execute, [], I],
    ['Execute COPY TO → CopyOut, CopyData, CopyDone, CommandComplete', Req.Execute, [H, d, d, c], C1],
    ['Execute COPY FROM → CopyIn, CommandComplete', Req.Execute, [G], C1],
    ['Sync → ReadyForQuery', Req.Sync, [], ZI],
    ['Sync with a commit-time error → ErrorResponse, ReadyForQuery', Req.Sync, [E], ZI],
    ['Query, two statements → ... ReadyForQuery', Req.Query, [T, D1, C1, T, D2, C2], ZT],
    ['Query with an error', Req.Query, [T, D1, E], ZE],
    ['Query, empty', Req.Query, [I], ZI],
    ['Query, COPY FROM STDIN', Req.Query, [G, C1], ZI],
    ['Query, COPY TO STDOUT', Req.Query, [H, d, c, C1], ZI],
    ['FunctionCall → FunctionCallResponse, ReadyForQuery', Req.FunctionCall, [V], ZI],
    ['FunctionCall with an error', Req.FunctionCall, [E], ZI],
  ];
  for (const [name, req, before, last] of cases) {
    test(name, () => {
      const h = harness();
      h.q.push(forward(req));
      const after = local('after');
      h.q.push(after);
      assert.equal(h.q.size, 2);
      for (const f of before) {
        h.feed(f);
        assert.equal(h.q.size, 2, `${splitFrames(f).frames[0]!.code} must not end the entry`);
        assert.equal(h.idleCalls, 0);
      }
      h.feed(last);
      assert.equal(h.q.size, 0, 'the entry ended');
      assert.equal(h.idleCalls, 1, 'onIdle once the queue is empty');
      assert.deepEqual(h.out(), cat(...before, last, after.bytes), 'the local follows right after the last reply');
    });
  }

  test('the ending frame and the next entry\'s frames in one chunk: local goes between them', () => {
    const h = harness();
    h.q.push(forward(Req.Parse));
    const l1 = local('1');
    const l2 = local('2');
    h.q.push(l1);
    h.q.push(l2);
    h.q.push(forward(Req.Bind));
    const l3 = local('3');
    h.q.push(l3);
    h.feed(P1, B2);
    assert.deepEqual(h.out(), cat(P1, l1.bytes, l2.bytes, B2, l3.bytes));
    assert.deepEqual(h.log, ['w:1', 'w:C', 'w:C', 'w:2', 'w:C']);
  });
});

// ---- async messages ----

describe('asynchronous messages (NoticeResponse, ParameterStatus, NotificationResponse)', () => {
  test('with no entry at all: forwarded as they are, in one write', () => {
    const h = harness();
    const chunk = cat(N, S, A);
    h.q.consume(chunk, chunk.length);
    assert.equal(h.writes.length, 1);
    assert.equal(h.writes[0], chunk, 'the very chunk, not a copy');
    assert.equal(h.q.size, 0);
  });

  test('unexpected frames with no entry (e.g. a FATAL on admin shutdown) are forwarded', () => {
    const h = harness();
    const fatal = pgError('57P01', 'terminating connection due to administrator command', 'FATAL');
    h.feed(fatal);
    assert.deepEqual(h.out(), fatal);
    assert.equal(h.q.inFailedBatch, false, 'an error nobody asked for starts no skip');
  });

  test('in the middle of a forwarded Query: forwarded in place, entry not ended', () => {
    const h = harness();
    h.q.push(forward(Req.Query));
    const l = local('after');
    h.q.push(l);
    h.feed(T, N, D1, A, C1, S);
    assert.equal(h.q.size, 2);
    h.feed(ZI);
    assert.deepEqual(h.out(), cat(T, N, D1, A, C1, S, ZI, l.bytes));
  });

  test('async messages do not end a Parse, Bind or Describe', () => {
    for (const req of [Req.Parse, Req.Bind, Req.Describe, Req.Close, Req.Execute, Req.Sync]) {
      const h = harness();
      h.q.push(forward(req));
      h.feed(N, S, A);
      assert.equal(h.q.size, 1, `req ${req}`);
    }
  });

  test('in the middle of a capture: forwarded, never shown to the capture, order kept', () => {
    const h = harness();
    const cap = capture(h, 'c', Req.Execute, (code, f) => (code === 'D' ? be.dataRow([Buffer.from('replaced')]) : Buffer.from(f)));
    h.q.push(cap);
    h.feed(N, D1, A, D2, S, C1, N);
    assert.deepEqual(
      cap.seen.map((f) => String.fromCharCode(f[0]!)),
      ['D', 'D', 'C'],
    );
    const R = be.dataRow([Buffer.from('replaced')]);
    assert.deepEqual(h.out(), cat(N, R, A, R, S, C1, N));
    assert.deepEqual(cap.outcomes, ['done']);
  });
});

// ---- errors in the extended protocol ----

describe('ErrorResponse to an extended-protocol message', () => {
  for (const [name, req, before] of [
    ['Parse', Req.Parse, []],
    ['Bind', Req.Bind, []],
    ['Describe', Req.Describe, [t]],
    ['Execute', Req.Execute, [D1, D2]],
    ['Close', Req.Close, []],
  ] as [string, Req, Buffer[]][]) {
    test(`to ${name}: later entries are skipped until the Sync entry`, () => {
      const h = harness();
      h.q.push(forward(req));
      h.q.push(forward(Req.Bind));
      const cap = capture(h, 'skipped-capture', Req.Execute);
      h.q.push(cap);
      h.q.push(local('dropped'));
      h.q.push(forward(Req.Describe));
      h.q.push(forward(Req.Sync));
      const afterSync = local('after-sync');
      h.q.push(afterSync);
      h.feed(...before, E);
      assert.equal(h.q.size, 2, 'only the Sync entry and the local after it remain');
      assert.deepEqual(cap.outcomes, ['skipped']);
      assert.equal(cap.seen.length, 0);
      assert.equal(h.q.inFailedBatch, false, 'the Sync is already queued, so nothing further is skipped');
      h.feed(ZE);
      assert.equal(h.q.size, 0);
      assert.deepEqual(h.out(), cat(...before, E, ZE, afterSync.bytes), 'the dropped local never appears');
      assert.equal(h.q.txStatus, 0x45);
    });
  }

  test('error and the rest in one chunk: same result', () => {
    const h = harness();
    h.q.push(forward(Req.Parse));
    const cap = capture(h, 'cap', Req.Bind);
    h.q.push(cap);
    h.q.push(local('dropped'));
    h.q.push(forward(Req.Sync));
    h.q.push(forward(Req.Query));
    h.feed(E, ZI, T, D1, C1, ZI);
    assert.deepEqual(h.out(), cat(E, ZI, T, D1, C1, ZI));
    assert.deepEqual(cap.outcomes, ['skipped']);
    assert.equal(h.q.size, 0);
  });

  test('a local that ends a batch stops the skip like a Sync does', () => {
    const h = harness();
    h.q.push(forward(Req.Execute));
    h.q.push(local('dropped'));
    const batchEnd = local('sync', true, 'I');
    h.q.push(batchEnd);
    h.q.push(forward(Req.Query));
    h.feed(E);
    assert.deepEqual(h.out(), cat(E, batchEnd.bytes), 'the batch-ending local is sent at once after the error');
    assert.equal(h.q.size, 1);
    assert.equal(h.q.inFailedBatch, false);
  });

  test('no Sync queued yet: entries pushed while skipping are skipped until a Sync entry is pushed', () => {
    const h = harness();
    h.q.push(forward(Req.Parse)); // client sent Parse + Flush only
    h.feed(E);
    assert.equal(h.q.size, 0);
    assert.equal(h.q.inFailedBatch, true);
    assert.equal(h.idleCalls, 1);

    h.q.push(forward(Req.Bind));
    h.q.push(forward(Req.Execute));
    h.q.push(forward(Req.Query)); // Postgres ignores a Query while skipping, too
    assert.equal(h.q.size, 0, 'skipped entries are not queued');
    const cap = capture(h, 'while-skipping', Req.Describe);
    h.q.push(cap);
    assert.deepEqual(cap.outcomes, ['skipped'], 'a capture learns at once');
    h.q.push(local('dropped'));
    assert.deepEqual(h.out(), E, 'a local pushed while skipping is dropped');
    assert.equal(h.q.inFailedBatch, true);

    h.q.push(forward(Req.Sync));
    assert.equal(h.q.inFailedBatch, false);
    assert.equal(h.q.size, 1);
    const after = local('after');
    h.q.push(after);
    h.feed(ZI);
    assert.deepEqual(h.out(), cat(E, ZI, after.bytes));
  });

  test('no Sync queued yet: a batch-ending local pushed while skipping ends the skip and is sent at once', () => {
    const h = harness();
    h.q.push(forward(Req.Bind));
    h.feed(E);
    assert.equal(h.q.inFailedBatch, true);
    const l = local('sync', true, 'T');
    h.q.push(l);
    assert.equal(h.q.inFailedBatch, false);
    assert.deepEqual(h.out(), cat(E, l.bytes));
    assert.equal(h.q.txStatus, 0x54, 'txStatus from the local ReadyForQuery');
    h.q.push(forward(Req.Parse));
    assert.equal(h.q.size, 1, 'entries after it are queued again');
  });

  test('a Sync capture pushed while skipping ends the skip and is queued', () => {
    const h = harness();
    h.q.push(forward(Req.Parse));
    h.feed(E);
    const cap = capture(h, 'sync-cap', Req.Sync, () => null);
    h.q.push(cap);
    assert.equal(h.q.inFailedBatch, false);
    assert.equal(h.q.size, 1);
    h.feed(ZI);
    assert.deepEqual(cap.outcomes, ['done']);
    assert.deepEqual(h.out(), E);
  });

  test('an error ending a capture entry also starts the skip', () => {
    const h = harness();
    const c1 = capture(h, 'c1', Req.Execute);
    const c2 = capture(h, 'c2', Req.Execute);
    h.q.push(c1);
    h.q.push(c2);
    h.q.push(forward(Req.Sync));
    h.feed(D1, E, ZI);
    assert.deepEqual(c1.outcomes, ['done']);
    assert.equal(c1.seen.length, 2);
    assert.deepEqual(c2.outcomes, ['skipped']);
    assert.deepEqual(h.out(), cat(D1, E, ZI));
    assert.equal(h.q.size, 0);
  });

  test('an error inside a simple Query skips nothing', () => {
    const h = harness();
    h.q.push(forward(Req.Query));
    h.q.push(forward(Req.Parse));
    const l = local('after-parse');
    h.q.push(l);
    h.feed(E, ZI);
    assert.equal(h.q.size, 2, 'the Parse is still owed its reply');
    assert.equal(h.q.inFailedBatch, false);
    h.feed(P1);
    assert.deepEqual(h.out(), cat(E, ZI, P1, l.bytes));
  });

  test('an error answering a Sync (commit failure) skips nothing', () => {
    const h = harness();
    h.q.push(forward(Req.Sync));
    h.q.push(forward(Req.Parse));
    h.feed(E, ZI);
    assert.equal(h.q.size, 1);
    assert.equal(h.q.inFailedBatch, false);
  });

  test('an error answering a FunctionCall skips nothing', () => {
    const h = harness();
    h.q.push(forward(Req.FunctionCall));
    h.q.push(forward(Req.Bind));
    h.feed(E, ZI);
    assert.equal(h.q.size, 1);
  });
});

describe('messages Postgres answers although no entry was pushed', () => {
  // A Flush with a body: Postgres replies ERROR 08P01 "invalid message format" and discards until Sync.
  test('a non-FATAL ErrorResponse with nothing queued starts the skip until Sync', () => {
    const h = harness();
    h.feed(pgError('08P01', 'invalid message format'));
    assert.equal(h.q.inFailedBatch, true);
    h.q.push(forward(Req.Parse)); // Postgres ignores it
    assert.equal(h.q.size, 0);
    h.q.push(forward(Req.Sync));
    const l = local('after');
    h.q.push(l);
    h.feed(ZI);
    assert.equal(h.q.size, 0);
    assert.deepEqual(h.out(), cat(pgError('08P01', 'invalid message format'), ZI, l.bytes));
  });

  test('the same error after the last entry was answered also starts the skip', () => {
    const h = harness();
    h.q.push(forward(Req.Parse));
    h.feed(P1, pgError('08P01', 'invalid message format')); // Parse, then the malformed Flush
    assert.equal(h.q.inFailedBatch, true);
  });
});

describe('COPY FROM STDIN (Postgres ignores Sync and Flush during copy-in)', () => {
  test('extended protocol: a Sync pipelined right after Execute is not owed a reply', () => {
    const h = harness();
    for (const r of [Req.Parse, Req.Bind, Req.Execute, Req.Sync]) h.q.push(forward(r));
    h.feed(P1, B2, G);
    h.q.push(forward(Req.Sync)); // a client Sync sent during the copy: ignored upstream too
    h.q.markCopyEnd(); // CopyDone
    h.q.push(forward(Req.Sync)); // the Sync after CopyDone is the one answered
    const l = local('after');
    h.q.push(l);
    h.feed(C1);
    assert.equal(h.q.size, 2, 'the Sync after CopyDone and the local remain');
    h.feed(ZI);
    assert.equal(h.q.size, 0);
    assert.deepEqual(h.out(), cat(P1, B2, G, C1, ZI, l.bytes));
  });

  test('simple Query: CopyDone sent before the CopyInResponse arrives', () => {
    const h = harness();
    h.q.push(forward(Req.Query));
    h.q.markCopyEnd();
    h.q.push(forward(Req.Query));
    h.feed(G, C1, ZI);
    assert.equal(h.q.size, 1, 'the second Query is still owed');
    h.feed(T, D1, C1, ZI);
    assert.equal(h.q.size, 0);
    assert.deepEqual(h.out(), cat(G, C1, ZI, T, D1, C1, ZI));
  });

  test('extended protocol: everything pipelined, CopyDone and Sync included', () => {
    const h = harness();
    for (const r of [Req.Parse, Req.Bind, Req.Execute, Req.Sync]) h.q.push(forward(r));
    h.q.markCopyEnd();
    h.q.push(forward(Req.Sync));
    h.feed(P1, B2, G, C1, ZI);
    assert.equal(h.q.size, 0, 'only one ReadyForQuery comes, for the Sync after CopyDone');
  });
});

// ---- locals ----

describe('local entries', () => {
  test('pushed onto an empty queue: written at once, queue stays empty', () => {
    const h = harness();
    const l = local('now');
    h.q.push(l);
    assert.equal(h.writes.length, 1);
    assert.equal(h.writes[0], l.bytes);
    assert.equal(h.q.size, 0);
    assert.equal(h.q.idle, true);
  });

  test('behind a forward entry: held until that entry ends, not before', () => {
    const h = harness();
    h.q.push(forward(Req.Execute));
    const l = local('held');
    h.q.push(l);
    h.feed(D1, D2);
    assert.deepEqual(h.out(), cat(D1, D2));
    h.feed(C1);
    assert.deepEqual(h.out(), cat(D1, D2, C1, l.bytes));
  });

  test('behind a capture: written right after the capture ends', () => {
    const h = harness();
    const cap = capture(h, 'cap', Req.Query, () => null);
    h.q.push(cap);
    const l = local('result', true, 'I');
    h.q.push(l);
    h.feed(T, D1, C1);
    assert.equal(h.writes.length, 0);
    h.feed(ZI);
    assert.deepEqual(h.log, ['done:cap:done', 'w:CZ']);
    assert.deepEqual(h.out(), l.bytes);
  });

  test('a run of locals between forwards keeps order', () => {
    const h = harness();
    const ls = [local('a'), local('b'), local('c')];
    h.q.push(forward(Req.Query));
    for (const l of ls) h.q.push(l);
    h.q.push(forward(Req.Query));
    h.q.push(ls[0]!);
    h.feed(I, ZI, I, ZI);
    assert.deepEqual(h.out(), cat(I, ZI, ls[0]!.bytes, ls[1]!.bytes, ls[2]!.bytes, I, ZI, ls[0]!.bytes));
  });

  test('a batch-ending local sets txStatus; a plain one does not', () => {
    const h = harness();
    h.q.push(local('plain'));
    assert.equal(h.q.txStatus, 0x49);
    h.q.push(local('begin', true, 'T'));
    assert.equal(h.q.txStatus, 0x54);
    h.q.push(forward(Req.Query));
    h.q.push(local('fail', true, 'E'));
    assert.equal(h.q.txStatus, 0x54, 'not yet: the local waits behind the Query');
    h.feed(ZT);
    assert.equal(h.q.txStatus, 0x45);
  });
});

// ---- captures ----

describe('capture entries', () => {
  test('see each of their frames exactly, can swallow and replace', () => {
    const h = harness();
    const replacement = be.commandComplete('SELECT 99');
    const cap = capture(h, 'cap', Req.Query, (code, f) => (code === 'D' ? null : code === 'C' ? replacement : Buffer.from(f)));
    h.q.push(cap);
    h.q.push(forward(Req.Query));
    h.feed(T, D1, D2, C1, ZI, T, D1, C1, ZI);
    assert.deepEqual(cap.seen, [T, D1, D2, C1, ZI]);
    assert.deepEqual(cap.outcomes, ['done']);
    assert.deepEqual(h.out(), cat(T, replacement, ZI, T, D1, C1, ZI));
    assert.equal(h.q.size, 0);
  });

  test('frames before and after the capture are forwarded around it', () => {
    const h = harness();
    h.q.push(forward(Req.Parse));
    const cap = capture(h, 'cap', Req.Bind, () => be.bindComplete());
    h.q.push(cap);
    h.q.push(forward(Req.Execute));
    h.feed(P1, B2, D1, C1);
    assert.deepEqual(h.out(), cat(P1, B2, D1, C1));
    // Pieces are gathered and written when the chunk is done, so onDone comes first.
    assert.deepEqual(h.log, ['done:cap:done', 'w:1', 'w:2', 'w:DC']);
  });

  test('onDone is called once, after the ending frame', () => {
    const h = harness();
    const cap = capture(h, 'cap', Req.Describe);
    h.q.push(cap);
    h.feed(t);
    assert.deepEqual(cap.outcomes, []);
    h.feed(n);
    assert.deepEqual(cap.outcomes, ['done']);
    h.feed(N);
    assert.deepEqual(cap.outcomes, ['done']);
    assert.equal(cap.seen.length, 2);
  });

  test('clear(): captures learn they were skipped, skip state resets', () => {
    const h = harness();
    const c1 = capture(h, 'c1', Req.Execute);
    h.q.push(c1);
    h.q.push(forward(Req.Sync));
    const c2 = capture(h, 'c2', Req.Query);
    h.q.push(c2);
    h.q.clear();
    assert.deepEqual(c1.outcomes, ['skipped']);
    assert.deepEqual(c2.outcomes, ['skipped']);
    assert.equal(h.q.size, 0);

    h.q.push(forward(Req.Parse));
    h.feed(E);
    assert.equal(h.q.inFailedBatch, true);
    h.q.clear();
    assert.equal(h.q.inFailedBatch, false);
  });
});

// ---- write batching ----

describe('forwarded runs are written in as few writes as possible', () => {
  test('a chunk that is all forwarded: one write, the chunk itself', () => {
    const h = harness();
    h.q.push(forward(Req.Query));
    h.q.push(forward(Req.Parse));
    h.q.push(forward(Req.Bind));
    h.q.push(forward(Req.Execute));
    h.q.push(forward(Req.Sync));
    const chunk = cat(T, D1, D2, C1, ZI, P1, B2, D1, C1, ZI);
    h.q.consume(chunk, chunk.length);
    assert.equal(h.writes.length, 1);
    assert.equal(h.writes[0], chunk);
  });

  test('whole frames end before the chunk does: one write, a view (no copy)', () => {
    const h = harness();
    h.q.push(forward(Req.Query));
    const chunk = cat(T, D1, D2, C1.subarray(0, 3));
    const end = T.length + D1.length + D2.length;
    h.q.consume(chunk, end);
    assert.equal(h.writes.length, 1);
    assert.deepEqual(h.writes[0], chunk.subarray(0, end));
    assert.equal(h.writes[0]!.buffer, chunk.buffer, 'shares memory with the chunk');
    assert.equal(h.writes[0]!.byteOffset, chunk.byteOffset);
  });

  test('a capture in the middle: one piece before, one after (plus what it returns)', () => {
    const h = harness();
    h.q.push(forward(Req.Parse));
    h.q.push(forward(Req.Bind));
    h.q.push(capture(h, 'cap', Req.Describe, () => null));
    h.q.push(forward(Req.Execute));
    h.q.push(forward(Req.Sync));
    h.feed(P1, B2, t, T, D1, D2, C1, ZI);
    assert.deepEqual(h.log, ['done:cap:done', 'w:12', 'w:DDCZ']);
  });

  test('zero-frame consume writes nothing', () => {
    const h = harness();
    h.q.consume(Buffer.from([0x44, 0, 0]), 0);
    assert.equal(h.writes.length, 0);
  });
});

// ---- txStatus ----

describe('txStatus follows ReadyForQuery', () => {
  test('forwarded, captured, and with no entry', () => {
    const h = harness();
    assert.equal(h.q.txStatus, 0x49);
    h.q.push(forward(Req.Query));
    h.feed(C1, ZT);
    assert.equal(h.q.txStatus, 0x54);
    h.q.push(capture(h, 'cap', Req.Sync, () => null));
    h.feed(ZE);
    assert.equal(h.q.txStatus, 0x45, 'a swallowed ReadyForQuery still tells upstream\'s state');
    h.feed(ZI);
    assert.equal(h.q.txStatus, 0x49);
  });
});

// ---- the byte stream, split at every offset, through a Framer ----

describe('queue fed through a Framer: output independent of chunking', () => {
  /** A pipelined session: simple query, an extended batch with captures and locals, a failed batch, and a query. */
  function scenario(h: Harness): { expected: Buffer; expectedLog: string[]; check: () => void } {
    const REPL = be.commandComplete('SELECT 7');
    const capBind = capture(h, 'bind', Req.Bind, () => null);
    const capExec = capture(h, 'exec', Req.Execute, (code, f) => (code === 'D' ? null : code === 'C' ? REPL : Buffer.from(f)));
    const capSkipped = capture(h, 'skipped', Req.Execute);
    const l1 = local('l1');
    const l2 = local('l2', true, 'I');
    const lDropped = local('dropped');
    const entries: Entry[] = [
      forward(Req.Query),
      forward(Req.Parse),
      capBind,
      l1,
      forward(Req.Describe),
      capExec,
      forward(Req.Sync),
      l2,
      forward(Req.Parse), // fails
      forward(Req.Bind),
      capSkipped,
      lDropped,
      forward(Req.Sync),
      forward(Req.Query),
    ];
    for (const e of entries) h.q.push(e);
    const upstream = cat(
      // Query
      T, N, D1, D2, C1, S, ZI,
      // Parse, Bind (captured), Describe, Execute (captured), Sync
      P1, B2, t, T, D1, A, D2, C1, ZI,
      // failed batch
      N, E, ZI,
      // last Query
      T, D1, C1, A, ZI,
    );
    const expected = cat(
      T, N, D1, D2, C1, S, ZI,
      P1, l1.bytes, t, T, A, REPL, ZI, l2.bytes,
      N, E, ZI,
      T, D1, C1, A, ZI,
    );
    return {
      expected,
      expectedLog: ['done:bind:done', 'done:exec:done', 'done:skipped:skipped'],
      check: () => {
        assert.deepEqual(capBind.seen, [B2]);
        assert.deepEqual(capExec.seen, [D1, D2, C1]);
        assert.equal(capSkipped.seen.length, 0);
        assert.equal(h.q.size, 0);
        assert.equal(h.q.inFailedBatch, false);
        assert.equal(h.q.txStatus, 0x49);
      },
    };
  }

  function upstreamOf(): Buffer {
    return cat(T, N, D1, D2, C1, S, ZI, P1, B2, t, T, D1, A, D2, C1, ZI, N, E, ZI, T, D1, C1, A, ZI);
  }

  function run(chunks: Buffer[]): { h: Harness; sc: ReturnType<typeof scenario> } {
    const h = harness();
    const sc = scenario(h);
    const framer = new Framer();
    for (const chunk of chunks) {
      const r = framer.push(chunk);
      if (r instanceof FrameError) assert.fail(r.message);
      if (r.end > 0) h.q.consume(r.buf, r.end);
    }
    assert.equal(framer.buffered, 0);
    return { h, sc };
  }

  const stream = upstreamOf();

  test('whole stream in one chunk', () => {
    const { h, sc } = run([stream]);
    assert.deepEqual(h.out(), sc.expected);
    assert.deepEqual(h.log.filter((l) => l.startsWith('done:')), sc.expectedLog);
    sc.check();
  });

  test('split in two at every byte offset', () => {
    for (let i = 0; i <= stream.length; i++) {
      const { h, sc } = run([stream.subarray(0, i), stream.subarray(i)]);
      assert.ok(h.out().equals(sc.expected), `output differs when split at ${i}`);
      assert.deepEqual(h.log.filter((l) => l.startsWith('done:')), sc.expectedLog, `split at ${i}`);
      sc.check();
    }
  });

  test('byte by byte', () => {
    const chunks: Buffer[] = [];
    for (let i = 0; i < stream.length; i++) chunks.push(stream.subarray(i, i + 1));
    const { h, sc } = run(chunks);
    assert.deepEqual(h.out(), sc.expected);
    sc.check();
  });

  test('frame by frame', () => {
    const { h, sc } = run(splitFrames(stream).frames.map((f) => f.bytes));
    assert.deepEqual(h.out(), sc.expected);
    sc.check();
  });
});

describe('transaction-block tracking from command tags (the same batch as BEGIN, before its ReadyForQuery)', () => {
  const tagged = (tags: string[]): { inBlock: boolean[]; ended: string[] } => {
    const h = harness();
    const ended: string[] = [];
    h.q.onTxEnd = (tag) => ended.push(tag);
    const inBlock: boolean[] = [];
    h.q.push(forward(Req.Query));
    for (const tag of tags) {
      h.feed(be.commandComplete(tag));
      inBlock.push(h.q.inBlock);
    }
    return { inBlock, ended };
  };

  test('BEGIN and START TRANSACTION open a block; COMMIT, ROLLBACK and PREPARE TRANSACTION end it', () => {
    const r = tagged(['BEGIN', 'INSERT 0 1', 'COMMIT', 'START TRANSACTION', 'ROLLBACK', 'BEGIN', 'PREPARE TRANSACTION']);
    assert.deepEqual(r.inBlock, [true, true, false, true, false, true, false]);
    assert.deepEqual(r.ended, ['COMMIT', 'ROLLBACK', 'PREPARE TRANSACTION']);
  });

  test('tags sharing the first letters change nothing: SELECT, SET, SAVEPOINT, COPY, COMMENT, RELEASE, PREPARE, BE…', () => {
    const r = tagged(['BEGIN', 'SELECT 1', 'SET', 'SAVEPOINT', 'COPY 3', 'COMMENT', 'RELEASE', 'PREPARE', 'CREATE TABLE', 'ROLLBACK']);
    assert.deepEqual(r.inBlock, [true, true, true, true, true, true, true, true, true, false]);
    assert.deepEqual(r.ended, ['ROLLBACK']);
  });

  test('an empty tag reads no byte past its frame', () => {
    const r = tagged(['BEGIN', '', 'COMMIT']);
    assert.deepEqual(r.inBlock, [true, true, false]);
  });
});

describe('one write per consume()', () => {
  function gatheringHarness(): { q: ExpectedQueue; calls: string[] } {
    const calls: string[] = [];
    const codes = (b: Buffer): string => splitFrames(b).frames.map((f) => f.code).join('');
    const q = new ExpectedQueue(
      (b) => calls.push(`write:${codes(b)}`),
      () => {},
      (bs) => calls.push(`writeMany:${bs.map(codes).join('|')}`),
    );
    return { q, calls };
  }

  test('forwarded, captured and local pieces of one chunk leave in one writeMany, in order', () => {
    const { q, calls } = gatheringHarness();
    const cap: Capture = { kind: 'capture', req: Req.Describe, onFrame: () => be.noData(), onDone: () => q.push(local('after-describe')) };
    q.push(forward(Req.Bind));
    q.push(cap);
    q.push(forward(Req.Execute));
    q.push(forward(Req.Sync));
    const chunk = cat(B2, T, D1, C1, ZI);
    q.consume(chunk, chunk.length);
    // The local pushed by onDone queues behind Execute and Sync, which are already owed.
    assert.deepEqual(calls, ['writeMany:2|n|DCZ|C']);
  });

  test('a chunk that is forwarded whole is one plain write of the same Buffer', () => {
    const writes: Buffer[] = [];
    const q = new ExpectedQueue((b) => writes.push(b), () => {}, () => assert.fail('nothing to gather'));
    q.push(forward(Req.Query));
    const chunk = cat(T, D1, C1, ZI);
    q.consume(chunk, chunk.length);
    assert.equal(writes.length, 1);
    assert.equal(writes[0], chunk, 'the original Buffer, not a copy');
  });

  test('flushGathered() lets a caller write after what consume() already owes', () => {
    const { q, calls } = gatheringHarness();
    const cap: Capture = {
      kind: 'capture',
      req: Req.Sync,
      onFrame: (_c, buf, s, e) => Buffer.from(buf.subarray(s, e)),
      onDone: () => {
        q.flushGathered();
        calls.push('caller writes');
      },
    };
    q.push(forward(Req.Query));
    q.push(cap);
    const chunk = cat(C1, ZI, ZI);
    q.consume(chunk, chunk.length);
    assert.deepEqual(calls, ['writeMany:CZ|Z', 'caller writes']);
  });
});
