/**
 * A decoded stored part and the epoch-ms times of its endpoints.
 *
 * A minute part's endpoint was first/last seen at
 * `minute * 60000 + second * 1000`: the *start* of the second of its
 * first/last packet (a block keeps whole seconds), so "active since T" is
 * `lastSeen >= T` with T floored to the second.
 *
 * A roll-up part covers a whole hour: its block's `minute` is the hour's first
 * minute and the endpoints' `firstSecond`/`lastSecond` hold the *minute
 * offset* within the hour (0..59, what the codec's bounds allow); the second
 * within that minute goes in the item's extra binary column `t`, two bytes
 * per endpoint in the part's endpoint order (first, last). So a roll-up keeps
 * first/last seen exact to the second, like the minutes it replaces.
 */
import type { Block } from '../../contract/block.js';
import { MINUTE_MS } from '../../contract/block.js';
import { ROLLUP_ATTRIBUTES } from '../../contract/resources.js';

const ROLLUP_SECONDS_ATTRIBUTE = ROLLUP_ATTRIBUTES.seconds;

/** A decoded part as read from the table; `seconds` only on roll-up parts. */
export interface StoredPart {
  block: Block;
  /** Roll-up parts: per endpoint, the second within the first and within the last minute. */
  seconds?: Uint8Array;
}

/** Epoch ms of endpoint `i` of a part: [firstSeen, lastSeen], each the start of its second. */
export function endpointTimes(part: StoredPart, i: number): [number, number] {
  const e = part.block.endpoints[i]!;
  const base = part.block.minute * MINUTE_MS;
  if (!part.seconds) return [base + e.firstSecond * 1000, base + e.lastSecond * 1000];
  return [
    base + e.firstSecond * MINUTE_MS + part.seconds[2 * i]! * 1000,
    base + e.lastSecond * MINUTE_MS + part.seconds[2 * i + 1]! * 1000,
  ];
}

/** Checks a roll-up's seconds column against its part; returns why it is unusable, or null. */
export function checkRollupSeconds(block: Block, seconds: Uint8Array | undefined): string | null {
  if (!seconds) return `roll-up part ${block.part}: no ${ROLLUP_SECONDS_ATTRIBUTE} column`;
  if (seconds.length !== 2 * block.endpoints.length) {
    return `roll-up part ${block.part}: ${ROLLUP_SECONDS_ATTRIBUTE} has ${seconds.length} bytes for ${block.endpoints.length} endpoints`;
  }
  for (let i = 0; i < seconds.length; i++) {
    if (seconds[i]! > 59) {
      return `roll-up part ${block.part}: endpoint ${i >> 1}: second ${seconds[i]} out of range`;
    }
  }
  return null;
}
