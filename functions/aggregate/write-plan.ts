/**
 * Turns a folded client item into conditional UpdateItem requests.
 *
 * Exactly-once rests on the watermark condition: the update of agent A's
 * payloads applies only if the item's `applied#A` is absent or below the
 * lowest seq folded from A, and moves it to the highest. Because all lines
 * about one client from one agent arrive in seq order, a payload at or below
 * the watermark has been applied already; one above it has not.
 */
import { ACTIVE_BUCKET_ATTRIBUTE, ACTIVE_KEY_ATTRIBUTE } from '../../contract/resources.js';
import {
  activityBucket,
  activityKey,
  appliedAttribute,
  type ItemKey,
  ttlFor,
} from '../../contract/table-keys.js';
import type { ClientFold } from './fold.js';

/**
 * At most this many agents' watermarks go into one request, which keeps a
 * condition expression well under DynamoDB's 4 KB expression limit.
 */
export const MAX_AGENTS_PER_WRITE = 16;

/** What is known of an item after reading it (absent item: all undefined). */
export interface ItemState {
  applied: Record<string, number>;
  firstSeen?: number;
  lastSeen?: number;
}

/** One request's worth of changes to one item. */
export interface WritePlan {
  watermarks: { agentId: string; minSeq: number; maxSeq: number }[];
  firstSeen: number;
  lastSeen: number;
  pktsIn: number;
  bytesIn: number;
  pktsOut: number;
  bytesOut: number;
  hosts: string[];
  sources: string[];
  records: Set<number>;
}

/** Splits a fold's agents into groups of at most MAX_AGENTS_PER_WRITE, in a stable order. */
export function agentGroups(fold: ClientFold): string[][] {
  const agents = [...fold.byAgent.keys()].sort();
  const groups: string[][] = [];
  for (let i = 0; i < agents.length; i += MAX_AGENTS_PER_WRITE) {
    groups.push(agents.slice(i, i + MAX_AGENTS_PER_WRITE));
  }
  return groups;
}

/**
 * Sums the payloads of `agents` that the item has not applied yet
 * (seq above its watermark); null when nothing is left to write.
 */
export function planWrite(
  fold: ClientFold,
  agents: readonly string[],
  applied: Readonly<Record<string, number>>,
): WritePlan | null {
  const plan: WritePlan = {
    watermarks: [],
    firstSeen: Number.POSITIVE_INFINITY,
    lastSeen: Number.NEGATIVE_INFINITY,
    pktsIn: 0,
    bytesIn: 0,
    pktsOut: 0,
    bytesOut: 0,
    hosts: [],
    sources: [],
    records: new Set(),
  };
  const hosts = new Set<string>();
  const sources = new Set<string>();
  for (const agentId of agents) {
    const bySeq = fold.byAgent.get(agentId);
    if (!bySeq) continue;
    const mark = applied[agentId];
    let minSeq = Number.POSITIVE_INFINITY;
    let maxSeq = Number.NEGATIVE_INFINITY;
    for (const [seq, c] of bySeq) {
      if (mark !== undefined && seq <= mark) continue;
      minSeq = Math.min(minSeq, seq);
      maxSeq = Math.max(maxSeq, seq);
      plan.firstSeen = Math.min(plan.firstSeen, c.firstSeen);
      plan.lastSeen = Math.max(plan.lastSeen, c.lastSeen);
      plan.pktsIn += c.pktsIn;
      plan.bytesIn += c.bytesIn;
      plan.pktsOut += c.pktsOut;
      plan.bytesOut += c.bytesOut;
      for (const h of c.hosts) hosts.add(h);
      for (const s of c.sources) sources.add(s);
      for (const r of c.records) plan.records.add(r);
    }
    if (maxSeq >= minSeq) plan.watermarks.push({ agentId, minSeq, maxSeq });
  }
  if (plan.watermarks.length === 0) return null;
  plan.hosts = [...hosts].sort();
  plan.sources = [...sources].sort();
  return plan;
}

/** The expression parts of one UpdateItem request. */
export interface UpdateRequest {
  UpdateExpression: string;
  ConditionExpression: string;
  ExpressionAttributeNames: Record<string, string>;
  ExpressionAttributeValues: Record<string, unknown>;
}

/**
 * Builds the conditional update for a plan. Without `known` state (first
 * attempt) lastSeen is written under "does not move backwards" and firstSeen
 * kept if present, under "is not later than ours". With `known` state (after
 * a read) each is only written when it moves, so a payload older than what
 * another agent already wrote does not fail on them again.
 */
export function buildUpdate(
  plan: WritePlan,
  key: ItemKey,
  identity: Readonly<Record<string, string | number>>,
  retentionHours: number,
  known?: ItemState,
): UpdateRequest {
  const names: Record<string, string> = {};
  const values: Record<string, unknown> = {};
  const sets: string[] = [];
  const conditions: string[] = [];
  let n = 0;
  const name = (attr: string): string => {
    const placeholder = `#n${n++}`;
    names[placeholder] = attr;
    return placeholder;
  };
  const value = (v: unknown): string => {
    const placeholder = `:v${n++}`;
    values[placeholder] = v;
    return placeholder;
  };

  for (const [attr, v] of Object.entries(identity)) sets.push(`${name(attr)} = ${value(v)}`);

  const writeLast = known?.lastSeen === undefined || plan.lastSeen > known.lastSeen;
  if (writeLast) {
    const ls = name('lastSeen');
    const lv = value(plan.lastSeen);
    sets.push(
      `${ls} = ${lv}`,
      `${name('ttl')} = ${value(ttlFor(plan.lastSeen, retentionHours))}`,
      // The index sort key moves with lastSeen, never backwards (same
      // condition). Most writes set it to the value it already has. The
      // DynamoDB Developer Guide (Global secondary indexes > Provisioned
      // throughput considerations > Write capacity units) bills an index write
      // only when the update puts the item into the index, deletes it from
      // it, changes an indexed key attribute (from A to B: two writes) or
      // changes a projected attribute (one write); with KEYS_ONLY indexes an
      // unchanged bucket is none of these. gsi1pk/gsi2pk have always been
      // SET to their unchanging values on every write in the same way.
      `${name(ACTIVE_BUCKET_ATTRIBUTE)} = ${value(activityBucket(plan.lastSeen))}`,
      `${name(ACTIVE_KEY_ATTRIBUTE)} = ${value(activityKey(activityBucket(plan.lastSeen), key.pk, key.sk))}`,
    );
    conditions.push(`(attribute_not_exists(${ls}) OR ${ls} <= ${lv})`);
  }
  if (!known) {
    // Usually the item is older than this batch: keep its firstSeen. Only when
    // this batch holds an earlier packet does the condition fail, and the
    // retry after the read lowers it.
    const fs = name('firstSeen');
    const fv = value(plan.firstSeen);
    sets.push(`${fs} = if_not_exists(${fs}, ${fv})`);
    conditions.push(`(attribute_not_exists(${fs}) OR ${fs} <= ${fv})`);
  } else if (known.firstSeen === undefined || plan.firstSeen < known.firstSeen) {
    const fs = name('firstSeen');
    const fv = value(plan.firstSeen);
    sets.push(`${fs} = ${fv}`);
    conditions.push(`(attribute_not_exists(${fs}) OR ${fs} >= ${fv})`);
  }
  for (const w of plan.watermarks) {
    const wa = name(appliedAttribute(w.agentId));
    sets.push(`${wa} = ${value(w.maxSeq)}`);
    conditions.push(`(attribute_not_exists(${wa}) OR ${wa} < ${value(w.minSeq)})`);
  }

  const adds = [
    `${name('pktsIn')} ${value(plan.pktsIn)}`,
    `${name('bytesIn')} ${value(plan.bytesIn)}`,
    `${name('pktsOut')} ${value(plan.pktsOut)}`,
    `${name('bytesOut')} ${value(plan.bytesOut)}`,
    `${name('hosts')} ${value(new Set(plan.hosts))}`,
    `${name('sources')} ${value(new Set(plan.sources))}`,
  ];
  return {
    UpdateExpression: `SET ${sets.join(', ')} ADD ${adds.join(', ')}`,
    ConditionExpression: conditions.join(' AND '),
    ExpressionAttributeNames: names,
    ExpressionAttributeValues: values,
  };
}
