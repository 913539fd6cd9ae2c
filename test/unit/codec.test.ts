// Encoders and decoders of backend.ts, frontend.ts and startup.ts, checked against frames built by
// the independent builder in test/support/frames.ts (never against the project's own writer).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { serialize } from 'pg-protocol';
import {
  BIND_COMPLETE,
  CLOSE_COMPLETE,
  decodeCommandTag,
  decodeDataRow,
  decodeErrorFields,
  decodeParameterDescription,
  decodeRowDescription,
  EMPTY_QUERY,
  encodeCommandComplete,
  encodeDataRow,
  encodeError,
  encodeParameterDescription,
  encodeReadyForQuery,
  encodeRowDescription,
  NO_DATA,
  remapErrorPosition,
  PARSE_COMPLETE,
  PORTAL_SUSPENDED,
  type FieldDescription,
} from '../../src/protocol/backend.js';
import {
  decodeBind,
  decodeExecute,
  decodeParse,
  decodeQuery,
  decodeTarget,
  encodeBind,
  encodeBindParts,
  encodeExecute,
  encodeParse,
  encodeTarget,
  FLUSH,
  paramFormat,
  parseText,
  SYNC,
  TERMINATE,
  type BindMessage,
} from '../../src/protocol/frontend.js';
import { PgError } from '../../src/protocol/pg-error.js';
import { decodeStartupPacket, startupPacketLength } from '../../src/protocol/startup.js';
import { MAX_STARTUP_PACKET } from '../../src/protocol/codes.js';
import { be, body, errorFields, fe, splitFrames, startup } from '../support/frames.js';

const UTF8 = 'ünïcødé — 日本語 — 🐘🐘';
const FILLER_BEFORE = be.parameterStatus('TimeZone', 'UTC');
const FILLER_AFTER = Buffer.concat([be.noticeResponse([['S', 'NOTICE'], ['M', 'x']]), be.readyForQuery('I')]);

/** Places `frame` between other frames, so decoders must honour start/end rather than 0/length. */
function embed(frame: Buffer): { buf: Buffer; start: number; end: number } {
  const buf = Buffer.concat([FILLER_BEFORE, frame, FILLER_AFTER]);
  return { buf, start: FILLER_BEFORE.length, end: FILLER_BEFORE.length + frame.length };
}

function decodeWith<T>(frame: Buffer, fn: (buf: Buffer, start: number, end: number) => T): T {
  const { buf, start, end } = embed(frame);
  return fn(buf, start, end);
}

/** A frame cut short: the length word is patched to the shorter size, so it's a well-framed but truncated body. */
function truncated(frame: Buffer, payloadBytes: number): Buffer {
  const out = Buffer.from(frame.subarray(0, 5 + payloadBytes));
  out.writeInt32BE(4 + payloadBytes, 1);
  return out;
}

describe('test builder sanity (hand-written bytes)', () => {
  test('Query', () => {
    assert.deepEqual(fe.query('select 1'), Buffer.from([0x51, 0, 0, 0, 13, ...Buffer.from('select 1'), 0]));
  });
  test('DataRow with NULL', () => {
    assert.deepEqual(be.dataRow([Buffer.from('ab'), null]), Buffer.from([0x44, 0, 0, 0, 16, 0, 2, 0, 0, 0, 2, 0x61, 0x62, 0xff, 0xff, 0xff, 0xff]));
  });
  test('UTF-8 by hand matches the platform', () => {
    assert.deepEqual(Buffer.from(body().cstring(UTF8).frame('Q').subarray(5, -1)), Buffer.from(UTF8, 'utf8'));
  });
  test('StartupMessage', () => {
    assert.deepEqual(startup.message({ user: 'u' }), Buffer.from([0, 0, 0, 16, 0, 3, 0, 0, 0x75, 0x73, 0x65, 0x72, 0, 0x75, 0, 0]));
  });
});

// ---------------------------------------------------------------------------------------------
// backend.ts
// ---------------------------------------------------------------------------------------------

describe('backend: fixed frames', () => {
  test('ParseComplete, BindComplete, CloseComplete, NoData, EmptyQuery, PortalSuspended', () => {
    assert.deepEqual(PARSE_COMPLETE, be.parseComplete());
    assert.deepEqual(BIND_COMPLETE, be.bindComplete());
    assert.deepEqual(CLOSE_COMPLETE, be.closeComplete());
    assert.deepEqual(NO_DATA, be.noData());
    assert.deepEqual(EMPTY_QUERY, be.emptyQuery());
    assert.deepEqual(PORTAL_SUSPENDED, be.portalSuspended());
  });

  for (const s of ['I', 'T', 'E'] as const) {
    test(`ReadyForQuery ${s}`, () => assert.deepEqual(encodeReadyForQuery(s), be.readyForQuery(s)));
  }
});

describe('backend: CommandComplete', () => {
  for (const tag of ['SELECT 1', 'INSERT 0 5', '', 'DELETE 1234567890', `NOTIFY ${UTF8}`, 'x'.repeat(300)]) {
    test(JSON.stringify(tag.slice(0, 30)), () => {
      const bytes = encodeCommandComplete(tag);
      assert.deepEqual(bytes, be.commandComplete(tag));
      assert.equal(decodeWith(bytes, decodeCommandTag), tag);
    });
  }
  test('decodeCommandTag rejects a tag without NUL inside the frame', () => {
    // The NUL that follows belongs to the next frame; the decoder must not run past `end`.
    const bad = body().raw(Buffer.from('SELECT 1')).frame('C');
    assert.throws(() => decodeWith(bad, decodeCommandTag), RangeError);
  });
});

describe('backend: ErrorResponse / NoticeResponse', () => {
  test('all fields, in order, with the terminator', () => {
    const err = new PgError('42P01', `relation "${UTF8}" does not exist`, {
      severity: 'ERROR',
      detail: 'some detail',
      hint: 'a hint',
      position: 17,
      schema: 'public',
      table: 't',
      column: 'c',
    });
    const bytes = encodeError(err);
    const { frames, rest } = splitFrames(bytes);
    assert.equal(rest.length, 0);
    assert.equal(frames.length, 1);
    assert.equal(frames[0]!.code, 'E');
    const fields = new Map(errorFields(frames[0]!.payload));
    assert.deepEqual(
      fields,
      new Map([
        ['S', 'ERROR'],
        ['V', 'ERROR'],
        ['C', '42P01'],
        ['M', `relation "${UTF8}" does not exist`],
        ['D', 'some detail'],
        ['H', 'a hint'],
        ['P', '17'],
        ['s', 'public'],
        ['t', 't'],
        ['c', 'c'],
      ]),
    );
    // Postgres's order: S V C M first; libpq-era clients don't care, but humans reading dumps do.
    assert.deepEqual(errorFields(frames[0]!.payload).slice(0, 4).map(([t]) => t), ['S', 'V', 'C', 'M']);
    assert.deepEqual(
      bytes,
      be.errorResponse([
        ['S', 'ERROR'],
        ['V', 'ERROR'],
        ['C', '42P01'],
        ['M', `relation "${UTF8}" does not exist`],
        ['D', 'some detail'],
        ['H', 'a hint'],
        ['P', '17'],
        ['s', 'public'],
        ['t', 't'],
        ['c', 'c'],
      ]),
    );
  });

  test('minimal FATAL error omits absent fields', () => {
    const bytes = encodeError(new PgError('08P01', 'bad', { severity: 'FATAL' }));
    assert.deepEqual(bytes, be.errorResponse([['S', 'FATAL'], ['V', 'FATAL'], ['C', '08P01'], ['M', 'bad']]));
  });

  test('empty message is still a field', () => {
    const bytes = encodeError(new PgError('XX000', ''));
    assert.deepEqual(bytes, be.errorResponse([['S', 'ERROR'], ['V', 'ERROR'], ['C', 'XX000'], ['M', '']]));
  });

  test('asNotice makes a NoticeResponse', () => {
    const bytes = encodeError(new PgError('01000', 'careful', { severity: 'WARNING' }), true);
    assert.deepEqual(bytes, be.noticeResponse([['S', 'WARNING'], ['V', 'WARNING'], ['C', '01000'], ['M', 'careful']]));
  });

  test('a long message grows the buffer', () => {
    const msg = UTF8.repeat(200);
    const bytes = encodeError(new PgError('22021', msg, { detail: 'd'.repeat(5000) }));
    assert.deepEqual(bytes, be.errorResponse([['S', 'ERROR'], ['V', 'ERROR'], ['C', '22021'], ['M', msg], ['D', 'd'.repeat(5000)]]));
  });

  test('decodeErrorFields reads what Postgres sends', () => {
    const frame = be.errorResponse([['S', 'FEHLER'], ['V', 'ERROR'], ['C', '23505'], ['M', UTF8], ['D', 'Key (id)=(1) already exists.'], ['n', 'pk']]);
    const e = decodeWith(frame, decodeErrorFields);
    assert.equal(e.severity, 'ERROR', 'V (non-localized) wins over S');
    assert.equal(e.code, '23505');
    assert.equal(e.message, UTF8);
    assert.equal(e.fields.get('D'), 'Key (id)=(1) already exists.');
    assert.equal(e.fields.get('n'), 'pk');
    assert.equal(e.fields.size, 6);
  });

  test('decodeErrorFields defaults: no V, no C, no M', () => {
    const e = decodeWith(be.errorResponse([['S', 'FATAL']]), decodeErrorFields);
    assert.equal(e.severity, 'FATAL');
    assert.equal(e.code, 'XX000');
    assert.equal(e.message, '');
    const none = decodeWith(be.errorResponse([]), decodeErrorFields);
    assert.equal(none.severity, 'ERROR');
  });

  test('decodeErrorFields round-trips encodeError', () => {
    const err = new PgError('HV00N', 'could not connect', { severity: 'FATAL', hint: UTF8, position: 3 });
    const e = decodeWith(encodeError(err), decodeErrorFields);
    assert.equal(e.code, 'HV00N');
    assert.equal(e.severity, 'FATAL');
    assert.equal(e.message, 'could not connect');
    assert.equal(e.fields.get('H'), UTF8);
    assert.equal(e.fields.get('P'), '3');
  });

  test('decodeErrorFields: a field value running past the frame end is an error', () => {
    const frame = body().int8(0x4d).raw(Buffer.from('no terminator')).frame('E');
    assert.throws(() => decodeWith(frame, decodeErrorFields), RangeError);
  });
});

describe('backend: remapErrorPosition', () => {
  const fields = (pos: string | undefined): [string, string][] => [
    ['S', 'ERROR'],
    ['V', 'ERROR'],
    ['C', '42703'],
    ['M', `column "${UTF8}" does not exist`],
    ...(pos === undefined ? [] : ([['P', pos]] as [string, string][])),
    ['F', 'parse_relation.c'],
    ['L', '3651'],
    ['R', 'errorMissingColumn'],
  ];

  test('maps P (1-based) through a 0-based map, keeping every other field and the order', () => {
    const seen: number[] = [];
    const out = decodeWith(be.errorResponse(fields('8')), (buf, start, end) =>
      remapErrorPosition(buf, start, end, (p0) => {
        seen.push(p0);
        return p0 + 100;
      }),
    );
    assert.deepEqual(seen, [7]);
    assert.deepEqual(out, be.errorResponse(fields('108')));
  });

  test('without P: the same bytes, copied (not a view into the stream)', () => {
    const frame = be.errorResponse(fields(undefined));
    const { buf, start, end } = embed(frame);
    const out = remapErrorPosition(buf, start, end, () => assert.fail('map must not be called'));
    assert.deepEqual(out, frame);
    buf.fill(0, start, end); // the stream's memory is reused once consumed: the result must not change
    assert.deepEqual(out, frame);
  });

  test('a NoticeResponse stays a NoticeResponse', () => {
    const notice = be.noticeResponse([['S', 'NOTICE'], ['C', '00000'], ['M', 'x'], ['P', '1']]);
    const out = decodeWith(notice, (buf, start, end) => remapErrorPosition(buf, start, end, (p0) => p0 + 1));
    assert.deepEqual(out, be.noticeResponse([['S', 'NOTICE'], ['C', '00000'], ['M', 'x'], ['P', '2']]));
  });
});

describe('backend: RowDescription', () => {
  const fields: FieldDescription[] = [
    { name: 'id', tableOid: 16384, attnum: 1, typeOid: 23, typeLen: 4, typeMod: -1, format: 0 },
    { name: UTF8, tableOid: 0, attnum: 0, typeOid: 25, typeLen: -1, typeMod: -1, format: 1 },
    { name: '', tableOid: 4000000000, attnum: -2, typeOid: 4294967295, typeLen: -2, typeMod: 0x7fffffff, format: 0 },
    { name: 'n', tableOid: 1, attnum: 32767, typeOid: 1700, typeLen: -1, typeMod: 655366, format: 0 },
  ];

  test('encode matches the builder', () => {
    assert.deepEqual(encodeRowDescription(fields), be.rowDescription(fields));
  });
  test('decode reads the builder', () => {
    assert.deepEqual(decodeWith(be.rowDescription(fields), decodeRowDescription), fields);
  });
  test('no fields', () => {
    assert.deepEqual(encodeRowDescription([]), be.rowDescription([]));
    assert.deepEqual(decodeWith(be.rowDescription([]), decodeRowDescription), []);
  });
  test('many fields (1600, the Postgres column limit area)', () => {
    const many = Array.from({ length: 1600 }, (_, i): FieldDescription => ({ name: `col_${i}_${UTF8}`, tableOid: i, attnum: i + 1, typeOid: 25, typeLen: -1, typeMod: -1, format: i % 2 }));
    const bytes = encodeRowDescription(many);
    assert.deepEqual(bytes, be.rowDescription(many));
    assert.deepEqual(decodeWith(bytes, decodeRowDescription), many);
  });
  test('truncated RowDescription throws RangeError', () => {
    const full = be.rowDescription(fields);
    for (const n of [0, 1, 2, 5, 20, full.length - 6]) {
      assert.throws(() => decodeWith(truncated(full, n), decodeRowDescription), RangeError, `payload cut to ${n}`);
    }
  });
});

describe('backend: DataRow', () => {
  const cases: [string, (Buffer | null)[]][] = [
    ['text values', [Buffer.from('1'), Buffer.from('hello')]],
    ['NULLs', [null, Buffer.from('x'), null]],
    ['all NULL', [null, null]],
    ['empty string vs NULL', [Buffer.alloc(0), null, Buffer.alloc(0)]],
    ['binary with zero and 0xff bytes', [Buffer.from([0, 0, 0, 0, 0xff, 0xfe, 0x00, 0x80])]],
    ['UTF-8 multi-byte', [Buffer.from(UTF8, 'utf8')]],
    ['no columns', []],
    ['large value', [Buffer.alloc(200000, 0x61), null]],
  ];
  for (const [name, values] of cases) {
    test(name, () => {
      const bytes = encodeDataRow(values);
      assert.deepEqual(bytes, be.dataRow(values));
      assert.deepEqual(decodeWith(bytes, decodeDataRow), values);
    });
  }
  test('decoded values are views, and NULL stays distinct from empty', () => {
    const out = decodeWith(be.dataRow([Buffer.alloc(0), null]), decodeDataRow);
    assert.ok(Buffer.isBuffer(out[0]));
    assert.equal(out[0]!.length, 0);
    assert.equal(out[1], null);
  });
  test('a value longer than the frame throws RangeError', () => {
    // Claims 100 bytes but the frame holds 3; the next frame's bytes must not be read as data.
    const frame = body().int16(1).int32(100).raw([1, 2, 3]).frame('D');
    assert.throws(() => decodeWith(frame, decodeDataRow), RangeError);
  });
  test('a negative length other than -1 throws RangeError', () => {
    const frame = body().int16(1).int32(-2).frame('D');
    assert.throws(() => decodeWith(frame, decodeDataRow), RangeError);
  });
});

describe('backend: ParameterDescription', () => {
  test('encode/decode, with OIDs above 2^31', () => {
    const oids = [0, 23, 25, 2147483648, 4294967295];
    assert.deepEqual(encodeParameterDescription(oids), be.parameterDescription(oids));
    assert.deepEqual(decodeWith(be.parameterDescription(oids), decodeParameterDescription), oids);
  });
  test('no parameters', () => {
    assert.deepEqual(encodeParameterDescription([]), be.parameterDescription([]));
    assert.deepEqual(decodeWith(be.parameterDescription([]), decodeParameterDescription), []);
  });
  test('more than 32767 parameters (Postgres allows up to 65535; the count is unsigned)', () => {
    const oids = Array.from({ length: 40000 }, (_, i) => (i % 2 ? 23 : 25));
    const decoded = decodeWith(be.parameterDescription(oids), decodeParameterDescription);
    assert.equal(decoded.length, 40000, 'count read as uint16');
    assert.deepEqual(decoded, oids);
    assert.ok(encodeParameterDescription(oids).equals(be.parameterDescription(oids)), 'encoded bytes differ');
  });
});

// ---------------------------------------------------------------------------------------------
// frontend.ts
// ---------------------------------------------------------------------------------------------

describe('frontend: Query', () => {
  for (const text of ['select 1', '', `select '${UTF8}'`, 'select 1; select 2', 'x'.repeat(100000)]) {
    test(JSON.stringify(text.slice(0, 30)), () => {
      assert.equal(decodeWith(fe.query(text), decodeQuery), text);
    });
  }
  test('no NUL inside the frame: RangeError, even if a NUL follows', () => {
    const frame = body().raw(Buffer.from('select 1')).frame('Q');
    assert.throws(() => decodeWith(frame, decodeQuery), RangeError);
  });
});

describe('frontend: Parse', () => {
  const cases: [string, string, number[]][] = [
    ['', 'select 1', []],
    ['stmt_1', 'select $1::int, $2', [23, 0]],
    [UTF8, `select '${UTF8}' where $1 = $2`, [25, 4294967295]],
    ['', '', []],
  ];
  for (const [name, text, types] of cases) {
    test(`${JSON.stringify(name.slice(0, 10))} / ${JSON.stringify(text.slice(0, 20))}`, () => {
      const frame = fe.parse(name, text, types);
      assert.deepEqual(decodeWith(frame, decodeParse), { name, text, paramTypes: types });
      assert.equal(decodeWith(frame, parseText), text);
      assert.deepEqual(encodeParse({ name, text, paramTypes: types }), frame);
    });
  }
  test('more than 32767 parameter types (Postgres allows up to 65535; the count is unsigned)', () => {
    const types = Array.from({ length: 40000 }, () => 23);
    const frame = fe.parse('many', 'select 1', types);
    assert.equal(decodeWith(frame, decodeParse).paramTypes.length, 40000, 'count read as uint16');
    assert.ok(encodeParse({ name: 'many', text: 'select 1', paramTypes: types }).equals(frame), 'encoded bytes differ');
  });
  test('parseText: text NUL missing within the frame', () => {
    const frame = body().cstring('s').raw(Buffer.from('select 1')).frame('P');
    assert.throws(() => decodeWith(frame, parseText), RangeError);
    assert.throws(() => decodeWith(frame, decodeParse), RangeError);
  });
  test('parseText: name NUL missing within the frame', () => {
    const frame = body().raw(Buffer.from('name-without-nul')).frame('P');
    assert.throws(() => decodeWith(frame, parseText), RangeError);
  });
  test('truncated parameter type list', () => {
    const full = fe.parse('s', 'q', [23, 25]);
    assert.throws(() => decodeWith(truncated(full, full.length - 5 - 3), decodeParse), RangeError);
  });
});

describe('frontend: Bind', () => {
  const cases: [string, BindMessage][] = [
    ['unnamed, no params', { portal: '', statement: '', paramFormats: [], params: [], resultFormats: [] }],
    ['text params with NULL', { portal: 'p', statement: 's', paramFormats: [], params: [Buffer.from('1'), null, Buffer.from('')], resultFormats: [] }],
    ['one format for all (binary)', { portal: '', statement: 's', paramFormats: [1], params: [Buffer.from([0, 0, 0, 42]), Buffer.from([0xff, 0, 0xff])], resultFormats: [1] }],
    ['per-parameter formats', { portal: UTF8, statement: UTF8, paramFormats: [0, 1, 0], params: [Buffer.from(UTF8), Buffer.from([0, 0]), null], resultFormats: [0, 1] }],
    ['empty string param vs NULL', { portal: '', statement: '', paramFormats: [0], params: [Buffer.alloc(0), null], resultFormats: [] }],
  ];
  for (const [name, m] of cases) {
    test(name, () => {
      const frame = fe.bind(m.portal, m.statement, m.paramFormats, m.params, m.resultFormats);
      assert.deepEqual(encodeBind(m), frame);
      assert.deepEqual(decodeWith(frame, decodeBind), m);
    });
  }
  test("encodeBindParts: pg-protocol's Bind, byte for byte; a parameter in pieces goes out as those pieces", () => {
    const pieces = [Buffer.from('{"v":1,'), Buffer.alloc(0), Buffer.from('"parts":[]}'), Buffer.from(UTF8)];
    const whole = Buffer.concat(pieces);
    const parts = encodeBindParts(UTF8, '__s', ['tx-1', pieces, null, '', Buffer.from([0, 1, 2]), UTF8]);
    for (const p of pieces.filter((b) => b.length > 0)) assert.ok(parts.includes(p), 'a piece is written as it is, not copied');
    assert.deepEqual(Buffer.concat(parts), serialize.bind({ portal: UTF8, statement: '__s', values: ['tx-1', whole, null, '', Buffer.from([0, 1, 2]), UTF8] }));
    assert.deepEqual(Buffer.concat(encodeBindParts('', '', [])), serialize.bind({}));
  });

  test('more than 32767 parameters (Postgres allows up to 65535; counts are unsigned)', () => {
    const params = Array.from({ length: 40000 }, (_, i) => (i % 3 === 0 ? null : Buffer.from(String(i))));
    const m: BindMessage = { portal: '', statement: 's', paramFormats: [0], params, resultFormats: [] };
    const frame = fe.bind('', 's', [0], params, []);
    const decoded = decodeWith(frame, decodeBind);
    assert.equal(decoded.params.length, 40000, 'count read as uint16');
    assert.deepEqual(decoded, m);
    assert.ok(encodeBind(m).equals(frame), 'encoded bytes differ');
  });
  test('paramFormat follows the 0/1/n rule', () => {
    const base = { portal: '', statement: '', params: [null, null, null], resultFormats: [] };
    assert.equal(paramFormat({ ...base, paramFormats: [] }, 2), 0);
    assert.equal(paramFormat({ ...base, paramFormats: [1] }, 0), 1);
    assert.equal(paramFormat({ ...base, paramFormats: [1] }, 2), 1);
    assert.equal(paramFormat({ ...base, paramFormats: [0, 1, 0] }, 1), 1);
    assert.equal(paramFormat({ ...base, paramFormats: [1, 0, 1] }, 1), 0);
    assert.equal(paramFormat({ ...base, paramFormats: [1, 0, 1] }, 2), 1);
  });
  test('a parameter length of -2 is rejected as Postgres rejects it', () => {
    const frame = body().cstring('').cstring('').int16(0).int16(1).int32(-2).int16(0).frame('B');
    assertPgError(() => decodeWith(frame, decodeBind), '08P01', 'ERROR', /^insufficient data left in message$/);
  });
  test('truncated at every byte: an ERROR (08P01), never a crash', () => {
    const full = fe.bind('p', 's', [1], [Buffer.from([1, 2, 3, 4])], [1]);
    for (let n = 0; n < full.length - 5; n++) {
      assertPgError(() => decodeWith(truncated(full, n), decodeBind), '08P01', 'ERROR', /^(insufficient data left in message|invalid string in message)$/);
    }
  });
  test("Postgres's checks, in Postgres's order", () => {
    /** A Bind of statement "s", with `extra` bytes after its last field (the length covers them). */
    const b = (formats: number[], params: (Buffer | null)[], extra = Buffer.alloc(0)): Buffer => {
      const f = Buffer.concat([fe.bind('', 's', formats, params, []), extra]);
      f.writeInt32BE(f.length - 1, 1);
      return f;
    };
    const withLength = (f: Buffer): Buffer => f;
    const one = [Buffer.from('1')];
    assertPgError(() => decodeBind(withLength(b([0, 0], one)), 0, withLength(b([0, 0], one)).length), '08P01', 'ERROR', /^bind message has 2 parameter formats but 1 parameters$/);
    const ok = withLength(b([], one));
    assertPgError(() => decodeBind(ok, 0, ok.length, { params: 2 }), '08P01', 'ERROR', /^bind message supplies 1 parameters, but prepared statement "s" requires 2$/);
    assertPgError(() => decodeBind(ok, 0, ok.length, { params: 1, failedTx: true }), '25P02', 'ERROR');
    const badFormat = withLength(b([7], one));
    assertPgError(() => decodeBind(badFormat, 0, badFormat.length, { params: 1 }), '22023', 'ERROR', /^unsupported format code: 7$/);
    const trailing = withLength(b([], one, Buffer.from([1])));
    assertPgError(() => decodeBind(trailing, 0, trailing.length, { params: 1 }), '08P01', 'ERROR', /^(invalid message format|insufficient data left in message)$/);
  });
});

describe('frontend: Describe / Close / Execute', () => {
  for (const kind of ['S', 'P'] as const) {
    for (const name of ['', 'x', UTF8]) {
      test(`Describe/Close ${kind} ${JSON.stringify(name)}`, () => {
        const d = fe.describe(kind, name);
        const c = fe.close(kind, name);
        assert.deepEqual(decodeWith(d, decodeTarget), { kind, name });
        assert.deepEqual(decodeWith(c, decodeTarget), { kind, name });
        assert.deepEqual(encodeTarget(0x44, { kind, name }), d);
        assert.deepEqual(encodeTarget(0x43, { kind, name }), c);
      });
    }
  }
  test('Describe with an invalid kind byte', () => {
    const frame = body().int8(0x58).cstring('x').frame('D');
    assertPgError(() => decodeWith(frame, decodeTarget), '08P01', 'ERROR', /^invalid DESCRIBE message subtype 88$/);
  });
  test('Describe with no body', () => {
    assertPgError(() => decodeWith(body().frame('D'), decodeTarget), '08P01', 'ERROR', /^no data left in message$/);
  });
  for (const [portal, maxRows] of [['', 0], ['p1', 100], [UTF8, 2147483647]] as const) {
    test(`Execute ${JSON.stringify(portal)} ${maxRows}`, () => {
      const frame = fe.execute(portal, maxRows);
      assert.deepEqual(decodeWith(frame, decodeExecute), { portal, maxRows });
      assert.deepEqual(encodeExecute({ portal, maxRows }), frame);
    });
  }
  test('Execute missing maxRows', () => {
    assertPgError(() => decodeWith(body().cstring('p').int16(0).frame('E'), decodeExecute), '08P01', 'ERROR', /^insufficient data left in message$/);
  });
  test('SYNC, FLUSH, TERMINATE', () => {
    assert.deepEqual(SYNC, fe.sync());
    assert.deepEqual(FLUSH, fe.flush());
    assert.deepEqual(TERMINATE, fe.terminate());
  });
});

// ---------------------------------------------------------------------------------------------
// startup.ts
// ---------------------------------------------------------------------------------------------

function assertPgError(fn: () => unknown, code: string, severity: string, message?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof PgError, `expected a PgError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.equal(e.severity, severity);
    if (message) assert.match(e.message, message);
    return true;
  });
}

describe('startup: packet length', () => {
  test('fewer than 4 bytes: not known yet', () => {
    for (let n = 0; n < 4; n++) assert.equal(startupPacketLength(startup.ssl().subarray(0, n)), -1);
  });
  test('valid lengths', () => {
    assert.equal(startupPacketLength(startup.ssl()), 8);
    assert.equal(startupPacketLength(startup.ssl().subarray(0, 4)), 8, 'the length alone is enough');
    const m = startup.message({ user: 'postgres', database: 'postgres' });
    assert.equal(startupPacketLength(m), m.length);
    assert.equal(startupPacketLength(Buffer.from([0, 0, 0x27, 0x10])), MAX_STARTUP_PACKET, '10000 bytes is the limit');
  });
  for (const len of [0, 4, 7, -1, -8, MAX_STARTUP_PACKET + 1, 0x7fffffff]) {
    test(`bad length ${len}`, () => {
      const b = Buffer.alloc(8);
      b.writeInt32BE(len, 0);
      assertPgError(() => startupPacketLength(b), '08P01', 'FATAL', /invalid length of startup packet/);
    });
  }
});

describe('startup: decode', () => {
  test('SSLRequest', () => assert.deepEqual(decodeStartupPacket(startup.ssl()), { kind: 'ssl' }));
  test('GSSENCRequest', () => assert.deepEqual(decodeStartupPacket(startup.gssenc()), { kind: 'gssenc' }));

  test('CancelRequest (4-byte key, protocol 3.0)', () => {
    const raw = startup.cancel(4242, [0xde, 0xad, 0xbe, 0xef]);
    const p = decodeStartupPacket(raw);
    assert.equal(p.kind, 'cancel');
    if (p.kind !== 'cancel') return;
    assert.equal(p.processId, 4242);
    assert.deepEqual(p.secretKey, Buffer.from([0xde, 0xad, 0xbe, 0xef]));
    assert.deepEqual(p.raw, raw);
  });

  test('CancelRequest with a longer key (protocol 3.2)', () => {
    const key = Array.from({ length: 32 }, (_, i) => i);
    const p = decodeStartupPacket(startup.cancel(7, key));
    assert.equal(p.kind, 'cancel');
    if (p.kind === 'cancel') assert.deepEqual(p.secretKey, Buffer.from(key));
  });

  test('CancelRequest too short', () => {
    const raw = body().int32(80877102).int32(1).packet(); // 12 bytes, no key
    assertPgError(() => decodeStartupPacket(raw), '08P01', 'FATAL', /cancel/);
  });

  test('StartupMessage with parameters, UTF-8 and empty values', () => {
    const params = { user: 'postgres', database: 'postgres', application_name: UTF8, options: '-c search_path=public', client_encoding: '' };
    const raw = startup.message(params);
    const p = decodeStartupPacket(raw);
    assert.equal(p.kind, 'startup');
    if (p.kind !== 'startup') return;
    assert.deepEqual(p.params, new Map(Object.entries(params)));
    assert.equal(p.raw, raw, 'raw is the packet as received, for forwarding');
  });

  test('StartupMessage with no parameters at all (just the terminator)', () => {
    const p = decodeStartupPacket(startup.message({}));
    assert.equal(p.kind, 'startup');
    if (p.kind === 'startup') assert.equal(p.params.size, 0);
  });

  test('protocol 3.2 is accepted (upstream negotiates the minor version)', () => {
    const p = decodeStartupPacket(startup.message({ user: 'u' }, 3, 2));
    assert.equal(p.kind, 'startup');
    if (p.kind === 'startup') assert.equal(p.params.get('user'), 'u');
  });

  test('protocol 3.1 and 3.99 are accepted too', () => {
    assert.equal(decodeStartupPacket(startup.message({ user: 'u' }, 3, 1)).kind, 'startup');
    assert.equal(decodeStartupPacket(startup.message({ user: 'u' }, 3, 99)).kind, 'startup');
  });

  test('protocol 2.0 is rejected with 0A000', () => {
    assertPgError(() => decodeStartupPacket(startup.message({ user: 'u' }, 2, 0)), '0A000', 'FATAL', /unsupported frontend protocol 2\.0/);
  });

  test('protocol 4.0 and 1.0 are rejected', () => {
    assertPgError(() => decodeStartupPacket(startup.message({ user: 'u' }, 4, 0)), '0A000', 'FATAL', /4\.0/);
    assertPgError(() => decodeStartupPacket(startup.message({ user: 'u' }, 1, 0)), '0A000', 'FATAL', /1\.0/);
  });

  test('a parameter name without a value', () => {
    const raw = body().int16(3).int16(0).cstring('user').packet();
    assertPgError(() => decodeStartupPacket(raw), '08P01', 'FATAL', /invalid startup packet layout/);
  });

  test('a value without its NUL', () => {
    const raw = body().int16(3).int16(0).cstring('user').raw(Buffer.from('postgres')).packet();
    assertPgError(() => decodeStartupPacket(raw), '08P01', 'FATAL', /invalid startup packet layout/);
  });

  // Postgres (ProcessStartupPacket) insists the packet's last byte is the terminator and nothing follows it.
  test('missing final terminator is rejected, as Postgres does', () => {
    const raw = body().int16(3).int16(0).cstring('user').cstring('postgres').packet();
    assertPgError(() => decodeStartupPacket(raw), '08P01', 'FATAL', /expected terminator as last byte/);
  });

  test('no body at all after the version is rejected, as Postgres does', () => {
    const raw = body().int16(3).int16(0).packet(); // 8 bytes
    assertPgError(() => decodeStartupPacket(raw), '08P01', 'FATAL', /expected terminator as last byte/);
  });

  test('bytes after the terminator are rejected, as Postgres does', () => {
    const raw = body().int16(3).int16(0).cstring('user').cstring('postgres').int8(0).raw(Buffer.from('junk')).packet();
    assertPgError(() => decodeStartupPacket(raw), '08P01', 'FATAL', /expected terminator as last byte/);
  });
});
