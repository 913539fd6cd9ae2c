// Framer: cutting a typed-message byte stream into whole frames, whatever the chunking.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Framer, FrameError, forEachFrame } from '../../src/protocol/framer.js';
import { MAX_MESSAGE } from '../../src/protocol/codes.js';
import { be, body, boundaries, fe, pgError, rawFrame, splitFrames, splitsInTwo } from '../support/frames.js';

const utf8Text = 'héllo wörld — 日本語 🐘';

const frontendMessages: [string, Buffer][] = [
  ['Query', fe.query('select 1')],
  ['Query (empty)', fe.query('')],
  ['Query (UTF-8)', fe.query(`select '${utf8Text}'`)],
  ['Parse', fe.parse('s1', 'select $1::int, $2::text', [23, 25])],
  ['Parse (unnamed, no types)', fe.parse('', 'select 1')],
  ['Bind', fe.bind('p1', 's1', [0, 1], [Buffer.from('42'), null, Buffer.from([0, 1, 2, 0xff])], [1])],
  ['Describe S', fe.describe('S', 's1')],
  ['Describe P', fe.describe('P', '')],
  ['Execute', fe.execute('p1', 100)],
  ['Close S', fe.close('S', 's1')],
  ['Close P', fe.close('P', 'p1')],
  ['FunctionCall', fe.functionCall(1598, [1], [Buffer.from([0, 0, 0, 1])], 1)],
  ['Sync', fe.sync()],
  ['Flush', fe.flush()],
  ['Terminate', fe.terminate()],
  ['CopyData', fe.copyData(Buffer.from('1\tone\n'))],
  ['CopyData (empty)', fe.copyData(Buffer.alloc(0))],
  ['CopyDone', fe.copyDone()],
  ['CopyFail', fe.copyFail('client gave up')],
  ['PasswordMessage', fe.password('secret')],
  ['SASLInitialResponse', fe.saslInitialResponse('SCRAM-SHA-256', Buffer.from('n,,n=,r=abc'))],
  ['SASLResponse', fe.saslResponse(Buffer.from('c=biws,r=abc,p=xyz'))],
];

const backendMessages: [string, Buffer][] = [
  ['AuthenticationOk', be.authenticationOk()],
  ['AuthenticationCleartextPassword', be.authenticationCleartext()],
  ['AuthenticationMD5Password', be.authenticationMd5([1, 2, 3, 4])],
  ['AuthenticationSASL', be.authenticationSasl(['SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS'])],
  ['AuthenticationSASLContinue', be.authenticationSaslContinue('r=abc,s=salt,i=4096')],
  ['AuthenticationSASLFinal', be.authenticationSaslFinal('v=sig')],
  ['BackendKeyData', be.backendKeyData(1234, -559038737)],
  ['ParameterStatus', be.parameterStatus('client_encoding', 'UTF8')],
  ['ReadyForQuery', be.readyForQuery('I')],
  ['ParseComplete', be.parseComplete()],
  ['BindComplete', be.bindComplete()],
  ['CloseComplete', be.closeComplete()],
  ['NoData', be.noData()],
  ['EmptyQueryResponse', be.emptyQuery()],
  ['PortalSuspended', be.portalSuspended()],
  ['CommandComplete', be.commandComplete('SELECT 1')],
  ['RowDescription', be.rowDescription([{ name: 'a', tableOid: 0, attnum: 0, typeOid: 23, typeLen: 4, typeMod: -1, format: 0 }])],
  ['RowDescription (no fields)', be.rowDescription([])],
  ['ParameterDescription', be.parameterDescription([23, 25])],
  ['DataRow', be.dataRow([Buffer.from('1'), null, Buffer.alloc(0), Buffer.from(utf8Text)])],
  ['ErrorResponse', pgError('42601', 'syntax error at or near "selec"')],
  ['NoticeResponse', be.noticeResponse([['S', 'NOTICE'], ['C', '00000'], ['M', 'hi']])],
  ['NotificationResponse', be.notification(99, 'chan', 'payload')],
  ['CopyInResponse', be.copyInResponse(0, [0, 0])],
  ['CopyOutResponse', be.copyOutResponse(1, [1])],
  ['CopyBothResponse', be.copyBothResponse(0, [])],
  ['CopyData', be.copyData(Buffer.from([0, 1, 2, 3]))],
  ['CopyDone', be.copyDone()],
  ['FunctionCallResponse', be.functionCallResponse(Buffer.from([0, 0, 0, 7]))],
  ['FunctionCallResponse (NULL)', be.functionCallResponse(null)],
  ['NegotiateProtocolVersion', be.negotiateProtocolVersion(0, ['_pq_.foo'])],
];

const allMessages = [...frontendMessages, ...backendMessages];

/** Feeds chunks; returns the concatenated whole frames reported, failing on any FrameError. */
function feed(framer: Framer, chunks: Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  for (const c of chunks) {
    const r = framer.push(c);
    if (r instanceof FrameError) assert.fail(`unexpected FrameError: ${r.message}`);
    assert.ok(r.end >= 0 && r.end <= r.buf.length, 'end within buf');
    if (r.end > 0) out.push(r.buf.subarray(0, r.end));
  }
  return out;
}

/** The whole frames in reported output, as separate buffers (checked with the test's own splitter). */
function framesOf(chunks: Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  for (const c of chunks) {
    const { frames, rest } = splitFrames(c);
    assert.equal(rest.length, 0, 'a report must hold whole frames only');
    for (const f of frames) out.push(Buffer.from(f.bytes));
  }
  return out;
}

describe('Framer: each message whole', () => {
  for (const [name, frame] of allMessages) {
    test(name, () => {
      const framer = new Framer();
      const r = framer.push(frame);
      assert.ok(!(r instanceof FrameError));
      assert.equal(r.buf, frame, 'a chunk of whole frames is reported as is, not copied');
      assert.equal(r.end, frame.length);
      assert.equal(framer.buffered, 0);
    });
  }
});

describe('Framer: split streams', () => {
  const stream = Buffer.concat(allMessages.map(([, f]) => f));
  const expected = allMessages.map(([, f]) => f);
  const bounds = new Set(boundaries(stream));

  test('many messages in one chunk: one report, no copy', () => {
    const framer = new Framer();
    const r = framer.push(stream);
    assert.ok(!(r instanceof FrameError));
    assert.equal(r.buf, stream);
    assert.equal(r.end, stream.length);
    assert.equal(framer.buffered, 0);
    const seen: string[] = [];
    forEachFrame(r.buf, r.end, (code, start, next) => {
      seen.push(String.fromCharCode(code));
      assert.deepEqual(r.buf.subarray(start, next), expected[seen.length - 1]);
    });
    assert.equal(seen.length, expected.length);
  });

  test('split in two at every byte offset', () => {
    for (const [a, b, i] of splitsInTwo(stream)) {
      const framer = new Framer();
      const r1 = framer.push(a);
      assert.ok(!(r1 instanceof FrameError), `offset ${i}`);
      // The first chunk never straddles anything: it must be reported in place, up to the last boundary.
      assert.equal(r1.buf, a, `offset ${i}: first chunk reported without copying`);
      const lastBoundary = Math.max(...[...bounds].filter((x) => x <= i));
      assert.equal(r1.end, lastBoundary, `offset ${i}: end of whole frames in the first chunk`);
      assert.equal(framer.buffered, i - lastBoundary, `offset ${i}: buffered after first chunk`);
      const r2 = framer.push(b);
      assert.ok(!(r2 instanceof FrameError), `offset ${i}`);
      if (bounds.has(i)) assert.equal(r2.buf, b, `offset ${i}: second chunk starts on a boundary, so no copy`);
      assert.equal(framer.buffered, 0, `offset ${i}: nothing left over`);
      const got = [r1, r2].filter((r) => r.end > 0).map((r) => r.buf.subarray(0, r.end));
      assert.deepEqual(Buffer.concat(got), stream, `offset ${i}: bytes preserved`);
      assert.deepEqual(framesOf(got), expected, `offset ${i}: frames preserved`);
    }
  });

  test('fed byte by byte', () => {
    const framer = new Framer();
    const got: Buffer[] = [];
    let held = 0;
    for (let i = 0; i < stream.length; i++) {
      const r = framer.push(stream.subarray(i, i + 1));
      assert.ok(!(r instanceof FrameError), `byte ${i}`);
      if (r.end > 0) {
        // A one-byte chunk can complete at most one frame, which ends exactly here.
        assert.ok(bounds.has(i + 1), `frame reported at byte ${i}, which ends no frame`);
        got.push(Buffer.from(r.buf.subarray(0, r.end)));
        held = 0;
      } else held++;
      assert.equal(framer.buffered, held, `buffered after byte ${i}`);
    }
    assert.deepEqual(framesOf(got), expected);
    assert.equal(framer.buffered, 0);
  });

  test('split into three at many offset pairs', () => {
    // Every pair would be ~n²; a stride keeps it fast while still crossing headers and bodies.
    for (let i = 0; i <= stream.length; i += 3) {
      for (let j = i; j <= stream.length; j += 7) {
        const framer = new Framer();
        const got = feed(framer, [stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)]);
        assert.deepEqual(Buffer.concat(got), stream, `offsets ${i},${j}`);
        assert.equal(framer.buffered, 0);
      }
    }
  });

  test('random chunkings preserve frames', () => {
    let seed = 12345;
    const rnd = (n: number): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
    for (let round = 0; round < 200; round++) {
      const chunks: Buffer[] = [];
      for (let off = 0; off < stream.length; ) {
        const n = Math.min(stream.length - off, rnd(40));
        chunks.push(stream.subarray(off, off + n));
        off += n;
      }
      const framer = new Framer();
      assert.deepEqual(framesOf(feed(framer, chunks)), expected, `round ${round}`);
    }
  });

  test('empty chunks change nothing', () => {
    const framer = new Framer();
    const q = fe.query('select 1');
    let r = framer.push(Buffer.alloc(0));
    assert.ok(!(r instanceof FrameError));
    assert.equal(r.end, 0);
    r = framer.push(q.subarray(0, 3));
    assert.ok(!(r instanceof FrameError));
    r = framer.push(Buffer.alloc(0));
    assert.ok(!(r instanceof FrameError));
    assert.equal(r.end, 0);
    assert.equal(framer.buffered, 3);
    r = framer.push(q.subarray(3));
    assert.ok(!(r instanceof FrameError));
    assert.deepEqual(r.buf.subarray(0, r.end), q);
    assert.equal(framer.buffered, 0);
  });
});

describe('Framer: large frames', () => {
  const MB = 1024 * 1024;
  const KB64 = 64 * 1024;
  const big = Buffer.alloc(MB - 64);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
  const dataRow = be.dataRow([big, null, Buffer.from('tail')]);

  test('1 MB DataRow across 64 KB chunks, followed by more frames', () => {
    const after = Buffer.concat([be.commandComplete('SELECT 1'), be.readyForQuery('I')]);
    const stream = Buffer.concat([be.rowDescription([]), dataRow, after]);
    const framer = new Framer();
    const reports: Buffer[] = [];
    // Count the bytes the framer copies: a straddling frame should be copied once, not per chunk.
    const concat = Buffer.concat;
    let copied = 0;
    Buffer.concat = ((list: readonly Uint8Array[], total?: number) => {
      const out = concat(list, total);
      copied += out.length;
      return out;
    }) as typeof Buffer.concat;
    try {
      for (let off = 0; off < stream.length; off += KB64) {
        const chunk = stream.subarray(off, off + KB64);
        const r = framer.push(chunk);
        assert.ok(!(r instanceof FrameError));
        const last = off + KB64 >= stream.length;
        if (r.end > 0) reports.push(r.buf.subarray(0, r.end));
        if (!last && off > 0) {
          assert.equal(r.end, 0, `nothing completes mid-row (chunk at ${off})`);
          assert.equal(framer.buffered, Math.min(off + KB64, stream.length) - be.rowDescription([]).length, `buffered at ${off}`);
        }
      }
    } finally {
      Buffer.concat = concat;
    }
    assert.equal(framer.buffered, 0);
    const frames = framesOf(reports);
    assert.equal(frames.length, 4);
    assert.deepEqual(frames[1], dataRow);
    assert.deepEqual(Buffer.concat(reports), stream);
    assert.ok(copied <= stream.length + 1024, `copied ${copied} bytes for a ${stream.length}-byte stream`);
  });

  test('a frame just under a custom maximum passes, one over fails', () => {
    const framer = new Framer(1000);
    const ok = body().raw(Buffer.alloc(996)).frame('d'); // length word 1000
    const r = framer.push(ok);
    assert.ok(!(r instanceof FrameError));
    assert.equal(r.end, ok.length);
    const bad = new Framer(1000).push(body().raw(Buffer.alloc(997)).frame('d'));
    assert.ok(bad instanceof FrameError);
    assert.equal(bad.length, 1001);
  });
});

describe('Framer: invalid lengths', () => {
  const cases: [string, number][] = [
    ['0', 0],
    ['3', 3],
    ['-1', -1],
    ['-2^31', -0x80000000],
    ['MAX_MESSAGE + 1', MAX_MESSAGE + 1],
    ['0x7fffffff', 0x7fffffff],
  ];
  for (const [name, len] of cases) {
    test(`length ${name} in a whole chunk`, () => {
      const r = new Framer().push(rawFrame('Q', len, [0x41, 0]));
      assert.ok(r instanceof FrameError, 'expected a FrameError');
      assert.equal(r.code, 0x51);
      assert.equal(r.length, len);
      assert.match(r.message, new RegExp(`invalid message length ${len}`));
      assert.match(r.message, /"Q"/);
    });

    test(`length ${name} after valid frames in the same chunk`, () => {
      const r = new Framer().push(Buffer.concat([fe.sync(), fe.query('select 1'), rawFrame('Z', len)]));
      assert.ok(r instanceof FrameError);
      assert.equal(r.code, 0x5a);
      assert.equal(r.length, len);
    });

    test(`length ${name} with its header split at every offset`, () => {
      const stream = Buffer.concat([fe.sync(), rawFrame('P', len, [1, 2, 3])]);
      for (let i = 1; i < stream.length; i++) {
        const framer = new Framer();
        const r1 = framer.push(stream.subarray(0, i));
        let err = r1 instanceof FrameError ? r1 : undefined;
        if (!err) {
          const r2 = framer.push(stream.subarray(i));
          if (r2 instanceof FrameError) err = r2;
        }
        assert.ok(err, `offset ${i}: expected a FrameError`);
        assert.equal(err.code, 0x50, `offset ${i}`);
        assert.equal(err.length, len, `offset ${i}`);
      }
    });

    test(`length ${name} fed byte by byte is reported once the length word is complete`, () => {
      const stream = rawFrame('D', len, [9, 9, 9]);
      const framer = new Framer();
      for (let i = 0; i < 5; i++) {
        const r = framer.push(stream.subarray(i, i + 1));
        if (i < 4) assert.ok(!(r instanceof FrameError), `byte ${i}: too early to know`);
        else {
          assert.ok(r instanceof FrameError, 'byte 4 completes the length word');
          assert.equal(r.length, len);
        }
      }
    });
  }

  test('length 4 (empty body) is valid', () => {
    const r = new Framer().push(rawFrame('S', 4));
    assert.ok(!(r instanceof FrameError));
    assert.equal(r.end, 5);
  });

  test('MAX_MESSAGE itself is accepted (and waited for)', () => {
    const framer = new Framer();
    const r = framer.push(rawFrame('d', MAX_MESSAGE, [1, 2, 3]));
    assert.ok(!(r instanceof FrameError));
    assert.equal(r.end, 0);
    assert.equal(framer.buffered, 8);
  });
});

describe('Framer: buffered accounting', () => {
  test('tracks the bytes of an incomplete frame, header or not', () => {
    const q = fe.query('select 42');
    const s = fe.sync();
    const framer = new Framer();
    const step = (chunk: Buffer, end: number, buffered: number): void => {
      const r = framer.push(chunk);
      assert.ok(!(r instanceof FrameError));
      assert.equal(r.end, end);
      assert.equal(framer.buffered, buffered);
    };
    step(q.subarray(0, 2), 0, 2); // half a header
    step(q.subarray(2, 5), 0, 5); // header complete
    step(q.subarray(5, 8), 0, 8);
    step(Buffer.concat([q.subarray(8), s.subarray(0, 1)]), q.length, 1); // completes q, starts s
    step(s.subarray(1), s.length, 0);
    step(Buffer.concat([s, s.subarray(0, 4)]), s.length, 4);
    step(s.subarray(4), s.length, 0);
  });
});
