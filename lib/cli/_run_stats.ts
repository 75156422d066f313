/**
 * The `stats` object of `run --json`, shared by a single prompt and a
 * prompts file.
 *
 * @module
 */
import type { AutoModel } from "../engine/auto_model.ts";
import { moeJsonStats } from "../engine/moe_stats.ts";

/**
 * The last generation's stats in `run --json`'s names (snake_case), with the
 * MoE, speculative-decoding and streaming-unit fields where they apply.
 *
 * @example
 * ```ts ignore
 * const stats = runJsonStats(model, (performance.now() - wall0) / 1000);
 * ```
 */
export function runJsonStats(
  model: AutoModel,
  wallS: number,
): Record<string, unknown> {
  const s = model.lastStats!;
  return {
    prefill_s: s.prefillS,
    decode_s: s.decodeS,
    tokens_per_s: s.tokensPerS,
    bytes_streamed_per_token: s.bytesStreamedPerToken,
    read_s: s.forward.readS,
    upload_s: s.forward.uploadS,
    compute_s: s.forward.computeS,
    wall_s: wallS,
    resident_layers: model.plan.resident.length,
    streamed_layers: model.plan.streamed.length,
    peak_gpu_bytes: s.peakGpuBytes,
    ...(s.forward.experts ? moeJsonStats(s.forward.experts) : {}),
    ...(s.draftProposed === undefined ? {} : {
      draft_proposed: s.draftProposed,
      draft_accepted: s.draftAccepted,
    }),
    stream_units_in_flight: s.forward.unitsInFlight,
  };
}
