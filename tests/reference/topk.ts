/**
 * Reference top-k over a logits vector: a plain sort.
 *
 * @module
 */

/**
 * The k largest logits with their indices, descending by value; equal values
 * are ordered by lower index first. k = 1 is argmax.
 *
 * @param logits [V]
 * @returns k entries (fewer when V < k)
 *
 * @example
 * ```ts
 * import { topkRef } from "./topk.ts";
 * console.log(topkRef([1, 3, 3, 2], 2)); // [{ value: 3, index: 1 }, { value: 3, index: 2 }]
 * ```
 */
export function topkRef(
  logits: ArrayLike<number>,
  k: number,
): { value: number; index: number }[] {
  const all = Array.from(logits, (value, index) => ({ value, index }));
  all.sort((a, b) => b.value - a.value || a.index - b.index);
  return all.slice(0, k);
}
