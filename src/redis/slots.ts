/**
 * Redis Cluster hash slots. WATCH and MULTI/EXEC hold only within one slot on a cluster, so a guarded
 * apply is cut per slot, and each slot's share gets a marker key of its own in that same slot: the
 * marker's name ends in a hash tag that hashes to the slot.
 */
import calculateSlot from 'cluster-key-slot';
import { GiveWay } from '../executor/give-way.js';

export const SLOT_COUNT = 16384;

/** The slot a key lives in (CRC16 of the key, or of its `{tag}`), as Redis and ioredis compute it. */
export const slotOf = (key: string | Buffer): number => calculateSlot(key);

let tags: Promise<readonly string[]> | undefined;

/**
 * For every slot, a short hash tag that lands in it: the first base-36 number whose CRC16 does. The
 * rule is deterministic, so every proxy (and every replay) names a slot's marker alike; it is part of the
 * marker's format. Building it takes ~90,000 hashes (~100 ms here), so it is done once, on first use,
 * in slices that let other sessions run.
 */
export function slotTags(): Promise<readonly string[]> {
  tags ??= (async () => {
    const giveWay = new GiveWay();
    const out = new Array<string>(SLOT_COUNT);
    for (let n = 0, left = SLOT_COUNT; left > 0; n++) {
      const tag = n.toString(36);
      const slot = calculateSlot(tag);
      if (out[slot] === undefined) {
        out[slot] = tag;
        left--;
      }
      if ((n & 1023) === 1023) {
        const p = giveWay.maybe();
        if (p) await p;
      }
    }
    return out;
  })();
  return tags;
}
