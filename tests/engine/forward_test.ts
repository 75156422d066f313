/**
 * The engine against the float64 reference (tests/reference/forward.ts): for
 * every tiny-model variant, first-step logits within 1e-3 (absolute; f32
 * accumulation over ≤ 128-long dot products gives ~1e-5) and the same greedy
 * ids; all-resident vs streamed with a one-layer budget identical with
 * peak_gpu_bytes under the budget; prefill vs token-by-token decode.
 */
import assert from "node:assert/strict";
import { gpu, gpuTest } from "../_gpu.ts";
import { AutoModel } from "../../lib/engine/auto_model.ts";
import {
  loadReferenceModel,
  referenceForward,
  referenceGreedy,
} from "../reference/forward.ts";
import { PROMPT, tinyShards, VARIANTS } from "./_models.ts";

const NEW = 10;
const LOGIT_TOL = 1e-3;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Engine ids must equal the reference's, except that the engine stops after an EOS. */
function assertSameIds(
  got: number[],
  want: number[],
  eos: number[],
  what: string,
) {
  const n = got.length;
  assert.deepEqual(got, want.slice(0, n), what);
  if (n < want.length) {
    assert.ok(eos.includes(got[n - 1]), `${what}: stopped early without EOS`);
  }
}

for (const v of VARIANTS) {
  gpuTest(
    `engine: ${v.name}: logits and greedy ids equal the float64 reference`,
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
        assertSameIds(
          ids,
          referenceGreedy(ref.weights, ref.config, PROMPT, NEW),
          ref.config.eosTokenIds,
          v.name,
        );
      } finally {
        await model.dispose();
      }
    },
  );
}

for (const v0 of [VARIANTS[0], VARIANTS.find((x) => x.arch === "qwen3")!]) {
  const v = { ...v0, layers: 6, name: `${v0.name}-6l` };
  gpuTest(
    `engine: ${v.name}: streamed (one-layer budget, 2 layers resident + ring) = all resident`,
    async (g) => {
      const { shards } = await tinyShards(v.name, v);
      const all = await AutoModel.fromPretrained(shards, {
        gpu: g,
        gpuMemory: "1GB",
        maxSeqLen: 64,
      });
      const p = all.plan;
      const want = await all.generate(PROMPT, {
        maxNewTokens: NEW,
        temperature: 0,
      });
      const wantLogits = await all.logits(PROMPT);
      await all.dispose();
      const layer = p.residentBytes / p.resident.length;
      const essentials = p.kvBytes + p.headBytes + p.activationBytes;
      // one layer fits: everything streams, in sub-layer units through 3
      // slots with prefetch, whole through one slot without;
      // five layers fit: 2 resident + 3 slots with prefetch, 4 resident + 1 slot without
      const cases: [number, boolean, number, number, string][] = [
        [essentials + layer + 1024, true, 0, 3, "matrices"],
        [essentials + layer + 1024, false, 0, 1, "layer"],
        [essentials + 5 * layer, true, 2, 3, "layer"],
        [essentials + 5 * layer, false, 4, 1, "layer"],
      ];
      for (const [budget, prefetch, resident, slots, unit] of cases) {
        {
          const m = await AutoModel.fromPretrained(shards, {
            gpu: g,
            gpuMemory: budget,
            maxSeqLen: 64,
            prefetch,
          });
          try {
            assert.equal(m.plan.resident.length, resident, "resident layers");
            assert.equal(m.plan.slots, slots, "slots");
            assert.equal(m.plan.unit, unit, "what streams");
            const ids = await m.generate(PROMPT, {
              maxNewTokens: NEW,
              temperature: 0,
            });
            assert.deepEqual(
              ids,
              want,
              `budget ${budget} prefetch ${prefetch}`,
            );
            assert.ok(m.lastStats!.peakGpuBytes <= budget, "peak under budget");
            assert.ok(m.lastStats!.forward.bytesStreamed > 0);
            // prefetch keeps units in flight while others compute; serial: none
            const inFlight = m.lastStats!.forward.unitsInFlight;
            if (prefetch) assert.ok(inFlight >= 2, `in flight ${inFlight}`);
            else assert.equal(inFlight, 0);
            assert.equal(maxAbsDiff(await m.logits(PROMPT), wantLogits), 0);
            // a second generate reuses the ring across calls
            assert.deepEqual(
              await m.generate(PROMPT, { maxNewTokens: 4, temperature: 0 }),
              want.slice(0, 4),
            );
          } finally {
            await m.dispose();
          }
        }
      }
    },
  );
}

gpuTest(
  "engine: prefill of T tokens then decode = one token per pass",
  async (g) => {
    const v = VARIANTS.find((x) => x.arch === "qwen2")!;
    const { hf, shards } = await tinyShards(v.name, v);
    const whole = await AutoModel.fromPretrained(shards, {
      gpu: g,
      gpuMemory: "1GB",
      maxSeqLen: 64,
    });
    const one = await AutoModel.fromPretrained(shards, {
      gpu: g,
      gpuMemory: "1GB",
      maxSeqLen: 64,
      prefillChunk: 1,
    });
    const chunk4 = await AutoModel.fromPretrained(shards, {
      gpu: g,
      gpuMemory: "1GB",
      maxSeqLen: 64,
      prefillChunk: 4,
    });
    try {
      const a = await whole.logits(PROMPT),
        b = await one.logits(PROMPT),
        c = await chunk4.logits(PROMPT);
      assert.ok(maxAbsDiff(a, b) < 1e-4, `whole vs one: ${maxAbsDiff(a, b)}`);
      assert.ok(
        maxAbsDiff(a, c) < 1e-4,
        `whole vs chunks of 4: ${maxAbsDiff(a, c)}`,
      );
      // a 40-token prompt: one pass of T = 40 (the tiled matmul path, T > 16)
      // and chunks of 4, both against the float64 reference
      const long = Array.from(
        { length: 40 },
        (_, i) => (i * 37 + 11) % 250 + 3,
      );
      const ref = await loadReferenceModel(hf);
      const want = referenceForward(ref.weights, ref.config, long).at(-1)!;
      const l40 = await whole.logits(long), l4 = await chunk4.logits(long);
      assert.ok(
        maxAbsDiff(l40, want) < LOGIT_TOL,
        `T=40: ${maxAbsDiff(l40, want)}`,
      );
      assert.ok(
        maxAbsDiff(l4, want) < LOGIT_TOL,
        `chunks of 4: ${maxAbsDiff(l4, want)}`,
      );
      const ids = await whole.generate(PROMPT, {
        maxNewTokens: NEW,
        temperature: 0,
      });
      assert.deepEqual(
        await one.generate(PROMPT, { maxNewTokens: NEW, temperature: 0 }),
        ids,
      );
      assert.deepEqual(
        await chunk4.generate(PROMPT, { maxNewTokens: NEW, temperature: 0 }),
        ids,
      );
    } finally {
      await whole.dispose();
      await one.dispose();
      await chunk4.dispose();
    }
  },
);

gpuTest(
  "engine: seeded sampling is reproducible; stream yields what generate returns",
  async (g) => {
    const v = VARIANTS[0];
    const { shards } = await tinyShards(v.name, v);
    const m = await AutoModel.fromPretrained(shards, {
      gpu: g,
      gpuMemory: "1GB",
      maxSeqLen: 64,
    });
    try {
      const o = { maxNewTokens: 12, temperature: 1.5, topP: 0.95, seed: 7 };
      const a = await m.generate(PROMPT, o);
      const b: number[] = [];
      for await (const id of m.stream(PROMPT, o)) b.push(id);
      assert.deepEqual(a, b);
      const c = await m.generate(PROMPT, { ...o, seed: 8 });
      assert.equal(c.length > 0, true);
    } finally {
      await m.dispose();
    }
  },
);

if (!gpu) console.log("engine tests skipped: no WebGPU adapter");

gpuTest(
  "engine: a head and layers larger than maxBufferSize span several buffers; a matrix beyond one buffer is a clear error",
  async (g) => {
    const v = { ...VARIANTS[0], vocab: 2000, name: "llama-f32-vocab2000" };
    const { hf, shards } = await tinyShards(v.name, v);
    const ref = await loadReferenceModel(hf);
    const want = referenceForward(ref.weights, ref.config, PROMPT).at(-1)!;
    // lm_head [2000, 64] f32 = 500 KiB: parts of ≤ 64 KiB in buffers of ≤ 200 KiB
    const small = {
      ...g,
      limits: {
        ...g.limits,
        maxStorageBufferBindingSize: 64 * 1024,
        maxBufferSize: 200 * 1024,
      },
    };
    const m = await AutoModel.fromPretrained(shards, {
      gpu: small,
      gpuMemory: "1GB",
      maxSeqLen: 64,
    });
    try {
      assert.ok(maxAbsDiff(await m.logits(PROMPT), want) < LOGIT_TOL);
    } finally {
      await m.dispose();
    }
    // decoder layers of ~200 KiB in buffers of ≤ 64 KiB: resident in
    // several buffers, or streamed in sub-layer units
    const tiny = {
      ...g,
      limits: {
        ...g.limits,
        maxStorageBufferBindingSize: 32 * 1024,
        maxBufferSize: 64 * 1024,
      },
    };
    for (const gpuMemory of ["1GB", 3 * 2 ** 20]) {
      const t = await AutoModel.fromPretrained(shards, {
        gpu: tiny,
        gpuMemory,
        maxSeqLen: 64,
      });
      try {
        assert.ok(t.plan.resident.every((i) => i >= 0));
        assert.ok(maxAbsDiff(await t.logits(PROMPT), want) < LOGIT_TOL);
      } finally {
        await t.dispose();
      }
    }
    const tinier = {
      ...g,
      limits: {
        ...g.limits,
        maxStorageBufferBindingSize: 4 * 1024,
        maxBufferSize: 8 * 1024,
      },
    };
    await assert.rejects(
      () =>
        AutoModel.fromPretrained(shards, {
          gpu: tinier,
          gpuMemory: "1GB",
          maxSeqLen: 64,
        }),
      /decoder layer 0 needs \d+ bytes, more than one GPU buffer may hold .*cannot stream in parts/,
    );
  },
);

gpuTest("engine: abort signal and stop strings end generation", async (g) => {
  const v = VARIANTS[0];
  const { shards } = await tinyShards(v.name, v);
  const m = await AutoModel.fromPretrained(shards, {
    gpu: g,
    gpuMemory: "1GB",
    maxSeqLen: 64,
  });
  try {
    const ac = new AbortController();
    const got: number[] = [];
    for await (
      const id of m.stream(PROMPT, {
        maxNewTokens: 20,
        temperature: 0,
        signal: ac.signal,
      })
    ) {
      got.push(id);
      if (got.length === 3) ac.abort();
    }
    assert.equal(got.length, 3);
    assert.equal(m.lastStats!.stopReason, "abort");
    // a stop string taken from the greedy text itself
    const all = await m.generate(PROMPT, { maxNewTokens: 12, temperature: 0 });
    const tok = m.tokenizer!;
    const text = tok.decode(all, { skipSpecialTokens: true });
    const stop = tok.decode(all.slice(4, 6), { skipSpecialTokens: true });
    assert.ok(stop.length > 0 && text.includes(stop), "a usable stop string");
    {
      const ids = await m.generate(PROMPT, {
        maxNewTokens: 12,
        temperature: 0,
        stop: [stop],
      });
      assert.ok(ids.length < all.length, "stopped early");
      assert.deepEqual(ids, all.slice(0, ids.length));
      assert.equal(m.lastStats!.stopReason, "stop");
    }
  } finally {
    await m.dispose();
  }
});
