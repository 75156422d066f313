/**
 * Speculative decoding (lib/engine/speculative.ts). The target is a seeded
 * model whose layers after the first add nothing to the residual stream
 * (zero o_proj and down_proj), the draft is that first layer alone (the same
 * seed): the draft predicts the target, nearly every proposal is accepted,
 * the target runs at most half the passes of plain decoding, and the greedy
 * ids equal plain decoding's and the float64 reference's. A draft that
 * disagrees (another seed) and prompt lookup (`"ngram"`) keep the ids too.
 * The rejection rule turns proposals drawn from q into tokens distributed as
 * p (Monte Carlo against p itself).
 */
import assert from "node:assert/strict";
import { gpuTest } from "../_gpu.ts";
import { AutoModel } from "../../lib/engine/auto_model.ts";
import { verify } from "../../lib/engine/speculative.ts";
import { Sampler } from "../../lib/engine/sampler.ts";
import { loadReferenceModel, referenceGreedy } from "../reference/forward.ts";
import { tinyShards, VARIANTS } from "./_models.ts";

const NEW = 16;
const base = { ...VARIANTS[0], kvHeads: 4, seed: 77, vocab: 320 }; // 1280-byte logits rows: top-k binds them in place
const target = { ...base, layers: 4, zeroFrom: 1 };
const PROMPT = [1, 72, 101, 108, 108, 111];

gpuTest(
  "speculative: a draft that predicts the target: nearly all accepted, half the passes or fewer, the same greedy ids",
  async (g) => {
    const t = await tinyShards("spec-target", target);
    const d = await tinyShards("spec-draft", { ...base, layers: 1 });
    const other = await tinyShards("spec-other", {
      ...base,
      layers: 1,
      seed: 5,
    });
    const ref = await loadReferenceModel(t.hf);
    const want = referenceGreedy(ref.weights, ref.config, PROMPT, NEW);
    const open = (draft?: string, gpuMemory: number | string = "1GB") =>
      AutoModel.fromPretrained(t.shards, {
        gpu: g,
        gpuMemory,
        maxSeqLen: 64,
        draft,
        draftTokens: 4,
      });
    const plain = await open();
    const ids = await plain.generate(PROMPT, {
      maxNewTokens: NEW,
      temperature: 0,
    });
    const plainPasses = plain.lastStats!.forward.passes;
    const p = plain.plan;
    await plain.dispose();
    assert.deepEqual(ids, want.slice(0, ids.length));
    // streamed: essentials + one layer slot (+ the draft, resident)
    const layer = p.residentBytes / p.resident.length;
    const budget = 2 * (p.kvBytes + p.headBytes + p.activationBytes) +
      2 * layer + 65536;
    const spec = await open(d.shards, budget);
    try {
      assert.ok(spec.plan.streamed.length > 0, "the target streams");
      const got = await spec.generate(PROMPT, {
        maxNewTokens: NEW,
        temperature: 0,
      });
      assert.deepEqual(got, ids);
      const s = spec.lastStats!;
      assert.ok(s.draftProposed! > 0);
      assert.ok(
        s.draftAccepted! >= 0.9 * s.draftProposed!,
        `${s.draftAccepted} of ${s.draftProposed} accepted`,
      );
      assert.ok(
        2 * s.forward.passes <= plainPasses,
        `target passes ${s.forward.passes} vs plain ${plainPasses}`,
      );
      assert.ok(s.peakGpuBytes <= budget);
      // sampled: tokens come, proposals are mostly kept (p ≈ q)
      const sampled = await spec.generate(PROMPT, {
        maxNewTokens: NEW,
        temperature: 0.8,
        seed: 3,
      });
      assert.ok(sampled.length > 0);
      assert.ok(spec.lastStats!.draftAccepted! > 0);
    } finally {
      await spec.dispose();
    }
    for (const draft of [other.shards, "ngram"]) {
      const m = await open(draft);
      try {
        assert.deepEqual(
          await m.generate(PROMPT, { maxNewTokens: NEW, temperature: 0 }),
          ids,
          draft,
        );
        const s = m.lastStats!;
        assert.ok(s.draftAccepted! <= s.draftProposed!);
      } finally {
        await m.dispose();
      }
    }
  },
);

Deno.test("speculative: the rejection rule gives tokens distributed as p", () => {
  const p = { ids: [0, 1, 2, 3], probs: [0.5, 0.3, 0.15, 0.05] };
  const q = { ids: [3, 1, 0], probs: [0.6, 0.3, 0.1] };
  const s = new Sampler({ temperature: 1, seed: 11 });
  const draws = new Sampler({ temperature: 1, seed: 12 });
  const N = 40000;
  const count = [0, 0, 0, 0];
  let accepted = 0;
  for (let n = 0; n < N; n++) {
    const d = draws.draw(q);
    const v = verify(s, p, q, d);
    if (v.accepted) accepted++;
    count[v.id]++;
  }
  for (let i = 0; i < 4; i++) {
    const f = count[i] / N, sd = Math.sqrt(p.probs[i] * (1 - p.probs[i]) / N);
    assert.ok(
      Math.abs(f - p.probs[i]) < 5 * sd,
      `id ${i}: ${f} vs ${p.probs[i]}`,
    );
  }
  // acceptance = Σ min(p, q) = 0.1 + 0.3 + 0.05
  assert.ok(Math.abs(accepted / N - 0.45) < 0.02, `${accepted / N}`);
});
