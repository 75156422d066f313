/**
 * llama2.c checkpoint → model source (Hugging Face names, config and layout;
 * tokenizer.bin → tokenizer.json).
 *
 * ## RoPE: interleaved pairs → rotate-half
 *
 * llama2.c's `run.c` rotates, within each head of size `hs`, the adjacent pairs
 * `(2i, 2i+1)` of q and k by the angle `pos·10000^(−2i/hs)`. Hugging Face
 * (and Strata's kernels) rotate the pairs `(i, i + hs/2)` by the same angle
 * ("rotate-half"). Reordering the output rows of `wq` and `wk` per head with
 *
 *     hf_row[s·hs/2 + i] = l2c_row[2i + s]      (s ∈ {0,1}, i < hs/2)
 *
 * is a permutation P with `q_hf = P·q_l2c` that sends pair (2i, 2i+1) to pair
 * (i, i+hs/2), so `rotate_half(P·q) = P·rotate_interleaved(q)`. The same P is
 * applied to k (per KV head), and attention scores are dot products within a
 * head, invariant under applying one permutation to both q and k: the model
 * computes exactly the same function. This is the inverse of llama2.c
 * `export.py`'s `permute_reverse` and the same undo as for GGUF llama files
 * (FORMATS.md §2.7), with h = n_heads for wq and n_kv_heads for wk. v, o and
 * the FFN are unchanged.
 *
 * Names: token_embedding_table → model.embed_tokens, rms_att → input_layernorm,
 * wq/wk/wv/wo → q/k/v/o_proj, rms_ffn → post_attention_layernorm, w1 →
 * gate_proj, w2 → down_proj, w3 → up_proj, rms_final → model.norm, wcls →
 * lm_head. freq_cis_* are skipped.
 *
 * @module
 */

import { FormatError, UsageError } from "../errors.ts";
import {
  parseLlama2cTokenizer,
  readLlama2cCheckpoint,
} from "../format/llama2c.ts";
import { convertSpm } from "../text/convert_spm.ts";
import { unpermuteRows } from "./source_gguf.ts";
import type { ModelSource, SourceTensor, TensorData } from "./source.ts";

const LAYER_HF: Record<string, string> = {
  rms_att_weight: "input_layernorm.weight",
  wq: "self_attn.q_proj.weight",
  wk: "self_attn.k_proj.weight",
  wv: "self_attn.v_proj.weight",
  wo: "self_attn.o_proj.weight",
  rms_ffn_weight: "post_attention_layernorm.weight",
  w1: "mlp.gate_proj.weight",
  w2: "mlp.down_proj.weight",
  w3: "mlp.up_proj.weight",
};
const GLOBAL_HF: Record<string, string> = {
  token_embedding_table: "model.embed_tokens.weight",
  rms_final_weight: "model.norm.weight",
  wcls: "lm_head.weight",
};

/**
 * Opens a llama2.c checkpoint and its tokenizer as a model source.
 *
 * @throws {UsageError} when `opts.tokenizer` is missing.
 * @throws {FormatError} when the checkpoint or tokenizer is malformed.
 * @example
 * ```ts ignore
 * import { openLlama2cSource } from "./source_llama2c.ts";
 * const src = await openLlama2cSource("../shared/models/stories260K/stories260K.bin", {
 *   tokenizer: "../shared/models/stories260K/tok512.bin",
 * });
 * console.log(src.config.hidden_size); // 64
 * src.close();
 * ```
 */
export async function openLlama2cSource(
  path: string,
  opts: { tokenizer?: string },
): Promise<ModelSource> {
  if (!opts?.tokenizer) {
    throw new UsageError(
      `${path}: a llama2.c checkpoint needs its tokenizer: pass --tokenizer tokenizer.bin`,
    );
  }
  const ckpt = await readLlama2cCheckpoint(path);
  const h = ckpt.header;
  let tokBytes: Uint8Array;
  try {
    tokBytes = await Deno.readFile(opts.tokenizer);
  } catch (e) {
    throw new FormatError(
      opts.tokenizer,
      e instanceof Deno.errors.NotFound
        ? "tokenizer file not found"
        : `cannot read the tokenizer: ${(e as Error).message}`,
    );
  }
  const tok = parseLlama2cTokenizer(tokBytes, h.vocabSize, opts.tokenizer);
  const converted = convertSpm({
    tokens: tok.tokens,
    scores: tok.scores,
    bosId: 1,
    eosId: 2,
    unkId: 0,
    addBos: true,
  });
  const hs = h.dim / h.nHeads;
  const config: Record<string, unknown> = {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_act: "silu",
    hidden_size: h.dim,
    intermediate_size: h.hiddenDim,
    num_hidden_layers: h.nLayers,
    num_attention_heads: h.nHeads,
    num_key_value_heads: h.nKvHeads,
    head_dim: hs,
    max_position_embeddings: h.seqLen,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    rope_scaling: null,
    vocab_size: h.vocabSize,
    tie_word_embeddings: h.sharedClassifier,
    attention_bias: false,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: "float32",
  };
  let file: Deno.FsFile | null = await Deno.open(path, { read: true });
  let queue: Promise<unknown> = Promise.resolve();
  const readAt = (offset: number, n: number): Promise<Uint8Array> => {
    const job = queue.then(async () => {
      if (!file) throw new UsageError(`${path}: source is closed`);
      const buf = new Uint8Array(n);
      await file.seek(offset, Deno.SeekMode.Start);
      let done = 0;
      while (done < n) {
        const r = await file.read(buf.subarray(done));
        if (r === null) throw new Error(`${path}: unexpected end of file`);
        done += r;
      }
      return buf;
    });
    queue = job.catch(() => {});
    return job;
  };
  const tensors: SourceTensor[] = [];
  const add = (
    name: string,
    shape: number[],
    offset: number,
    heads: number | null,
  ) => {
    const byteLength = shape.reduce((x, y) => x * y, 1) * 4;
    tensors.push({
      name,
      dtype: "F32",
      shape,
      byteLength,
      file: path,
      read: async (): Promise<TensorData> => {
        const raw = await readAt(offset, byteLength);
        return {
          dtype: "F32",
          bytes: heads === null ? raw : unpermuteRows(raw, shape[1] * 4, heads),
        };
      },
    });
  };
  for (const a of ckpt.arrays) {
    if (a.name in GLOBAL_HF) add(GLOBAL_HF[a.name], a.shape, a.offset, null);
  }
  for (let l = 0; l < h.nLayers; l++) {
    for (const a of ckpt.arrays) {
      if (!(a.name in LAYER_HF)) continue;
      const shape = a.shape.slice(1);
      const per = a.byteLength / h.nLayers;
      const heads = a.name === "wq"
        ? h.nHeads
        : a.name === "wk"
        ? h.nKvHeads
        : null;
      add(
        `model.layers.${l}.${LAYER_HF[a.name]}`,
        shape,
        a.offset + l * per,
        heads,
      );
    }
  }
  return {
    kind: "llama2c",
    path,
    description:
      `llama2.c checkpoint: dim ${h.dim}, ${h.nLayers} layers, ${h.nHeads}/${h.nKvHeads} heads, vocab ${h.vocabSize}, ${
        h.sharedClassifier ? "shared" : "separate"
      } classifier`,
    config,
    files: {
      "tokenizer.json": JSON.stringify(converted.tokenizer),
      "tokenizer_config.json": JSON.stringify(
        converted.tokenizerConfig,
        null,
        2,
      ),
      "generation_config.json": JSON.stringify(
        converted.generationConfig,
        null,
        2,
      ),
    },
    tensors,
    sourceFiles: [path], // the tokenizer may be shared by other checkpoints: never deleted
    close: () => {
      try {
        file?.close();
      } catch {
        // already closed
      }
      file = null;
    },
  };
}
