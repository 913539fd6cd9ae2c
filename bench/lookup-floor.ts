// The floor under any Node process that answers point lookups between a Postgres client and Redis:
// just enough of the protocol for pgbench -M prepared (trust login, Parse, Bind, Describe, Execute,
// Sync), each Execute answered by one HGET on one raw, pipelined Redis connection, and every reply of a
// turn in one write per socket. No SQL, no catalog, no privileges, no checks. bench/lookup runs it beside
// the proxy: "floor / raw" is what any such Node process can reach on this machine, and "proxy / floor"
// what the proxy's own work costs on top of it.
//
//   node dist/bench/lookup-floor.js LISTEN_PORT REDIS_HOST:REDIS_PORT DB KEY LITERAL_FIELD
//
// A Bind with a parameter looks up its first parameter's text; one without looks up LITERAL_FIELD.
import net from 'node:net';

const [listenPort, redisAt, db, key, literal] = process.argv.slice(2);
if (!listenPort || !redisAt || db === undefined || !key || literal === undefined) {
  console.error('usage: lookup-floor LISTEN_PORT REDIS_HOST:REDIS_PORT DB KEY LITERAL_FIELD');
  process.exit(2);
}

function message(code: string, body: Buffer): Buffer {
  const b = Buffer.allocUnsafe(5 + body.length);
  b[0] = code.charCodeAt(0);
  b.writeInt32BE(4 + body.length, 1);
  body.copy(b, 5);
  return b;
}
const cstring = (s: string): Buffer => Buffer.from(`${s}\0`);
const int32 = (n: number): Buffer => Buffer.from([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
const int16 = (n: number): Buffer => Buffer.from([(n >>> 8) & 255, n & 255]);

const READY = message('Z', Buffer.from('I'));
const LOGIN = Buffer.concat([
  message('R', int32(0)),
  ...[['server_version', '15.0'], ['server_encoding', 'UTF8'], ['client_encoding', 'UTF8'], ['standard_conforming_strings', 'on'], ['integer_datetimes', 'on'], ['DateStyle', 'ISO, MDY']].map(([k, v]) =>
    message('S', Buffer.concat([cstring(k!), cstring(v!)])),
  ),
  message('K', Buffer.concat([int32(1), int32(2)])),
  READY,
]);
// One text column, as the foreign table's `value` describes (no table oid: the floor has none).
const ROW_DESCRIPTION = message('T', Buffer.concat([int16(1), cstring('value'), int32(0), int16(0), int32(25), int16(-1), int32(-1), int16(0)]));
const PARSE_COMPLETE = message('1', Buffer.alloc(0));
const BIND_COMPLETE = message('2', Buffer.alloc(0));
const CLOSE_COMPLETE = message('3', Buffer.alloc(0));
const SELECT_0 = message('C', cstring('SELECT 0'));
const SELECT_1 = message('C', cstring('SELECT 1'));
const FAILED = message('E', Buffer.concat([cstring('SERROR'), cstring('CXX000'), cstring('Mredis reply'), Buffer.alloc(1)]));

/** What a turn of the event loop queues for `sock`, written in one write at its end. */
function turnWriter(sock: net.Socket): (b: Buffer) => void {
  let held: Buffer[] = [];
  let holding = false;
  return (b) => {
    held.push(b);
    if (holding) return;
    holding = true;
    setImmediate(() => {
      holding = false;
      sock.write(held.length === 1 ? held[0]! : Buffer.concat(held));
      held = [];
    });
  };
}

// ---- Redis: one connection, commands of a turn in one write, replies in order ----
const i = redisAt.lastIndexOf(':');
const redis = net.connect(Number(redisAt.slice(i + 1)), redisAt.slice(0, i));
redis.setNoDelay(true);
const toRedis = turnWriter(redis);
type Reply = Buffer | null | Error;
const waiting: ((r: Reply) => void)[] = [];
function command(args: string[], done: (r: Reply) => void): void {
  let s = `*${args.length}\r\n`;
  for (const a of args) s += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
  waiting.push(done);
  toRedis(Buffer.from(s));
}
let pending: Buffer = Buffer.alloc(0);
redis.on('data', (chunk: Buffer) => {
  const buf = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
  let o = 0;
  for (;;) {
    const eol = buf.indexOf(13, o);
    if (eol < 0 || eol + 1 >= buf.length) break;
    const type = buf[o];
    if (type === 36) {
      const n = Number(buf.toString('latin1', o + 1, eol));
      if (n < 0) {
        o = eol + 2;
        waiting.shift()!(null);
        continue;
      }
      if (eol + 2 + n + 2 > buf.length) break;
      const value = Buffer.from(buf.subarray(eol + 2, eol + 2 + n));
      o = eol + 4 + n;
      waiting.shift()!(value);
    } else {
      const text = buf.toString('latin1', o + 1, eol);
      o = eol + 2;
      waiting.shift()!(type === 45 ? new Error(text) : null);
    }
  }
  pending = o < buf.length ? Buffer.from(buf.subarray(o)) : Buffer.alloc(0);
});
redis.on('error', (e) => {
  console.error(`lookup-floor: redis: ${e.message}`);
  process.exit(1);
});
if (db !== '0') command(['SELECT', db], () => {});

// ---- clients ----
net
  .createServer({ noDelay: true }, (sock) => {
    let buf: Buffer = Buffer.alloc(0);
    let started = false;
    let field = literal;
    let busy = false;
    const send = turnWriter(sock);
    const drain = (): void => {
      while (!busy) {
        if (!started) {
          if (buf.length < 8 || buf.length < buf.readInt32BE(0)) return;
          const len = buf.readInt32BE(0);
          const code = buf.readInt32BE(4);
          buf = buf.subarray(len);
          // SSLRequest, GSSENCRequest: not here.
          if (code === 80877103 || code === 80877104) sock.write('N');
          else {
            started = true;
            sock.write(LOGIN);
          }
          continue;
        }
        if (buf.length < 5 || buf.length < 1 + buf.readInt32BE(1)) return;
        const len = buf.readInt32BE(1);
        const code = String.fromCharCode(buf[0]!);
        const body = buf.subarray(5, 1 + len);
        buf = buf.subarray(1 + len);
        switch (code) {
          case 'P': send(PARSE_COMPLETE); break;
          case 'D': send(ROW_DESCRIPTION); break;
          case 'S': send(READY); break;
          case 'C': send(CLOSE_COMPLETE); break;
          case 'B': {
            let o = body.indexOf(0) + 1;
            o = body.indexOf(0, o) + 1;
            o += 2 + 2 * body.readInt16BE(o);
            const params = body.readInt16BE(o);
            field = params > 0 ? body.toString('utf8', o + 6, o + 6 + body.readInt32BE(o + 2)) : literal;
            send(BIND_COMPLETE);
            break;
          }
          case 'E':
            busy = true;
            command(['HGET', key, field], (r) => {
              busy = false;
              if (r instanceof Error) send(FAILED);
              else if (r === null) send(SELECT_0);
              else send(Buffer.concat([message('D', Buffer.concat([int16(1), int32(r.length), r])), SELECT_1]));
              drain();
            });
            break;
          case 'X':
            sock.end();
            return;
        }
      }
    };
    sock.on('data', (chunk: Buffer) => {
      buf = buf.length > 0 ? Buffer.concat([buf, chunk]) : chunk;
      drain();
    });
    sock.on('error', () => sock.destroy());
  })
  .listen(Number(listenPort), '127.0.0.1');
