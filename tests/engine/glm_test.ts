/**
 * The GLM family end to end: tiny checkpoints of each layout (lib/testing/
 * tiny_glm.ts: glm, glm4 with and without bias, chatglm as ChatGLM2,
 * ChatGLM3-32k with rope_ratio 50 and GLM-4-9B-chat with rope_ratio 500 in
 * sharded BF16) split to shards, then run by the engine: logits within 1e-3
 * of the float64 reference and greedy ids identical, all resident and
 * streamed through one layer slot. The reference runs on the source
 * checkpoint, so the split (fused names kept, ChatGLM's fused bias written as
 * slices, inv_freq dropped) is checked too.
 *
 * Semantics pinned here (each would change the greedy ids or logits):
 * interleaved pair rotation on the first half of each head (the reference's,
 * see reference_glm_test.ts for pair vs rotate-half), rope base 10000 ·
 * rope_ratio, fused [q; k; v] / [gate; up] block order, KV group h / (H/KV),
 * eps per family, glm4's post-block norms. And chatglm.cpp's final-norm
 * hidden states (../shared/models/glm-chatglmcpp) reproduced by the engine
 * within 1e-5 over three KV-cached steps: the vectors re-packed with an
 * identity output_layer, so the engine's logits are its final-norm hidden
 * state (no engine hook needed).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { gpuTest } from "../_gpu.ts";
import { AutoModel } from "../../lib/engine/auto_model.ts";
import { Forward } from "../../lib/engine/forward.ts";
import { Kernels } from "../../lib/gpu/kernels.ts";
import { ShardDir } from "../../lib/format/shards.ts";
import {
  SafetensorsFile,
  SafetensorsWriter,
} from "../../lib/format/safetensors.ts";
import { makeTinyGlm, tinyGlmVariants } from "../../lib/testing/tiny_glm.ts";
import { openSource } from "../../lib/split/open_source.ts";
import { splitModel } from "../../lib/split/split.ts";
import {
  loadReferenceModel,
  referenceForward,
  referenceGreedy,
} from "../reference/forward.ts";
import { PROMPT, tempRoot } from "./_models.ts";
import { HAVE, loadChatglmCpp, SHARED } from "./_chatglmcpp.ts";

const NEW = 10;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function split(src: string, out: string): Promise<void> {
  const s = await openSource(src);
  try {
    await splitModel(s, { out, quantize: "none" });
  } finally {
    s.close();
  }
}

for (const v of tinyGlmVariants()) {
  gpuTest(
    `engine: ${v.name}: logits and greedy ids = the float64 reference, resident and streamed`,
    async (g) => {
      const root = await tempRoot();
      const hf = join(root, v.name), shards = join(root, `${v.name}-shards`);
      await makeTinyGlm(hf, v);
      await split(hf, shards);
      const ref = await loadReferenceModel(hf);
      // the split wrote the same model (fused names, bias slices)
      const fromShards = await loadReferenceModel(shards);
      assert.deepEqual(fromShards.config, ref.config);
      const want = referenceForward(ref.weights, ref.config, PROMPT).at(-1)!;
      assert.equal(
        maxAbsDiff(
          referenceForward(fromShards.weights, ref.config, PROMPT).at(-1)!,
          want,
        ),
        0,
      );
      const wantIds = referenceGreedy(ref.weights, ref.config, PROMPT, NEW);
      const eos = ref.config.eosTokenIds;
      const check = (ids: number[], what: string) => {
        assert.deepEqual(ids, wantIds.slice(0, ids.length), what);
        if (ids.length < NEW) {
          assert.ok(eos.includes(ids.at(-1)!), `${what}: stopped without EOS`);
        }
      };
      let budget = 0;
      for (const streamed of [false, true]) {
        const m = await AutoModel.fromPretrained(shards, {
          gpu: g,
          gpuMemory: streamed ? budget : "1GB",
          maxSeqLen: 64,
        });
        try {
          const p = m.plan;
          assert.equal(p.streamed.length > 0, streamed, "streamed");
          // glm/glm4 repos ship tokenizer.json: text works as for llama;
          // chatglm's tokenizer.model is covered by convert_glm_test.ts
          const glmHf = v.layout === "glm" || v.layout === "glm4";
          assert.equal(m.tokenizer !== null, glmHf, "tokenizer");
          if (glmHf) {
            const ids = m.tokenizer!.encode("Hello", {
              addSpecialTokens: false,
            });
            assert.equal(m.tokenizer!.decode(ids), "Hello");
          }
          budget = p.kvBytes + p.headBytes + p.activationBytes +
            p.residentBytes / p.resident.length + 1024;
          const err = maxAbsDiff(await m.logits(PROMPT), want);
          assert.ok(
            err < 1e-3,
            `streamed ${streamed}: max |logit error| ${err}`,
          );
          check(
            await m.generate(PROMPT, { maxNewTokens: NEW, temperature: 0 }),
            `${v.name} streamed ${streamed}`,
          );
        } finally {
          await m.dispose();
        }
      }
    },
  );
}

gpuTest(
  "engine: chatglm3 q8 and q4 shards (fused [q; k; v] and [gate; up] quantized) = the float64 reference on the dequantized shards",
  async (g) => {
    const v = tinyGlmVariants().find((x) => x.layout === "chatglm3")!;
    const root = await tempRoot();
    const hf = join(root, `${v.name}-q`);
    await makeTinyGlm(hf, v);
    for (const quantize of ["q8", "q4"] as const) {
      const shards = join(root, `${v.name}-${quantize}`);
      const s = await openSource(hf);
      try {
        await splitModel(s, { out: shards, quantize });
      } finally {
        s.close();
      }
      // the fused matrices are stored packed (I8 / U8 with their scales)
      const layer0 = await SafetensorsFile.open(
        join(shards, "layers", "000.safetensors"),
      );
      try {
        for (
          const n of [
            "self_attention.query_key_value.weight",
            "mlp.dense_h_to_4h.weight",
          ]
        ) {
          const name = `transformer.encoder.layers.0.${n}`;
          assert.equal(
            layer0.tensors.get(name)?.dtype,
            quantize === "q8" ? "I8" : "U8",
            `${quantize}: ${name}`,
          );
          assert.ok(layer0.tensors.has(`${name}.scales`), name);
        }
      } finally {
        layer0.close();
      }
      const ref = await loadReferenceModel(shards); // dequantized by the reference's own decoder
      const m = await AutoModel.fromPretrained(shards, {
        gpu: g,
        gpuMemory: "1GB",
        maxSeqLen: 64,
      });
      try {
        const want = referenceForward(ref.weights, ref.config, PROMPT).at(-1)!;
        const err = maxAbsDiff(await m.logits(PROMPT), want);
        assert.ok(err < 1e-3, `${quantize}: max |logit error| ${err}`);
        const ids = await m.generate(PROMPT, {
          maxNewTokens: NEW,
          temperature: 0,
        });
        assert.deepEqual(
          ids,
          referenceGreedy(ref.weights, ref.config, PROMPT, NEW).slice(
            0,
            ids.length,
          ),
          quantize,
        );
      } finally {
        await m.dispose();
      }
    }
  },
);

/**
 * chatglm.cpp's vectors as a checkpoint the engine can run: the embedding
 * padded to D rows and output_layer = the identity [D, D], so that logits =
 * the final-norm hidden state.
 */
async function identityHead(variant: "glm2" | "glm4", dir: string) {
  const { hf, golden, weights, shapes } = await loadChatglmCpp(variant);
  const D = hf.hidden_size as number;
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, w] of weights) {
    tensors.set(name, { shape: shapes.get(name)!, data: Float32Array.from(w) });
  }
  const E = "transformer.embedding.word_embeddings.weight";
  const emb = new Float32Array(D * D);
  emb.set(tensors.get(E)!.data);
  tensors.set(E, { shape: [D, D], data: emb });
  const eye = new Float32Array(D * D);
  for (let i = 0; i < D; i++) eye[i * D + i] = 1;
  tensors.set("transformer.output_layer.weight", { shape: [D, D], data: eye });
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    join(dir, "config.json"),
    JSON.stringify({ ...hf, padded_vocab_size: D }),
  );
  const w = await SafetensorsWriter.create(
    join(dir, "model.safetensors"),
    [...tensors].map(([name, t]) => ({ name, dtype: "F32", shape: t.shape })),
  );
  for (const [name, t] of tensors) {
    await w.write(name, new Uint8Array(t.data.buffer));
  }
  await w.close();
  return golden;
}

for (const variant of ["glm2", "glm4"] as const) {
  gpuTest(
    `engine: chatglm.cpp ${variant} final-norm hidden states within 1e-5 over three KV-cached steps`,
    async (g) => {
      if (!HAVE) return console.warn(`skipped: no ${SHARED}`);
      const root = await tempRoot();
      const hf = join(root, `chatglmcpp-${variant}`);
      const shards = `${hf}-shards`;
      const golden = await identityHead(variant, hf);
      await split(hf, shards);
      const sd = await ShardDir.open(shards);
      const kernels = await Kernels.create(g);
      let err = 0;
      // each row of step 1 as the last token of a prefill, then the three
      // steps on one KV cache
      for (let n = 1; n <= 3; n++) {
        const fwd = await Forward.create({
          gpu: g,
          kernels,
          shards: sd,
          budget: 1e9,
          maxSeqLen: 16,
        });
        try {
          const steps = n < 3 ? ["step1"] : ["step1", "step2", "step3"];
          for (const step of steps) {
            const s = golden[step];
            const ids = step === "step1"
              ? s.input_ids.slice(0, n)
              : s.input_ids;
            const { logits } = await fwd.forward(ids, { logits: true });
            const want = s.last_hidden_state[ids.length - 1];
            err = Math.max(err, maxAbsDiff(logits!, want));
          }
        } finally {
          await fwd.dispose();
        }
      }
      console.log(
        `${variant}: engine max |hidden error| ${err.toExponential(2)}`,
      );
      assert.ok(err < 1e-5, `max error ${err}`);
    },
  );
}
