/**
 * Mixture-of-experts GGUF files (llama.cpp's layout): Mixtral written as
 * `llama` with `llama.expert_count`, `qwen2moe` and `qwen3moe`. Their
 * config keys become Hugging Face ones, and their tensors Hugging Face
 * tensors:
 *
 * - `ffn_gate_inp` (router, [E, D]) → `…gate.weight`;
 * - `ffn_gate_exps` / `ffn_up_exps` / `ffn_down_exps` hold every expert
 *   stacked (dims `[in, out, E]`, HF shape `[E, out, in]`): they are
 *   un-stacked into one tensor per expert (`…experts.{e}.gate_proj.weight`
 *   or Mixtral's `w1`/`w3`/`w2`), each read as its own byte range (whole
 *   rows, so quantized blocks move unchanged);
 * - `ffn_{gate,up,down}_shexp` → `mlp.shared_expert.*_proj.weight`,
 *   `ffn_gate_inp_shexp` ([D]) → `mlp.shared_expert_gate.weight` ([1, D]).
 *
 * Blocks without `ffn_gate_inp` run the dense MLP: they become
 * `mlp_only_layers`.
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import type { GgufFile, GgufTensorInfo } from "../format/gguf.ts";
import type { SourceTensor } from "./source.ts";

/** GGUF architectures with experts besides `llama` (Mixtral). */
export const ARCHS: readonly string[] = ["qwen2moe", "qwen3moe"];

/**
 * The Hugging Face config fields of a GGUF file's experts (empty for a
 * dense file): model type, expert counts and sizes, `mlp_only_layers`.
 *
 * @example
 * ```ts ignore
 * Object.assign(cfg, ggufMoeConfig(g, "qwen3moe", cfg));
 * ```
 */
export function ggufMoeConfig(
  g: GgufFile,
  arch: string,
  cfg: Record<string, unknown>,
): Record<string, unknown> {
  const num = (key: string): number | undefined =>
    g.getNumber(`${arch}.${key}`);
  const experts = num("expert_count");
  if (arch === "llama" ? !experts : !ARCHS.includes(arch)) return {};
  const used = num("expert_used_count");
  if (experts === undefined || used === undefined) {
    throw new FormatError(
      g.path,
      `missing metadata ${arch}.expert_count or ${arch}.expert_used_count`,
    );
  }
  if (arch === "llama") {
    return {
      architectures: ["MixtralForCausalLM"],
      model_type: "mixtral",
      num_local_experts: experts,
      num_experts_per_tok: used,
    };
  }
  const layers = cfg.num_hidden_layers as number;
  const dense = Array.from({ length: layers }, (_, i) => i).filter((i) =>
    !g.tensors.has(`blk.${i}.ffn_gate_inp.weight`)
  );
  const out: Record<string, unknown> = {
    num_experts: experts,
    num_experts_per_tok: used,
    moe_intermediate_size: num("expert_feed_forward_length") ??
      cfg.intermediate_size,
    decoder_sparse_step: 1,
    mlp_only_layers: dense,
  };
  if (arch === "qwen2moe") {
    return {
      ...out,
      architectures: ["Qwen2MoeForCausalLM"],
      model_type: "qwen2_moe",
      shared_expert_intermediate_size: num(
        "expert_shared_feed_forward_length",
      ),
      norm_topk_prob: false, // llama.cpp's qwen2moe graph does not renormalize
      attention_bias: true,
    };
  }
  const norm = g.get(`${arch}.expert_weights_norm`)?.value;
  return {
    ...out,
    architectures: ["Qwen3MoeForCausalLM"],
    model_type: "qwen3_moe",
    norm_topk_prob: typeof norm === "boolean" ? norm : true,
    attention_bias: g.tensors.has("blk.0.attn_q.bias"),
  };
}

const ROLE: Record<string, [string, string]> = {
  // GGUF role: [Hugging Face name, Mixtral name]
  gate: ["gate_proj", "w1"],
  up: ["up_proj", "w3"],
  down: ["down_proj", "w2"],
};

/** Makes a source tensor of `info` named `hfName` (source_gguf.ts makeTensor). */
export type MakeTensor = (
  g: GgufFile,
  info: GgufTensorInfo,
  hfName: string,
  permuteHeads: null,
) => SourceTensor;

/**
 * When GGUF tensor `t` is an expert tensor, pushes its Hugging Face tensors
 * (one per expert when stacked) onto `out` and returns true.
 *
 * @example
 * ```ts ignore
 * if (pushExperts(tensors, g, t, config, makeTensor)) continue;
 * ```
 */
export function pushExperts(
  out: SourceTensor[],
  g: GgufFile,
  t: GgufTensorInfo,
  cfg: Record<string, unknown>,
  make: MakeTensor,
): boolean {
  const m =
    /^blk\.(\d+)\.ffn_(gate_inp|gate_inp_shexp|(gate|up|down)_(exps|shexp))\.weight$/
      .exec(t.name);
  if (!m) return false;
  const mk = (info: GgufTensorInfo, name: string) => make(g, info, name, null);
  const mix = cfg.model_type === "mixtral";
  const p = `model.layers.${m[1]}.${mix ? "block_sparse_moe" : "mlp"}.`;
  const role = ROLE[m[3]];
  if (m[2] === "gate_inp") out.push(mk(t, p + "gate.weight"));
  else if (m[2] === "gate_inp_shexp") {
    const d = t.shape.reduce((a, b) => a * b, 1);
    out.push({ ...mk(t, p + "shared_expert_gate.weight"), shape: [1, d] });
  } else if (m[4] === "shexp") {
    out.push(mk(t, `${p}shared_expert.${role[0]}.weight`));
  } else {out.push(...unstack(g, t, (e) =>
      `${p}experts.${e}.${mix ? role[1] : role[0]}.weight`, mk));}
  return true;
}

/** A stacked expert tensor (dims [in, out, E]) as E tensors: expert e = rows [e·out, (e+1)·out). */
function unstack(
  g: GgufFile,
  t: GgufTensorInfo,
  name: (e: number) => string,
  mk: (info: GgufTensorInfo, name: string) => SourceTensor,
): SourceTensor[] {
  if (t.dims.length !== 3) {
    throw new FormatError(
      g.path,
      `tensor ${t.name} has ${t.dims.length} dims, expected 3 (in, out, experts)`,
    );
  }
  const [cols, rows, E] = t.dims;
  const per = t.byteLength / E;
  if (!Number.isInteger(per)) {
    throw new FormatError(
      g.path,
      `tensor ${t.name}: ${E} experts do not divide its bytes`,
    );
  }
  return Array.from({ length: E }, (_, e) =>
    mk({
      ...t,
      dims: [cols, rows],
      shape: [rows, cols],
      offset: t.offset + e * per,
      byteLength: per,
    }, name(e)));
}
