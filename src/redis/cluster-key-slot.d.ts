// cluster-key-slot (ioredis's own dependency) ships no types: the CRC16 of a key, hash tags honoured.
declare module 'cluster-key-slot' {
  function calculateSlot(key: string | Buffer): number;
  namespace calculateSlot {
    /** The slot all `keys` share, or -1 when they don't. */
    function generateMulti(keys: readonly (string | Buffer)[]): number;
  }
  export = calculateSlot;
}
