/**
 * Seeded, stateless hashing. Tie-breaking ranks derive from (seed, node id),
 * not from a node's position, so the same node keeps its rank in every
 * snapshot built with the same seed: a batch and a sequence of single
 * placements break ties identically.
 */

/** FNV-1a over the UTF-16 code units of `text`. */
export function hashString(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** murmur3's 32-bit finaliser: spreads every input bit over the output. */
export function mix32(value: number): number {
  let h = value >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A 32-bit seed from a number or a string. */
export function normaliseSeed(seed: number | string): number {
  return typeof seed === "string" ? hashString(seed) : mix32(Math.trunc(seed) ^ 0x9e3779b9);
}

/** The tie-breaking rank of a node: a seeded shuffle, stable across snapshots. */
export function nodeRank(seed: number, nodeId: string): number {
  return mix32(hashString(nodeId) ^ seed);
}

/** mulberry32: a tiny deterministic generator of floats in [0, 1), for test clusters. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
