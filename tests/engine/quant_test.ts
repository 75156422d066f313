/**
 * q8 and q4 shards against the f32 engine on the same weights: first-step
 * logits within a stated error, and agreement on greedy tokens. The bounds
 * follow from the formats: q8 keeps |w - ŵ| ≤ d/2 = max|w_block|/254 per
 * weight (~0.4 % of the block max), q4 ≤ d/2 = max|w_block|/16 (~6 %); on
 * these tiny random models (nearly flat logits) that gives logit errors of
 * ~1 % (q8) and ~15-22 % (q4) of the largest |logit|. We assert < 3 % (q8)
 * and < 30 % (q4). Agreement is measured teacher-forced along f32's greedy
 * continuation (free-running sequences diverge after one flip): q8's argmax
 * equals f32's on ≥ 7/8 steps, q4's on ≥ 4/8 with f32's token in q4's top-5
 * on ≥ 7/8. The engine on q8/q4 must also equal the float64 reference run on
 * the dequantized weights within 1e-3 (the exactness check of the kernels).
 */
import assert from "node:assert/strict";
import { gpu, gpuTest } from "../_gpu.ts";
import { AutoModel } from "../../lib/engine/auto_model.ts";
import { loadReferenceModel, referenceForward } from "../reference/forward.ts";
import { PROMPT, tempRoot, tinyShards, VARIANTS } from "./_models.ts";
import { join } from "node:path";
import { openSource } from "../../lib/split/open_source.ts";
import { splitModel } from "../../lib/split/split.ts";

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}
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
    `engine: ${v.name}: q8 and q4 shards stay within the stated logit error of f32`,
    async (g) => {
      const f32 = await tinyShards(v.name, v, "none");
      const base = await AutoModel.fromPretrained(f32.shards, {
        gpu: g,
        gpuMemory: "1GB",
        maxSeqLen: 64,
      });
      const wantLogits = await base.logits(PROMPT);
      const wantIds = await base.generate(PROMPT, {
        maxNewTokens: 8,
        temperature: 0,
      });
      await base.dispose();
      const scale = maxAbs(wantLogits);
      for (
        const [q, tol, agree] of [["q8", 0.03, [7, 8]], ["q4", 0.3, [
          4,
          7,
        ]]] as const
      ) {
        const { shards } = await tinyShards(v.name, v, q);
        const m = await AutoModel.fromPretrained(shards, {
          gpu: g,
          gpuMemory: "1GB",
          maxSeqLen: 64,
        });
        try {
          const got = await m.logits(PROMPT);
          const err = maxAbsDiff(got, wantLogits) / scale;
          console.log(
            `${v.name} ${q}: max logit error ${
              (err * 100).toFixed(2)
            } % of max |logit|`,
          );
          assert.ok(err < tol, `${q}: relative logit error ${err} ≥ ${tol}`);
          // the engine on q8/q4 = the float64 reference on the dequantized weights
          const ref = await loadReferenceModel(shards);
          const exact = referenceForward(ref.weights, ref.config, PROMPT).at(
            -1,
          )!;
          assert.ok(
            maxAbsDiff(got, exact) < 1e-3,
            `${q}: engine vs reference on dequantized weights`,
          );
          // teacher-forced: along f32's greedy continuation, does q's argmax agree (top-1), or
          // is f32's token among q's 5 largest logits (top-5)?
          let top1 = 0, top5 = 0;
          for (let n = 0; n < wantIds.length; n++) {
            const l = await m.logits([...PROMPT, ...wantIds.slice(0, n)]);
            const order = [...l.keys()].sort((a, b) => l[b] - l[a] || a - b);
            if (order[0] === wantIds[n]) top1++;
            if (order.slice(0, 5).includes(wantIds[n])) top5++;
          }
          console.log(
            `${v.name} ${q}: f32 greedy token is ${q}'s argmax ${top1}/${wantIds.length}, in its top-5 ${top5}/${wantIds.length}`,
          );
          assert.ok(
            top1 >= agree[0] && top5 >= agree[1],
            `${q}: agreement ${top1}, ${top5} below ${agree}`,
          );
        } finally {
          await m.dispose();
        }
      }
    },
  );
}

if (!gpu) console.log("quant engine tests skipped: no WebGPU adapter");

gpuTest(
  "engine: q8 embedding (rows decoded on the CPU; the tied head reads it as a q8 matrix)",
  async (g) => {
    for (
      const v of [
        VARIANTS.find((x) => x.tied)!,
        VARIANTS.find((x) => !x.tied)!,
      ]
    ) {
      const { hf } = await tinyShards(v.name, v);
      const out = join(await tempRoot(), `${v.name}-q8emb`);
      const src = await openSource(hf);
      try {
        await splitModel(src, { out, quantize: "q8", quantizeEmbedding: true });
      } finally {
        src.close();
      }
      const m = await AutoModel.fromPretrained(out, {
        gpu: g,
        gpuMemory: "1GB",
        maxSeqLen: 64,
      });
      try {
        const ref = await loadReferenceModel(out);
        const want = referenceForward(ref.weights, ref.config, PROMPT).at(-1)!;
        const err = maxAbsDiff(await m.logits(PROMPT), want);
        assert.ok(
          err < 1e-3,
          `${v.name}: engine vs reference on the dequantized weights: ${err}`,
        );
      } finally {
        await m.dispose();
      }
    }
  },
);
