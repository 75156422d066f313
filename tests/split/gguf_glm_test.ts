// GGUF files of the GLM family as llama.cpp's convert_hf_to_gguf.py writes
// them (ChatGLMModel, Glm4Model; tensor names from its tensor_mapping.py):
// - `chatglm` with a fused attn_qkv (+ bias) and a fused ffn_up [gate; up]
//   (ChatGLM2/3, GLM-4-9B-chat), rope.dimension_count = head_dim / 2,
//   rope.freq_base = 10000 · rope_ratio, no key_length (head_dim =
//   hidden / heads), no Q/K permutation;
// - `chatglm` with attn_q/k/v (glm-4-9b-chat-hf, GlmForCausalLM);
// - `glm4` with post_attention_norm / post_ffw_norm (GLM-4-0414).
// Each is written here from a tiny HF checkpoint (F32), split, and must give
// the very logits the float64 reference gives on the HF checkpoint.
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeTinyGlm, type TinyGlmLayout } from "../../lib/testing/tiny_glm.ts";
import { openSource } from "../../lib/split/open_source.ts";
import { splitModel } from "../../lib/split/split.ts";
import { SafetensorsFile } from "../../lib/format/safetensors.ts";
import { type KV, type TensorSpec, writeGguf } from "../format/_gguf_writer.ts";
import { loadReferenceModel, referenceForward } from "../reference/forward.ts";

/** HF name → llama.cpp name, per layout. */
function ggufName(name: string): string {
  const g: Record<string, string> = {
    "transformer.embedding.word_embeddings.weight": "token_embd.weight",
    "transformer.encoder.final_layernorm.weight": "output_norm.weight",
    "transformer.output_layer.weight": "output.weight",
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
  };
  if (g[name]) return g[name];
  const m =
    /^(?:transformer\.encoder|model)\.layers\.(\d+)\.(.+)\.(weight|bias)$/
      .exec(name);
  if (!m) throw new Error(`no GGUF name for ${name}`);
  const l: Record<string, string> = {
    input_layernorm: "attn_norm",
    "self_attention.query_key_value": "attn_qkv",
    "self_attention.dense": "attn_output",
    post_attention_layernorm: "ffn_norm",
    "mlp.dense_h_to_4h": "ffn_up",
    "mlp.dense_4h_to_h": "ffn_down",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    post_self_attn_layernorm: "post_attention_norm",
    post_mlp_layernorm: "post_ffw_norm",
  };
  if (!l[m[2]]) throw new Error(`no GGUF name for ${name}`);
  return `blk.${m[1]}.${l[m[2]]}.${m[3]}`;
}

async function toGguf(
  hf: string,
  out: string,
  arch: string,
  ropeRatio: number,
): Promise<void> {
  const cfg = JSON.parse(await Deno.readTextFile(join(hf, "config.json")));
  const f = await SafetensorsFile.open(join(hf, "model.safetensors"));
  const tensors: TensorSpec[] = [];
  try {
    for (const [name, info] of f.tensors) {
      if (name.endsWith("rotary_pos_emb.inv_freq")) continue; // dropped by convert
      tensors.push({
        name: ggufName(name),
        dims: [...info.shape].reverse(),
        type: 0, // F32
        data: await f.read(name),
      });
    }
  } finally {
    f.close();
  }
  const hidden = cfg.hidden_size, heads = cfg.num_attention_heads;
  const kvs: KV[] = [
    ["general.architecture", "str", arch],
    [`${arch}.context_length`, "u32", 512],
    [`${arch}.embedding_length`, "u32", hidden],
    [
      `${arch}.feed_forward_length`,
      "u32",
      cfg.ffn_hidden_size ?? cfg.intermediate_size,
    ],
    [`${arch}.block_count`, "u32", cfg.num_layers ?? cfg.num_hidden_layers],
    [`${arch}.attention.head_count`, "u32", heads],
    [
      `${arch}.attention.head_count_kv`,
      "u32",
      cfg.multi_query_group_num ?? cfg.num_key_value_heads,
    ],
    [
      `${arch}.attention.layer_norm_rms_epsilon`,
      "f32",
      cfg.layernorm_epsilon ?? cfg.rms_norm_eps,
    ],
    [`${arch}.rope.dimension_count`, "u32", hidden / heads / 2],
    [`${arch}.rope.freq_base`, "f32", 10000 * ropeRatio],
  ];
  await Deno.writeFile(out, writeGguf(kvs, tensors));
}

const CASES: [string, TinyGlmLayout, string, number][] = [
  ["chatglm (ChatGLM3-32k, fused qkv + bias)", "chatglm3", "chatglm", 50],
  ["chatglm (GLM-4-9B-chat, rope_ratio 500)", "glm4-chat", "chatglm", 500],
  ["chatglm (glm-4-9b-chat-hf, attn_q/k/v)", "glm", "chatglm", 1],
  ["glm4 (GLM-4-0414, post norms)", "glm4", "glm4", 1],
];

for (const [what, layout, arch, ratio] of CASES) {
  Deno.test(`gguf ${what}: split = the HF checkpoint's float64 logits`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "strata-gguf-glm-" });
    try {
      const hf = join(dir, "hf");
      // head_dim = hidden / heads: llama.cpp's chatglm has no key_length
      await makeTinyGlm(hf, { layout, dtype: "F32", headDim: 16 });
      const gguf = join(dir, "m.gguf");
      await toGguf(hf, gguf, arch, ratio);
      const src = await openSource(gguf);
      try {
        await splitModel(src, { out: join(dir, "shards"), quantize: "none" });
      } finally {
        src.close();
      }
      const a = await loadReferenceModel(hf);
      const b = await loadReferenceModel(join(dir, "shards"));
      assert.equal(
        b.config.architecture,
        layout === "glm" ? "glm" : a.config.architecture,
      );
      assert.equal(b.config.ropeTheta, a.config.ropeTheta);
      assert.equal(b.config.partialRotaryFactor, 0.5);
      assert.equal(b.config.numKvHeads, 2);
      assert.equal(
        Math.fround(b.config.rmsNormEps),
        Math.fround(a.config.rmsNormEps),
      );
      const ids = [1, 72, 101, 108, 9];
      const want = referenceForward(a.weights, a.config, ids).at(-1)!;
      const got = referenceForward(b.weights, b.config, ids).at(-1)!;
      let err = 0;
      for (let i = 0; i < want.length; i++) {
        err = Math.max(err, Math.abs(want[i] - got[i]));
      }
      assert.ok(err < 1e-9, `max |logit difference| ${err}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
