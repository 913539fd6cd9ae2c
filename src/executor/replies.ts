/**
 * Capture entries for statements the proxy runs in place of the client's. A simple Query the proxy
 * intercepts runs as extended-protocol messages; these captures turn the replies back into what a
 * simple Query gets: no ParseComplete/BindComplete/NoData, error positions counted from the start of
 * the client's whole query string.
 */
import { Backend } from '../protocol/codes.js';
import { encodeCommandComplete, remapErrorPosition } from '../protocol/backend.js';
import { PASS, Req, type Capture, type Entry, forward } from '../session/expected-queue.js';

export type PositionMap = (pos0: number) => number;

const fixError = (code: number, buf: Buffer, start: number, end: number, map: PositionMap | undefined): Buffer =>
  code === Backend.ErrorResponse && map ? remapErrorPosition(buf, start, end, map) : PASS;

/** Forwards every reply but `swallow`ed codes; errors get their position mapped. */
export function passCapture(req: Req, swallow: readonly number[], map: PositionMap | undefined, extra?: Partial<Pick<Capture, 'onDone'>> & { rewrite?: (code: number, buf: Buffer, start: number, end: number) => Buffer | null | undefined }): Capture {
  return {
    kind: 'capture',
    req,
    onFrame(code, buf, start, end) {
      if (swallow.includes(code)) return null;
      const r = extra?.rewrite?.(code, buf, start, end);
      if (r !== undefined) return r;
      return fixError(code, buf, start, end, map);
    },
    onDone: extra?.onDone ?? (() => {}),
  };
}

/** Entries for Parse, Bind, Describe portal, Execute of one statement of an intercepted simple Query. */
export function simpleModeEntries(map: PositionMap | undefined, execute?: Capture, describe?: Capture): Entry[] {
  return [
    passCapture(Req.Parse, [Backend.ParseComplete], map),
    passCapture(Req.Bind, [Backend.BindComplete], map),
    describe ?? passCapture(Req.Describe, [Backend.NoData], map),
    execute ?? (map ? passCapture(Req.Execute, [], map) : forward(Req.Execute)),
  ];
}

/** An Execute capture that reports `tag` in place of upstream's command tag. */
export function retagExecute(tag: string, map: PositionMap | undefined): Capture {
  return passCapture(Req.Execute, [], map, { rewrite: (code) => (code === Backend.CommandComplete ? encodeCommandComplete(tag) : undefined) });
}
