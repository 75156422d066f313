/**
 * A tiny Qwen3-MoE and a tiny Mixtral (GGUF `llama` with `expert_count`, q/k
 * rows permuted) as llama.cpp would write them (GGUF `qwen3moe`: experts
 * stacked in `ffn_{gate,up,down}_exps`, router `ffn_gate_inp`, dense blocks
 * without them), written by this test's own minimal GGUF writer from the
 * seeded Hugging Face checkpoint: split un-stacks every expert to exactly the
 * checkpoint's tensor, and the engine's greedy ids on it equal the float64
 * reference of the checkpoint.
 */
import assert from "node:assert/strict";
import { makeTinyModel } from "../../lib/testing/tiny_model.ts";
import { openSource } from "../../lib/split/open_source.ts";
import { splitModel } from "../../lib/split/split.ts";
import { loadReferenceModel, referenceGreedy } from "../reference/forward.ts";
import { gpuTest } from "../_gpu.ts";
import { AutoModel } from "../../lib/engine/auto_model.ts";

type Kv = [string, "u32" | "f32" | "str" | "bool", number | string | boolean];
interface GgufTensor {
  name: string;
  dims: number[]; // ne0 (row length) first
  data: Float32Array;
}

/** GGUF v3 with F32 tensors (type 0), 32-byte alignment. */
function writeGguf(kvs: Kv[], tensors: GgufTensor[]): Uint8Array {
  const out: number[] = [];
  const u8 = (v: number) => out.push(v & 255);
  const u32 = (v: number) => [0, 8, 16, 24].forEach((s) => u8(v >>> s));
  const u64 = (v: number) => (u32(v >>> 0), u32(Math.floor(v / 2 ** 32)));
  const str = (s: string) => {
    const b = new TextEncoder().encode(s);
    u64(b.length);
    b.forEach(u8);
  };
  const f32 = (v: number) =>
    new Uint8Array(new Float32Array([v]).buffer).forEach(u8);
  "GGUF".split("").forEach((c) => u8(c.charCodeAt(0)));
  u32(3);
  u64(tensors.length);
  u64(kvs.length);
  for (const [k, t, v] of kvs) {
    str(k);
    if (t === "u32") (u32(4), u32(v as number));
    else if (t === "f32") (u32(6), f32(v as number));
    else if (t === "bool") (u32(7), u8(v ? 1 : 0));
    else (u32(8), str(v as string));
  }
  let off = 0;
  for (const t of tensors) {
    str(t.name);
    u32(t.dims.length);
    t.dims.forEach(u64);
    u32(0);
    u64(off);
    off = Math.ceil((off + t.data.byteLength) / 32) * 32;
  }
  while (out.length % 32) u8(0);
  const start = out.length;
  off = 0;
  for (const t of tensors) {
    while (out.length < start + off) u8(0);
    new Uint8Array(t.data.buffer).forEach(u8);
    off = Math.ceil((off + t.data.byteLength) / 32) * 32;
  }
  return new Uint8Array(out);
}

gpuTest(
  "gguf qwen3moe: stacked experts un-stack to the checkpoint's tensors; greedy ids equal the reference",
  async (g) => {
    const tmp = await Deno.makeTempDir({ prefix: "strata-moe-gguf-" });
    try {
      const hf = `${tmp}/hf`;
      await makeTinyModel(hf, { arch: "qwen3_moe", dtype: "F32" });
      const ref = await loadReferenceModel(hf);
      const c = ref.config, m = c.moe!;
      const w = (n: string) => Float32Array.from(ref.weights.get(n)!);
      const D = c.hiddenSize;
      const tensors: GgufTensor[] = [
        {
          name: "token_embd.weight",
          dims: [D, c.vocabSize],
          data: w("model.embed_tokens.weight"),
        },
      ];
      const sparse: number[] = [];
      for (let i = 0; i < c.numLayers; i++) {
        const p = `model.layers.${i}.`;
        const t = (name: string, hfName: string, dims: number[]) =>
          tensors.push({
            name: `blk.${i}.${name}.weight`,
            dims,
            data: w(p + hfName),
          });
        const qd = c.numHeads * c.headDim, kd = c.numKvHeads * c.headDim;
        t("attn_norm", "input_layernorm.weight", [D]);
        t("attn_q", "self_attn.q_proj.weight", [D, qd]);
        t("attn_k", "self_attn.k_proj.weight", [D, kd]);
        t("attn_v", "self_attn.v_proj.weight", [D, kd]);
        t("attn_output", "self_attn.o_proj.weight", [qd, D]);
        t("attn_q_norm", "self_attn.q_norm.weight", [c.headDim]);
        t("attn_k_norm", "self_attn.k_norm.weight", [c.headDim]);
        t("ffn_norm", "post_attention_layernorm.weight", [D]);
        if (!ref.weights.has(p + "mlp.gate.weight")) {
          const F = c.intermediateSize;
          t("ffn_gate", "mlp.gate_proj.weight", [D, F]);
          t("ffn_up", "mlp.up_proj.weight", [D, F]);
          t("ffn_down", "mlp.down_proj.weight", [F, D]);
          continue;
        }
        sparse.push(i);
        const E = m.numExperts, Fe = m.expertSize;
        t("ffn_gate_inp", "mlp.gate.weight", [D, E]);
        const stack = (role: string, dims: number[]) => {
          const parts = Array.from(
            { length: E },
            (_, e) => w(`${p}mlp.experts.${e}.${role}.weight`),
          );
          const data = new Float32Array(
            parts.reduce((a, x) => a + x.length, 0),
          );
          parts.forEach((x, e) => data.set(x, e * x.length));
          tensors.push({
            name: `blk.${i}.ffn_${role.split("_")[0]}_exps.weight`,
            dims,
            data,
          });
        };
        stack("gate_proj", [D, Fe, E]);
        stack("up_proj", [D, Fe, E]);
        stack("down_proj", [Fe, D, E]);
      }
      assert.deepEqual(sparse, [1, 3]);
      tensors.push({
        name: "output_norm.weight",
        dims: [D],
        data: w("model.norm.weight"),
      });
      tensors.push({
        name: "output.weight",
        dims: [D, c.vocabSize],
        data: w("lm_head.weight"),
      });
      const a = "qwen3moe";
      const kvs: Kv[] = [
        ["general.architecture", "str", a],
        [`${a}.block_count`, "u32", c.numLayers],
        [`${a}.context_length`, "u32", 512],
        [`${a}.embedding_length`, "u32", D],
        [`${a}.feed_forward_length`, "u32", c.intermediateSize],
        [`${a}.attention.head_count`, "u32", c.numHeads],
        [`${a}.attention.head_count_kv`, "u32", c.numKvHeads],
        [`${a}.attention.key_length`, "u32", c.headDim],
        [`${a}.attention.value_length`, "u32", c.headDim],
        [`${a}.attention.layer_norm_rms_epsilon`, "f32", c.rmsNormEps],
        [`${a}.rope.freq_base`, "f32", c.ropeTheta],
        [`${a}.expert_count`, "u32", m.numExperts],
        [`${a}.expert_used_count`, "u32", m.topK],
        [`${a}.expert_feed_forward_length`, "u32", m.expertSize],
      ];
      const file = `${tmp}/tiny-qwen3moe.gguf`;
      await Deno.writeFile(file, writeGguf(kvs, tensors));
      const src = await openSource(file);
      const shards = `${tmp}/shards`;
      try {
        assert.equal(src.config.model_type, "qwen3_moe");
        assert.deepEqual(src.config.mlp_only_layers, [0, 2]);
        await splitModel(src, { out: shards, quantize: "none" });
      } finally {
        src.close();
      }
      const got = await loadReferenceModel(shards);
      assert.deepEqual(
        [...got.weights.keys()].sort(),
        [...ref.weights.keys()].sort(),
      );
      for (const [name, x] of ref.weights) {
        assert.deepEqual(
          Array.from(got.weights.get(name)!),
          Array.from(x),
          name,
        );
      }
      const PROMPT = [1, 72, 101, 108, 108, 111];
      const want = referenceGreedy(ref.weights, ref.config, PROMPT, 8);
      const model = await AutoModel.fromPretrained(shards, {
        gpu: g,
        gpuMemory: "1GB",
        maxSeqLen: 64,
      });
      let peak: number;
      try {
        const ids = await model.generate(PROMPT, {
          maxNewTokens: 8,
          temperature: 0,
        });
        assert.deepEqual(ids, want.slice(0, ids.length));
        peak = model.lastStats!.peakGpuBytes;
      } finally {
        await model.dispose();
      }
      // half the experts' bytes less: they stream through the expert cache
      const streamed = await AutoModel.fromPretrained(shards, {
        gpu: g,
        gpuMemory: peak - 150_000,
        maxSeqLen: 64,
      });
      try {
        const ids = await streamed.generate(PROMPT, {
          maxNewTokens: 8,
          temperature: 0,
        });
        assert.deepEqual(ids, want.slice(0, ids.length), "streamed experts");
        assert.equal(streamed.lastStats!.forward.experts?.allResident, false);
      } finally {
        await streamed.dispose();
      }
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
);

/** llama.cpp's Q/K row order: within each head, GGUF row 2i + s = HF row s·hd/2 + i. */
function permute(x: Float32Array, heads: number, cols: number): Float32Array {
  const hd = x.length / cols / heads, out = new Float32Array(x.length);
  for (let h = 0; h < heads; h++) {
    for (let s = 0; s < 2; s++) {
      for (let i = 0; i < hd / 2; i++) {
        const src = (h * hd + s * hd / 2 + i) * cols;
        out.set(x.subarray(src, src + cols), (h * hd + 2 * i + s) * cols);
      }
    }
  }
  return out;
}

gpuTest(
  "gguf mixtral (llama + expert_count): experts un-stacked, q/k un-permuted; greedy ids equal the reference",
  async (g) => {
    const tmp = await Deno.makeTempDir({ prefix: "strata-mixtral-gguf-" });
    try {
      const hf = `${tmp}/hf`;
      await makeTinyModel(hf, { arch: "mixtral", dtype: "F32" });
      const ref = await loadReferenceModel(hf);
      const c = ref.config, m = c.moe!;
      const w = (n: string) => Float32Array.from(ref.weights.get(n)!);
      const D = c.hiddenSize, E = m.numExperts, Fe = m.expertSize;
      const qd = c.numHeads * c.headDim, kd = c.numKvHeads * c.headDim;
      const tensors: GgufTensor[] = [{
        name: "token_embd.weight",
        dims: [D, c.vocabSize],
        data: w("model.embed_tokens.weight"),
      }];
      for (let i = 0; i < c.numLayers; i++) {
        const p = `model.layers.${i}.`, b = `blk.${i}.`;
        const moe = `${p}block_sparse_moe.`;
        const stack = (x: string) => {
          const parts = Array.from(
            { length: E },
            (_, e) => w(`${moe}experts.${e}.${x}.weight`),
          );
          const data = new Float32Array(parts.length * parts[0].length);
          parts.forEach((y, e) => data.set(y, e * y.length));
          return data;
        };
        tensors.push(
          {
            name: b + "attn_norm.weight",
            dims: [D],
            data: w(p + "input_layernorm.weight"),
          },
          {
            name: b + "attn_q.weight",
            dims: [D, qd],
            data: permute(w(p + "self_attn.q_proj.weight"), c.numHeads, D),
          },
          {
            name: b + "attn_k.weight",
            dims: [D, kd],
            data: permute(w(p + "self_attn.k_proj.weight"), c.numKvHeads, D),
          },
          {
            name: b + "attn_v.weight",
            dims: [D, kd],
            data: w(p + "self_attn.v_proj.weight"),
          },
          {
            name: b + "attn_output.weight",
            dims: [qd, D],
            data: w(p + "self_attn.o_proj.weight"),
          },
          {
            name: b + "ffn_norm.weight",
            dims: [D],
            data: w(p + "post_attention_layernorm.weight"),
          },
          {
            name: b + "ffn_gate_inp.weight",
            dims: [D, E],
            data: w(moe + "gate.weight"),
          },
          {
            name: b + "ffn_gate_exps.weight",
            dims: [D, Fe, E],
            data: stack("w1"),
          },
          {
            name: b + "ffn_up_exps.weight",
            dims: [D, Fe, E],
            data: stack("w3"),
          },
          {
            name: b + "ffn_down_exps.weight",
            dims: [Fe, D, E],
            data: stack("w2"),
          },
        );
      }
      tensors.push(
        { name: "output_norm.weight", dims: [D], data: w("model.norm.weight") },
        {
          name: "output.weight",
          dims: [D, c.vocabSize],
          data: w("lm_head.weight"),
        },
      );
      const kvs: Kv[] = [
        ["general.architecture", "str", "llama"],
        ["llama.block_count", "u32", c.numLayers],
        ["llama.context_length", "u32", 512],
        ["llama.embedding_length", "u32", D],
        ["llama.feed_forward_length", "u32", Fe],
        ["llama.attention.head_count", "u32", c.numHeads],
        ["llama.attention.head_count_kv", "u32", c.numKvHeads],
        ["llama.attention.layer_norm_rms_epsilon", "f32", c.rmsNormEps],
        ["llama.rope.freq_base", "f32", c.ropeTheta],
        ["llama.expert_count", "u32", E],
        ["llama.expert_used_count", "u32", m.topK],
      ];
      const file = `${tmp}/tiny-mixtral.gguf`;
      await Deno.writeFile(file, writeGguf(kvs, tensors));
      const src = await openSource(file);
      const shards = `${tmp}/shards`;
      try {
        assert.equal(src.config.model_type, "mixtral");
        await splitModel(src, { out: shards, quantize: "none" });
      } finally {
        src.close();
      }
      const got = await loadReferenceModel(shards);
      assert.deepEqual(
        [...got.weights.keys()].sort(),
        [...ref.weights.keys()].sort(),
      );
      for (const [name, x] of ref.weights) {
        assert.deepEqual(
          Array.from(got.weights.get(name)!),
          Array.from(x),
          name,
        );
      }
      const PROMPT = [1, 72, 101, 108, 108, 111];
      const want = referenceGreedy(ref.weights, ref.config, PROMPT, 8);
      const model = await AutoModel.fromPretrained(shards, {
        gpu: g,
        gpuMemory: "1GB",
        maxSeqLen: 64,
      });
      try {
        const ids = await model.generate(PROMPT, {
          maxNewTokens: 8,
          temperature: 0,
        });
        assert.deepEqual(ids, want.slice(0, ids.length));
      } finally {
        await model.dispose();
      }
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
);
