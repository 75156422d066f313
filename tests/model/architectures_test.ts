/**
 * The architecture rows' layer programs against each family's Hugging Face
 * modeling code (transformers, models/<family>/modeling_<family>.py), written
 * out here by hand from that code rather than from the table:
 *
 * - every family's decoder layer is `h = x + attn(input_layernorm(x))`,
 *   `out = h + mlp(post_attention_layernorm(h))` (no norms after the blocks);
 * - LlamaAttention: q/k/v/o_proj `bias=config.attention_bias`;
 * - MistralAttention: q/k/v/o_proj `bias=False`;
 * - Qwen2Attention: q/k/v_proj `bias=True`, o_proj `bias=False`;
 * - Qwen3Attention: q/k/v/o_proj `bias=config.attention_bias`, plus
 *   `q_norm`/`k_norm = Qwen3RMSNorm(head_dim)` on each head before RoPE;
 * - all four: `apply_rotary_pos_emb` with `rotate_half`; the MLP is
 *   `down_proj(act_fn(gate_proj(x)) * up_proj(x))` with separate gate and up.
 * - GlmAttention / Glm4Attention: q/k/v_proj `bias=config.attention_bias`,
 *   o_proj `bias=False`; `rotate_half` over (x[0::2], x[1::2]) with
 *   `repeat_interleave(2)` cos/sin on the first head_dim ·
 *   partial_rotary_factor dims (interleaved pairs); GlmMLP one
 *   `gate_up_proj`, `up * act(gate)` with gate = the first chunk;
 *   Glm4DecoderLayer adds `post_self_attn_layernorm` and `post_mlp_layernorm`
 *   on each block's output before its residual add.
 * - ChatGLM (THUDM modeling_chatglm.py): `query_key_value` with
 *   `bias=add_qkv_bias`, `dense` with `bias=add_bias_linear` (false, else
 *   refused), pairs (x[2i], x[2i+1]) of the first half of each head,
 *   `dense_h_to_4h` chunk 0 = gate, no post norms.
 */
import assert from "node:assert/strict";
import {
  type ArchitectureRow,
  ARCHITECTURES,
  type AttentionStep,
  type MlpStep,
} from "../../lib/model/architectures.ts";
import { layerTensors, stepTensors } from "../../lib/model/tensors.ts";
import { normalizeConfig } from "../../lib/model/config.ts";
import type { Architecture } from "../../lib/model/model_config.ts";
import { checkSteps } from "../../lib/engine/_steps.ts";
import { UnsupportedError } from "../../lib/errors.ts";

type Expected = {
  qkvBias: boolean | "attention_bias";
  oBias: boolean | "attention_bias";
  qkNorm: boolean;
};

// the dense families (the mixture-of-experts rows: tests/model/moe_test.ts)
const HF: Partial<Record<Architecture, Expected>> = {
  llama: { qkvBias: "attention_bias", oBias: "attention_bias", qkNorm: false },
  mistral: { qkvBias: false, oBias: false, qkNorm: false },
  qwen2: { qkvBias: true, oBias: false, qkNorm: false },
  qwen3: { qkvBias: "attention_bias", oBias: "attention_bias", qkNorm: true },
};

function programOf(row: ArchitectureRow): [AttentionStep, MlpStep] {
  assert.deepEqual(row.steps.map((s) => s.step), ["attention", "mlp"]);
  const [a, m] = row.steps;
  assert.ok(a.step === "attention" && m.step === "mlp");
  return [a, m];
}

Deno.test("architectures: each row's steps are its family's modeling code", () => {
  for (const [arch, want] of Object.entries(HF)) {
    const row = ARCHITECTURES[arch as Architecture];
    const [attn, mlp] = programOf(row);
    assert.deepEqual(attn, {
      step: "attention",
      qkv: "separate",
      qkvBias: want.qkvBias,
      oBias: want.oBias,
      qkNorm: want.qkNorm,
      rope: "rotate-half",
      postNorm: false,
    }, arch);
    assert.deepEqual(mlp, { step: "mlp", gateUp: "separate", postNorm: false });
  }
  const glm = (qkv: "separate" | "fused", postNorm: boolean) => [{
    step: "attention",
    qkv,
    qkvBias: "attention_bias",
    oBias: false,
    qkNorm: false,
    rope: "interleaved",
    postNorm,
  }, { step: "mlp", gateUp: "fused", postNorm }];
  assert.deepEqual(ARCHITECTURES.glm.steps, glm("separate", false));
  assert.deepEqual(ARCHITECTURES.glm4.steps, glm("separate", true));
  assert.deepEqual(ARCHITECTURES.chatglm.steps, glm("fused", false));
});

const base = {
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 100,
};

Deno.test("architectures: the steps name the HF tensors of layer i, biases per attention_bias", () => {
  const p = "model.layers.1.";
  const core = [
    "input_layernorm.weight",
    "self_attn.q_proj.weight",
    "self_attn.k_proj.weight",
    "self_attn.v_proj.weight",
    "self_attn.o_proj.weight",
    "post_attention_layernorm.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "mlp.down_proj.weight",
  ];
  const qkvB = ["q", "k", "v"].map((x) => `self_attn.${x}_proj.bias`);
  const oB = ["self_attn.o_proj.bias"];
  const qkN = ["self_attn.q_norm.weight", "self_attn.k_norm.weight"];
  const cases: [Architecture, boolean, string[]][] = [
    ["llama", false, []],
    ["llama", true, [...qkvB, ...oB]],
    ["mistral", true, []],
    ["qwen2", false, qkvB],
    ["qwen2", true, qkvB],
    ["qwen3", false, qkN],
    ["qwen3", true, [...qkvB, ...oB, ...qkN]],
  ];
  for (const [arch, bias, extra] of cases) {
    const cfg = normalizeConfig(
      { ...base, model_type: arch, head_dim: 16, attention_bias: bias },
      "c",
    );
    const got = layerTensors(cfg, 1).map((t) => t.name).sort();
    assert.deepEqual(
      got,
      [...core, ...extra].map((n) => p + n).sort(),
      `${arch} attention_bias=${bias}`,
    );
  }
});

Deno.test("architectures: fused q/k/v and gate/up, post norms: one tensor each, shapes in order", () => {
  const cfg = normalizeConfig(
    { ...base, model_type: "llama", attention_bias: true },
    "c",
  );
  const row: ArchitectureRow = {
    ...ARCHITECTURES.llama,
    names: {
      ...ARCHITECTURES.llama.names,
      qkvProj: "l.{i}.qkv.weight",
      gateUpProj: "l.{i}.gate_up.weight",
      attnPostNorm: "l.{i}.post_attn_norm.weight",
      mlpPostNorm: "l.{i}.post_mlp_norm.weight",
    },
  };
  const attn: AttentionStep = {
    step: "attention",
    qkv: "fused",
    qkvBias: "attention_bias",
    oBias: false,
    qkNorm: false,
    rope: "rotate-half",
    postNorm: true,
  };
  const t = stepTensors(cfg, row, attn, 3).map((
    t,
  ) => [t.role, t.name, t.shape]);
  // q [64], k [32], v [32] rows stacked: [128, 64]; the fused bias is read
  // as three slices of l.3.qkv.bias
  assert.deepEqual(t, [
    ["attnNorm", "model.layers.3.input_layernorm.weight", [64]],
    ["qkvProj", "l.3.qkv.weight", [128, 64]],
    ["oProj", "model.layers.3.self_attn.o_proj.weight", [64, 64]],
    ["qBias", "l.3.qkv.bias.q", [64]],
    ["kBias", "l.3.qkv.bias.k", [32]],
    ["vBias", "l.3.qkv.bias.v", [32]],
    ["attnPostNorm", "l.3.post_attn_norm.weight", [64]],
  ]);
  assert.deepEqual(
    stepTensors(cfg, row, attn, 3).map((t) => t.slice),
    [
      undefined,
      undefined,
      undefined,
      { of: "l.3.qkv.bias", start: 0, total: 128 },
      { of: "l.3.qkv.bias", start: 64, total: 128 },
      { of: "l.3.qkv.bias", start: 96, total: 128 },
      undefined,
    ],
  );
  const mlp: MlpStep = { step: "mlp", gateUp: "fused", postNorm: true };
  assert.deepEqual(
    stepTensors(cfg, row, mlp, 0).map((t) => [t.role, t.shape]),
    [
      ["mlpNorm", [64]],
      ["gateUpProj", [256, 64]],
      ["downProj", [64, 128]],
      ["mlpPostNorm", [64]],
    ],
  );
  // a step reading a role the row does not name is a table error
  assert.throws(
    () => stepTensors(cfg, ARCHITECTURES.llama, mlp, 0),
    /llama has a mlp step that reads gateUpProj but no name for it/,
  );
});

Deno.test("architectures: the rope style is read: a style without a kernel is refused", () => {
  for (const row of Object.values(ARCHITECTURES)) checkSteps(row.steps, "c");
  const [attn, mlp] = programOf(ARCHITECTURES.qwen3);
  checkSteps([{ ...attn, rope: "interleaved" }, mlp], "m/config.json");
  assert.throws(
    () =>
      checkSteps([{ ...attn, rope: "yarn" as never }, mlp], "m/config.json"),
    (e) =>
      e instanceof UnsupportedError &&
      /m\/config\.json.*RoPE style "yarn" has no kernel/.test(e.message),
  );
});
