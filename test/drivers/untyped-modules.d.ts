// Minimal typings for driver add-ons that ship none (only what the driver tests use).
declare module 'pg-cursor' {
  import type { Submittable, Connection, CustomTypesConfig } from 'pg';
  export default class Cursor<R = any> implements Submittable {
    constructor(text: string, values?: unknown[] | null, config?: { rowMode?: 'array'; types?: CustomTypesConfig });
    submit: (connection: Connection) => void;
    read(rows: number): Promise<R[]>;
    close(): Promise<void>;
  }
}

declare module 'pg-copy-streams' {
  import type { Submittable, Connection } from 'pg';
  import type { Readable, Writable } from 'node:stream';
  export interface CopyFromStream extends Writable, Submittable {
    rowCount: number;
    submit: (connection: Connection) => void;
  }
  export interface CopyToStream extends Readable, Submittable {
    rowCount: number;
    submit: (connection: Connection) => void;
  }
  export function from(text: string): CopyFromStream;
  export function to(text: string): CopyToStream;
}
