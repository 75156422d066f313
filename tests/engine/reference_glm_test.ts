// The float64 reference's GLM semantics (tests/reference/forward.ts), each
// pinned by a case that fails when the semantic is wrong:
// - fused qkv block order with bias, KV group mapping, rotation of only the
//   first half of each head, gate-then-up, eps: chatglm.cpp's hidden states
//   (../shared/models/glm-chatglmcpp, computed by THUDM's modeling_chatglm.py)
//   reproduced within 1e-5 over three KV-cached steps, and missed when any
//   one of them is changed;
// - pair rotation (2j, 2j+1) vs rotate-half and the rope base, which those
//   vectors cannot see (one frequency of 1.0): equal to an independent
//   complex-number rotation, and distinguishable from rotate-half.
import assert from "node:assert/strict";
import { type ModelConfig, normalizeConfig } from "../../lib/model/config.ts";
import { type Golden, HAVE, loadChatglmCpp } from "./_chatglmcpp.ts";
import {
  ReferenceModel,
  type RefTensor,
  ropeHead,
  ropeHeadInterleaved,
} from "../reference/forward.ts";

/** Max |error| of the reference's final-norm hidden states over the three steps. */
function goldenError(
  cfg: ModelConfig,
  weights: Map<string, RefTensor>,
  golden: Golden,
): number {
  const m = new ReferenceModel(weights, cfg);
  let err = 0;
  for (const step of ["step1", "step2", "step3"]) {
    const g = golden[step];
    g.input_ids.forEach((id, t) => {
      m.step(id);
      const want = g.last_hidden_state[t];
      for (let i = 0; i < want.length; i++) {
        err = Math.max(err, Math.abs(m.hidden[i] - want[i]));
      }
    });
  }
  return err;
}

/** A copy of `w` [rows, cols] with its rows (cols = 1: elements) [a, a+n) and [b, b+n) exchanged. */
function swapRows(
  w: RefTensor,
  cols: number,
  a: number,
  b: number,
  n: number,
): Float64Array {
  const out = Float64Array.from(w);
  out.set(w.subarray(b * cols, (b + n) * cols), a * cols);
  out.set(w.subarray(a * cols, (a + n) * cols), b * cols);
  return out;
}

for (const variant of ["glm2", "glm4"] as const) {
  Deno.test({
    name:
      `reference: chatglm.cpp ${variant} hidden states within 1e-5; qkv order, KV groups, half rotation, gate/up, eps each matter`,
    ignore: !HAVE,
    fn: async () => {
      const { hf, golden, weights } = await loadChatglmCpp(variant);
      const cfg = normalizeConfig(hf, "config.json");
      const err = goldenError(cfg, weights, golden);
      console.log(`${variant}: max |hidden error| ${err.toExponential(2)}`);
      assert.ok(err < 1e-5, `max error ${err}`);

      // D 32, H 8, KV 2, hd 4: q rows 0..31, k 32..39, v 40..47; F 48
      const L = "transformer.encoder.layers.0.";
      const qkvW = L + "self_attention.query_key_value.weight";
      const qkvB = L + "self_attention.query_key_value.bias";
      const h4 = L + "mlp.dense_h_to_4h.weight";
      const dense = L + "self_attention.dense.weight";
      const w = (name: string, t: RefTensor) => new Map(weights).set(name, t);
      // query head h on KV group h % 2 instead of h / 4: the same as group
      // h / 4 with the query heads (q rows, dense columns) permuted
      const perm = [0, 2, 4, 6, 1, 3, 5, 7];
      const q = weights.get(qkvW)!, qb = weights.get(qkvB)!;
      const d = weights.get(dense)!;
      const pq = Float64Array.from(q), pqb = Float64Array.from(qb);
      const pd = Float64Array.from(d);
      perm.forEach((src, h) => {
        pq.set(q.subarray(src * 4 * 32, (src + 1) * 4 * 32), h * 4 * 32);
        pqb.set(qb.subarray(src * 4, src * 4 + 4), h * 4);
        for (let r = 0; r < 32; r++) {
          for (let i = 0; i < 4; i++) {
            pd[r * 32 + h * 4 + i] = d[r * 32 + src * 4 + i];
          }
        }
      });
      const mutants: [string, ModelConfig, Map<string, RefTensor>][] = [
        // k and v blocks exchanged (weight and bias)
        [
          "qkv block order",
          cfg,
          w(qkvW, swapRows(q, 32, 32, 40, 8)).set(
            qkvB,
            swapRows(qb, 1, 32, 40, 8),
          ),
        ],
        ["KV group mapping", cfg, w(qkvW, pq).set(qkvB, pqb).set(dense, pd)],
        [
          "gate/up order",
          cfg,
          w(h4, swapRows(weights.get(h4)!, 32, 0, 48, 48)),
        ],
        // the whole head rotated instead of its first half
        ["rotary fraction", { ...cfg, partialRotaryFactor: 1 }, weights],
        // the other family's eps
        [
          "eps",
          { ...cfg, rmsNormEps: variant === "glm2" ? 1.5625e-7 : 1e-5 },
          weights,
        ],
      ];
      for (const [what, c, ws] of mutants) {
        const e = goldenError(c, ws, golden);
        assert.ok(
          e > 1e-5,
          `${what}: a wrong model reproduces the vectors (${e})`,
        );
      }
    },
  });
}

Deno.test("reference: interleaved RoPE = complex rotation of (x[2j], x[2j+1]); not rotate-half; base from rope_ratio", () => {
  // one head of 8 dims, rotary 4 (fraction 0.5): pairs (0,1), (2,3); 4..7 untouched
  const x = Float64Array.from([0.3, -1.2, 0.7, 0.25, 1.5, -0.4, 0.9, 2.0]);
  const base = 10000 * 500; // GLM-4-9B-chat: rope_ratio 500
  const cfg = normalizeConfig({
    model_type: "chatglm",
    hidden_size: 16,
    num_layers: 1,
    num_attention_heads: 2,
    kv_channels: 8,
    ffn_hidden_size: 8,
    padded_vocab_size: 10,
    rope_ratio: 500,
  }, "config.json");
  assert.equal(cfg.ropeTheta, base);
  const invFreq = Float64Array.from([1, base ** (-2 / 4)]);
  const pos = 7;
  const a = x.slice();
  ropeHeadInterleaved(a, 0, pos, invFreq);
  for (let j = 0; j < 2; j++) {
    // (x0 + i·x1) · e^{i·pos·θ_j}
    const re = x[2 * j], im = x[2 * j + 1], t = pos * invFreq[j];
    assert.ok(
      Math.abs(a[2 * j] - (re * Math.cos(t) - im * Math.sin(t))) < 1e-15,
    );
    assert.ok(
      Math.abs(a[2 * j + 1] - (im * Math.cos(t) + re * Math.sin(t))) < 1e-15,
    );
  }
  assert.deepEqual(Array.from(a.subarray(4)), Array.from(x.subarray(4)));
  const b = x.slice();
  ropeHead(b, 0, pos, invFreq);
  assert.ok(Math.abs(a[1] - b[1]) > 0.1, "pairings differ");
});
