// Shared helpers for the driver tests: differential comparison (upstream directly vs. through the
// proxy), message tracing for node-postgres, and running external helper programs.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';

/** Source dir of the driver tests (helper scripts live next to the .ts files, not in dist/). */
export const DRIVERS_SRC_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../test/drivers');

export function helperPath(rel: string): string {
  const p = path.join(DRIVERS_SRC_DIR, rel);
  if (!existsSync(p)) throw new Error(`helper ${rel} not found at ${p}`);
  return p;
}

/** Fields of a Postgres error as a client library exposes them, minus nothing: they must all match. */
export function errInfo(e: unknown): Record<string, unknown> {
  if (e === null || typeof e !== 'object') return { notAnError: String(e) };
  const o = e as Record<string, unknown>;
  const keys = ['message', 'severity', 'code', 'detail', 'hint', 'position', 'internalPosition', 'internalQuery', 'where', 'schema', 'table', 'column', 'dataType', 'constraint', 'file', 'line', 'routine'];
  const out: Record<string, unknown> = { name: o.name };
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

/** A node-postgres result without values that legitimately differ between two databases' tables. */
export function normResult(r: pg.QueryResult | pg.QueryResult[]): unknown {
  if (Array.isArray(r)) return r.map((x) => normResult(x));
  return {
    command: r.command,
    rowCount: r.rowCount,
    fields: r.fields.map((f) => ({ name: f.name, columnID: f.columnID, dataTypeID: f.dataTypeID, dataTypeSize: f.dataTypeSize, dataTypeModifier: f.dataTypeModifier, format: f.format, fromTable: f.tableID !== 0 })),
    rows: r.rows,
  };
}

export interface TracedMessage {
  name: string;
  [k: string]: unknown;
}

/**
 * Records every backend message node-postgres receives on this client, normalized so that two
 * databases can be compared (table oids, backend pids and secret keys dropped).
 */
export function traceMessages(client: pg.Client): TracedMessage[] {
  const out: TracedMessage[] = [];
  const con = (client as unknown as { connection: { _emitMessage: boolean; on(ev: string, fn: (m: Record<string, unknown>) => void): void } }).connection;
  con._emitMessage = true;
  con.on('message', (m) => {
    const name = String(m.name);
    const rec: TracedMessage = { name };
    switch (name) {
      case 'dataRow':
        rec.fields = m.fields;
        break;
      case 'rowDescription':
        rec.fields = (m.fields as Array<Record<string, unknown>>).map((f) => ({ name: f.name, dataTypeID: f.dataTypeID, format: f.format, columnID: f.columnID }));
        break;
      case 'commandComplete':
        rec.text = m.text;
        break;
      case 'error':
      case 'notice':
        rec.fields = errInfo(m);
        break;
      case 'readyForQuery':
        rec.status = m.status;
        break;
      case 'parameterStatus':
        rec.param = m.parameterName;
        rec.value = m.parameterValue;
        break;
      case 'notification':
        rec.channel = m.channel;
        rec.payload = m.payload;
        break;
      case 'parameterDescription':
        rec.dataTypeIDs = m.dataTypeIDs;
        break;
      case 'copyInResponse':
      case 'copyOutResponse':
        rec.binary = m.binary;
        rec.columnTypes = m.columnTypes;
        break;
      case 'copyData':
        rec.bytes = (m.chunk as Buffer).length;
        break;
      default:
        break; // backendKeyData, auth*: values differ per connection by nature
    }
    out.push(rec);
  });
  return out;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runProgram(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs a helper that prints one JSON document on stdout; fails with its stderr when it does not. */
export async function runJsonProgram(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<Record<string, any>> {
  const r = await runProgram(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}\nstderr:\n${r.stderr}\nstdout:\n${r.stdout}`);
  try {
    return JSON.parse(r.stdout) as Record<string, any>;
  } catch {
    throw new Error(`${cmd} printed no JSON\nstderr:\n${r.stderr}\nstdout:\n${r.stdout}`);
  }
}

/** Resolves with the value, or rejects after ms (so a hung proxy fails a test instead of the run). */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

/**
 * Subtests shared by the scenario-based driver tests (psycopg, JDBC): nothing threw through the proxy,
 * the same scenarios ran, and each scenario's JSON equals upstream's.
 */
export async function sameScenarios(t: import('node:test').TestContext, via: Record<string, any>, direct: Record<string, any>): Promise<void> {
  await t.test('no scenario threw through the proxy', () => {
    const crashed = Object.entries(via).filter(([, v]) => v && typeof v === 'object' && 'exception' in v);
    assert.deepEqual(crashed.map(([k, v]) => `${k}: ${v.trace}`), []);
    assert.deepEqual(Object.keys(via).sort(), Object.keys(direct).sort());
  });
  for (const key of Object.keys(direct).sort()) {
    await t.test(`scenario ${key}: identical to upstream directly`, () => {
      assert.deepEqual(via[key], direct[key]);
    });
  }
}
