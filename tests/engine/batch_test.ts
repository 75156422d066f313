/**
 * Batched generation (lib/engine/batch.ts): every prompt of a batch, of
 * different lengths (longer than one pass's rows, so prompt chunks and
 * decode rows share passes), gives the same greedy ids as when it runs
 * alone, and those equal the float64 reference; with more prompts than
 * caches the waiting ones take freed caches; a streamed model (one-layer
 * budget) gives the same ids; seeded sampling per prompt is reproducible.
 */
import assert from "node:assert/strict";
import { gpuTest } from "../_gpu.ts";
import { AutoModel } from "../../lib/engine/auto_model.ts";
import type { BatchToken } from "../../lib/engine/batch.ts";
import { loadReferenceModel, referenceGreedy } from "../reference/forward.ts";
import { tinyShards, VARIANTS } from "./_models.ts";

const NEW = 6;
const v = { ...VARIANTS.find((x) => x.arch === "qwen3")!, layers: 4 };
const name = `${v.name}-4l-batch`;
const PROMPTS = [
  [1, 72, 101],
  [1, 84, 104, 101, 32, 99, 97, 116, 32, 115, 97, 116, 32, 111, 110],
  [1, 65],
  [1, 119, 111, 114, 108, 100, 33, 32, 72, 105],
  [1, 50, 51, 52, 53, 54, 55, 56, 57, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57],
];

gpuTest(
  "batch: each prompt of a batch gives its greedy ids alone and the reference's",
  async (g) => {
    const { hf, shards } = await tinyShards(name, v);
    const ref = await loadReferenceModel(hf);
    const m = await AutoModel.fromPretrained(shards, {
      gpu: g,
      gpuMemory: "1GB",
      maxSeqLen: 64,
      prefillChunk: 8,
      batchSize: 3,
    });
    try {
      const alone: number[][] = [];
      for (const p of PROMPTS) {
        alone.push(await m.generate(p, { maxNewTokens: NEW, temperature: 0 }));
      }
      for (const [i, p] of PROMPTS.entries()) {
        const want = referenceGreedy(ref.weights, ref.config, p, NEW);
        assert.deepEqual(alone[i], want.slice(0, alone[i].length), `ref ${i}`);
      }
      // 5 prompts, 3 caches: two wait for a free cache
      const got = await m.generate(PROMPTS, {
        maxNewTokens: NEW,
        temperature: 0,
      });
      assert.deepEqual(got, alone);
      const s = m.lastStats!;
      assert.equal(s.batch?.sequences, PROMPTS.length);
      assert.equal(s.newTokens, alone.flat().length);
      // per-prompt options: prompt 1 stops after 2 tokens
      const per = await m.generate(PROMPTS.slice(0, 2), [
        { maxNewTokens: NEW, temperature: 0 },
        { maxNewTokens: 2, temperature: 0 },
      ]);
      assert.deepEqual(per, [alone[0], alone[1].slice(0, 2)]);
      // streaming yields { index, id } in sampling order
      const seen: BatchToken[] = [];
      for await (
        const t of m.stream(PROMPTS.slice(0, 3), {
          maxNewTokens: 3,
          temperature: 0,
        })
      ) seen.push(t);
      for (let i = 0; i < 3; i++) {
        assert.deepEqual(
          seen.filter((t) => t.index === i).map((t) => t.id),
          alone[i].slice(0, 3),
        );
      }
      // a stop string ends its sequence where it ends it alone; the others go on
      const tok = m.tokenizer!;
      const full = tok.decode(alone[1]);
      const stop = tok.decode(alone[1].slice(0, 3)).slice(-2);
      assert.ok(stop.length > 0 && full.includes(stop));
      const stopped = await m.generate(PROMPTS[1], {
        maxNewTokens: NEW,
        temperature: 0,
        stop: [stop],
      });
      assert.ok(stopped.length < alone[1].length, "the stop string ends it");
      assert.deepEqual(
        await m.generate(PROMPTS.slice(0, 3), [
          { maxNewTokens: NEW, temperature: 0 },
          { maxNewTokens: NEW, temperature: 0, stop: [stop] },
          { maxNewTokens: NEW, temperature: 0 },
        ]),
        [alone[0], stopped, alone[2]],
      );
      assert.deepEqual(m.lastStats!.batch?.stopReasons[1], "stop");
      // an abort ends every sequence
      const ac = new AbortController();
      let n = 0;
      for await (
        const _ of m.stream(PROMPTS.slice(0, 3), {
          maxNewTokens: NEW,
          temperature: 0,
          signal: ac.signal,
        })
      ) {
        if (++n === 2) ac.abort();
      }
      assert.ok(n < 3 * NEW);
      assert.deepEqual(m.lastStats!.stopReason, "abort");
      // seeded sampling: per prompt, the same as alone with that seed
      const o = (seed: number) => ({
        maxNewTokens: NEW,
        temperature: 0.9,
        topK: 20,
        seed,
      });
      const sampled = await m.generate(PROMPTS.slice(0, 3), [o(1), o(2), o(3)]);
      for (let i = 0; i < 3; i++) {
        assert.deepEqual(sampled[i], await m.generate(PROMPTS[i], o(i + 1)));
      }
    } finally {
      await m.dispose();
    }
  },
);

// q and k rows of 256 bytes: every sequence's rows are bound in place (the
// qwen3 model above, with 128-byte k rows, goes through the scratch copies)
const mha = { ...VARIANTS[0], layers: 4, kvHeads: 4 };

gpuTest(
  "batch: streamed under a one-layer budget gives each prompt's ids alone; the plan counts every cache",
  async (g) => {
    const { shards } = await tinyShards(`${mha.name}-4l-mha`, mha);
    const open = (gpuMemory: number | string, batchSize: number) =>
      AutoModel.fromPretrained(shards, {
        gpu: g,
        gpuMemory,
        maxSeqLen: 64,
        prefillChunk: 8,
        batchSize,
      });
    const all = await open("1GB", 4);
    const want: number[][] = [];
    for (const p of PROMPTS.slice(0, 4)) {
      want.push(await all.generate(p, { maxNewTokens: NEW, temperature: 0 }));
    }
    assert.deepEqual(
      await all.generate(PROMPTS.slice(0, 4), {
        maxNewTokens: NEW,
        temperature: 0,
      }),
      want,
    );
    const p = all.plan;
    await all.dispose();
    const one = await open("1GB", 1);
    // four caches: four times the KV bytes of one
    assert.equal(p.kvBytes, 4 * one.plan.kvBytes);
    assert.ok(p.activationBytes > one.plan.activationBytes);
    await one.dispose();
    const layer = p.residentBytes / p.resident.length;
    const budget = p.kvBytes + p.headBytes + p.activationBytes + layer + 1024;
    const m = await open(budget, 4);
    try {
      assert.equal(m.plan.resident.length, 0);
      const got = await m.generate(PROMPTS.slice(0, 4), {
        maxNewTokens: NEW,
        temperature: 0,
      });
      assert.deepEqual(got, want);
      assert.ok(m.lastStats!.peakGpuBytes <= budget);
    } finally {
      await m.dispose();
    }
  },
);
