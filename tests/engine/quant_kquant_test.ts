/**
 * Shards split with `--quantize q4k|q5k|q6k` (GGUF K-quant blocks, our
 * encoder) against the f32 engine on the same tiny models: the engine on the
 * blocks equals the float64 reference run on the decoded weights within 1e-3
 * (the exactness of the kernels; rows here are shorter than a 256-element
 * block, so this runs matmul_generic with the snippets' weight_at; the fast
 * bodies run end to end in gguf_kquant_test.ts), and the first-step logits
 * stay within a stated share of the largest |logit| of f32's: q6k < 10 %,
 * q5k < 20 %, q4k < 30 %. These random models have nearly flat logits, so
 * small weight errors move them by a large share: quant_test.ts allows q8 3 %
 * and q4 30 %; the K-quants' RMS weight errors on Gaussian data are 3.4x
 * (q6k), 7x (q5k) and 14x (q4k) q8's (docs/format.md §6.3); measured here:
 * q6k 3.6–4.1 %, q5k 8.8–9.9 %, q4k 13.5–15.8 %.
 */
import assert from "node:assert/strict";
import { gpuTest } from "../_gpu.ts";
import { AutoModel } from "../../lib/engine/auto_model.ts";
import { loadReferenceModel, referenceForward } from "../reference/forward.ts";
import { PROMPT, tinyShards, VARIANTS } from "./_models.ts";

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

for (
  const v of [
    VARIANTS.find((x) => x.arch === "llama" && x.dtype === "F32")!,
    VARIANTS.find((x) => x.arch === "qwen3" && x.dtype === "F32")!,
  ]
) {
  gpuTest(
    `engine: ${v.name}: q6k, q5k and q4k shards equal the reference on their decoded weights and stay near f32`,
    async (g) => {
      const f32 = await tinyShards(v.name, v, "none");
      const base = await AutoModel.fromPretrained(f32.shards, {
        gpu: g,
        gpuMemory: "1GB",
        maxSeqLen: 64,
      });
      const want = await base.logits(PROMPT);
      await base.dispose();
      let scale = 0;
      for (const x of want) scale = Math.max(scale, Math.abs(x));
      for (
        const [q, tol] of [["q6k", 0.1], ["q5k", 0.2], ["q4k", 0.3]] as const
      ) {
        const { shards } = await tinyShards(v.name, v, q);
        const m = await AutoModel.fromPretrained(shards, {
          gpu: g,
          gpuMemory: "1GB",
          maxSeqLen: 64,
        });
        try {
          const got = await m.logits(PROMPT);
          const ref = await loadReferenceModel(shards);
          const exact = referenceForward(ref.weights, ref.config, PROMPT).at(
            -1,
          )!;
          const exactErr = maxAbsDiff(got, exact);
          const err = maxAbsDiff(got, want) / scale;
          console.log(
            `${v.name} ${q}: engine vs reference on decoded weights ${
              exactErr.toExponential(2)
            }; vs f32 ${(err * 100).toFixed(2)} % of max |logit|`,
          );
          assert.ok(exactErr < 1e-3, `${q}: engine vs reference ${exactErr}`);
          assert.ok(err < tol, `${q}: relative logit error ${err} ≥ ${tol}`);
        } finally {
          await m.dispose();
        }
      }
    },
  );
}
