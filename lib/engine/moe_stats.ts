/**
 * What `run` reports about a mixture-of-experts model: the `--json` stats
 * fields and the per-layer `--profile` table of the expert cache.
 *
 * @module
 */
import type { MoeStats } from "./_moe_step.ts";

export type { MoeStats } from "./_moe_step.ts";

/**
 * The `run --json` fields of a mixture-of-experts model:
 * `experts_loaded_per_token` (experts read and uploaded per decoded token),
 * `expert_cache_hit_rate` (chosen experts already on the GPU, prefetched
 * ones included, over all chosen; 1 when every expert is resident) and the
 * router readbacks.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { moeJsonStats } from "./moe_stats.ts";
 * const s = { requested: 10, hits: 5, prefetchHits: 1, loaded: 4, bytesMoved: 400,
 *   readbacks: 4, readbackS: 0.04, loadWaitS: 0, decodeTokens: 2, decodeBytesPerToken: 100,
 *   decodeExpertsPerToken: 1.5, allResident: false, layers: [] };
 * assert.deepEqual(moeJsonStats(s), { experts_loaded_per_token: 1.5, expert_cache_hit_rate: 0.6,
 *   experts_resident: false, router_readbacks: 4, router_readback_s: 0.04 });
 * ```
 */
export function moeJsonStats(s: MoeStats): Record<string, number | boolean> {
  return {
    experts_loaded_per_token: s.decodeExpertsPerToken,
    expert_cache_hit_rate: s.requested
      ? (s.hits + s.prefetchHits) / s.requested
      : 1,
    experts_resident: s.allResident,
    router_readbacks: s.readbacks,
    router_readback_s: s.readbackS,
  };
}

/**
 * The per-layer expert table of `--profile`: experts chosen (summed over
 * passes; a pass counts the union over its tokens), loaded, their bytes and
 * the hit rate.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { expertProfileTable } from "./moe_stats.ts";
 * const t = expertProfileTable({ requested: 4, hits: 2, prefetchHits: 0, loaded: 2,
 *   bytesMoved: 2048, readbacks: 2, readbackS: 0.02, loadWaitS: 0.01, decodeTokens: 1,
 *   decodeBytesPerToken: 1024, decodeExpertsPerToken: 1, allResident: false,
 *   layers: [{ layer: 1, requested: 4, loaded: 2, bytes: 2048 }] });
 * assert.match(t, /^\s+1\s+4\s+2\s+2048\s+0\.50$/m);
 * ```
 */
export function expertProfileTable(s: MoeStats): string {
  if (s.allResident) {
    return "experts: all resident (routed on the GPU, no readback)";
  }
  const lines = ["layer  chosen  loaded      bytes  hit rate"];
  for (const r of s.layers) {
    const hit = r.requested ? 1 - r.loaded / r.requested : 1;
    lines.push(
      `${String(r.layer).padStart(5)}${String(r.requested).padStart(8)}${
        String(r.loaded).padStart(8)
      }${String(r.bytes).padStart(11)}${
        Math.max(0, hit).toFixed(2).padStart(10)
      }`,
    );
  }
  lines.push(
    `experts: ${s.loaded} loaded (${s.bytesMoved} bytes), ${s.hits} hits, ${s.prefetchHits} prefetched; ${s.readbacks} router readbacks, ${
      (s.readbackS * 1000).toFixed(1)
    } ms waiting; loads waited ${(s.loadWaitS * 1000).toFixed(1)} ms`,
  );
  return lines.join("\n");
}
