/**
 * A float64 reference forward pass for the llama family (llama, mistral,
 * qwen2, qwen3) and the GLM family (glm, glm4 with its norms after each
 * block, and ChatGLM2/3 / GLM-4-9B-chat under their own tensor names),
 * written to be read like llama2.c's `forward()`: plain loops, one
 * buffer per intermediate, shapes in comments.
 *
 * GLM semantics, from the families' modeling code (transformers
 * `modeling_glm.py`, `modeling_glm4.py`; THUDM `modeling_chatglm.py`):
 * - RoPE on adjacent pairs (x[2j], x[2j+1]) of the first R = hd · 0.5 dims
 *   (GLM's rotate_half over x[0::2], x[1::2] with repeat_interleave(2)
 *   cos/sin; ChatGLM's pair rotation), θ_j = base^(-2j/R); ChatGLM's base is
 *   10000 · rope_ratio (config.ts maps it to ropeTheta).
 * - A fused `[q; k; v]` (ChatGLM `query_key_value`, weight and bias) is split
 *   as contiguous blocks at H·hd and (H + KV)·hd; query head h reads KV group
 *   h / (H / KV).
 * - A fused `[gate; up]` (`gate_up_proj`, ChatGLM `dense_h_to_4h`): the first
 *   F rows are the gate: silu(chunk 0) · chunk 1. It is the ground truth the
 * GPU engine is tested against, so it shares no code with it: RoPE
 * frequencies are computed here from their definitions, independently of
 * lib/model/rope.ts.
 *
 * Notation: D = hiddenSize, F = intermediateSize, H = numHeads,
 * KV = numKvHeads, hd = headDim, R = rotaryDim, V = vocabSize, P = positions.
 *
 * @module
 */

import { type ModelConfig, normalizeConfig } from "../../lib/model/config.ts";
import { SafetensorsFile } from "../../lib/format/safetensors.ts";
import { encoding } from "../../lib/quant/encoding.ts";
import { refMoe, type RefRoute, refSparse } from "./moe.ts";

/** A weight matrix or vector, row-major, in nn.Linear layout [out, in]. */
export type RefTensor = Float32Array | Float64Array;

/** Tensors by Hugging Face name. */
export type RefWeights = ReadonlyMap<string, RefTensor>;

// ---------------------------------------------------------------------------
// The building blocks (llama2.c style).

/** out[i] = x[i] * w[i] / sqrt(mean(x²) + eps), over x[off..off+n). */
export function rmsnorm(
  out: Float64Array,
  x: Float64Array,
  w: RefTensor,
  n: number,
  eps: number,
  off = 0,
): void {
  let ss = 0;
  for (let i = 0; i < n; i++) ss += x[off + i] * x[off + i];
  const inv = 1 / Math.sqrt(ss / n + eps);
  for (let i = 0; i < n; i++) out[off + i] = x[off + i] * inv * w[i];
}

/** out[N] = W[N, K] · x[K] (+ bias[N]). */
export function matmul(
  out: Float64Array,
  x: Float64Array,
  w: RefTensor,
  n: number,
  k: number,
  bias?: RefTensor,
): void {
  for (let r = 0; r < n; r++) {
    let s = 0;
    const row = r * k;
    for (let c = 0; c < k; c++) s += w[row + c] * x[c];
    out[r] = bias ? s + bias[r] : s;
  }
}

/** silu(x) = x * sigmoid(x). */
export function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

/** In place softmax over x[0..n). */
export function softmax(x: Float64Array, n: number): void {
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (x[i] > max) max = x[i];
  let sum = 0;
  for (let i = 0; i < n; i++) {
    x[i] = Math.exp(x[i] - max);
    sum += x[i];
  }
  for (let i = 0; i < n; i++) x[i] /= sum;
}

/**
 * RoPE inverse frequencies from their definitions, in float64: pair j rotates
 * by pos * theta^(-2j/R), then llama3 / linear / dynamic scaling as in Hugging
 * Face's rope initialisation functions. `seqLen` matters for dynamic only.
 */
export function refInvFreq(cfg: ModelConfig, seqLen: number): Float64Array {
  const R = Math.floor(cfg.headDim * cfg.partialRotaryFactor);
  const rs = cfg.ropeScaling;
  let theta = cfg.ropeTheta;
  if (rs?.type === "dynamic" && seqLen > cfg.maxPositionEmbeddings) {
    const a = rs.factor * seqLen / cfg.maxPositionEmbeddings - (rs.factor - 1);
    theta = theta * a ** (R / (R - 2));
  }
  const f = new Float64Array(R / 2);
  for (let j = 0; j < R / 2; j++) {
    let fj = theta ** (-(2 * j) / R);
    if (rs?.type === "linear") fj = fj / rs.factor;
    if (rs?.type === "llama3") {
      const orig = rs.originalMaxPositionEmbeddings!;
      const lo = rs.lowFreqFactor!, hi = rs.highFreqFactor!;
      // smooth = 0 for long wavelengths (> orig/lo), 1 for short ones (< orig/hi)
      const ratio = orig * fj / (2 * Math.PI); // = orig / wavelength
      const smooth = Math.min(1, Math.max(0, (ratio - lo) / (hi - lo)));
      fj = (1 - smooth) * fj / rs.factor + smooth * fj;
    }
    f[j] = fj;
  }
  return f;
}

/** Rotate-half RoPE on one head x[off..off+hd): pairs (j, j + R/2), j < R/2; dims >= R untouched. */
export function ropeHead(
  x: Float64Array,
  off: number,
  pos: number,
  invFreq: Float64Array,
): void {
  const half = invFreq.length;
  for (let j = 0; j < half; j++) {
    const a = pos * invFreq[j];
    const c = Math.cos(a), s = Math.sin(a);
    const x0 = x[off + j], x1 = x[off + j + half];
    x[off + j] = x0 * c - x1 * s;
    x[off + j + half] = x1 * c + x0 * s;
  }
}

/** Interleaved RoPE on one head x[off..off+hd): pairs (2j, 2j + 1), j < R/2; dims >= R untouched. */
export function ropeHeadInterleaved(
  x: Float64Array,
  off: number,
  pos: number,
  invFreq: Float64Array,
): void {
  for (let j = 0; j < invFreq.length; j++) {
    const a = pos * invFreq[j];
    const c = Math.cos(a), s = Math.sin(a);
    const x0 = x[off + 2 * j], x1 = x[off + 2 * j + 1];
    x[off + 2 * j] = x0 * c - x1 * s;
    x[off + 2 * j + 1] = x1 * c + x0 * s;
  }
}

/** ChatGLM's tensor name prefix. */
const CG = "transformer.";

/** The families whose RoPE pairs are (2j, 2j + 1). */
const INTERLEAVED = new Set(["glm", "glm4", "chatglm"]);

/** One decoder layer's tensors, fused ones already split into their parts. */
interface RefLayer {
  attnNorm: RefTensor;
  wq: RefTensor;
  wk: RefTensor;
  wv: RefTensor;
  bq?: RefTensor;
  bk?: RefTensor;
  bv?: RefTensor;
  qNorm?: RefTensor;
  kNorm?: RefTensor;
  wo: RefTensor;
  bo?: RefTensor;
  attnPost?: RefTensor;
  mlpNorm: RefTensor;
  /** Dense MLP weights (absent in a sparse MoE layer). */
  wGate?: RefTensor;
  wUp?: RefTensor;
  wDown?: RefTensor;
  mlpPost?: RefTensor;
}

/** Rows [r0, r1) of a row-major matrix with `cols` columns (or elements of a vector: cols 1). */
function rows(t: RefTensor, r0: number, r1: number, cols: number): RefTensor {
  return t.subarray(r0 * cols, r1 * cols);
}

// ---------------------------------------------------------------------------
// The model.

/**
 * A stepping reference model with a KV cache: `step(token)` runs one position
 * and returns its logits [V].
 */
export class ReferenceModel {
  readonly cfg: ModelConfig;
  readonly #w: RefWeights;
  // per layer, per position: k and v [KV*hd]
  readonly #kCache: Float64Array[][] = [];
  readonly #vCache: Float64Array[][] = [];
  /** Number of positions already in the cache. */
  pos = 0;
  /** The router's choice per layer at the last step (null: a dense layer). */
  readonly routes: (RefRoute | null)[] = [];
  /** The last step's hidden state after the final norm [D]. */
  hidden: Float64Array = new Float64Array(0);

  constructor(weights: RefWeights, cfg: ModelConfig) {
    this.cfg = cfg;
    this.#w = weights;
    for (let l = 0; l < cfg.numLayers; l++) {
      this.#kCache.push([]);
      this.#vCache.push([]);
    }
  }

  #get(name: string): RefTensor {
    const t = this.#w.get(name);
    if (!t) throw new Error(`reference: missing tensor ${name}`);
    return t;
  }

  #opt(name: string): RefTensor | undefined {
    return this.#w.get(name);
  }

  /** Forgets the cache. */
  reset(): void {
    this.pos = 0;
    for (const c of this.#kCache) c.length = 0;
    for (const c of this.#vCache) c.length = 0;
  }

  /**
   * Runs `token` at position `this.pos`; returns logits [V] (empty for a
   * model without a classifier, such as chatglm.cpp's test vectors: read
   * {@link hidden} then).
   */
  step(token: number): Float64Array {
    const c = this.cfg;
    const D = c.hiddenSize,
      F = c.intermediateSize,
      H = c.numHeads,
      KV = c.numKvHeads;
    const hd = c.headDim, V = c.vocabSize, eps = c.rmsNormEps;
    const pos = this.pos;
    if (!Number.isInteger(token) || token < 0 || token >= V) {
      throw new Error(`reference: token ${token} out of range`);
    }
    const invFreq = refInvFreq(c, pos + 1);
    const scale = 1 / Math.sqrt(hd);
    const group = H / KV; // query heads per kv head

    const chatglm = c.architecture === "chatglm";
    const headName = chatglm ? CG + "output_layer.weight" : "lm_head.weight";
    // x [D]: the residual stream, starts as the token's embedding row
    const emb = this.#get(
      chatglm
        ? CG + "embedding.word_embeddings.weight"
        : "model.embed_tokens.weight",
    );
    const x = new Float64Array(D);
    for (let i = 0; i < D; i++) x[i] = emb[token * D + i];

    const xb = new Float64Array(D); // normed x [D]
    const q = new Float64Array(H * hd); // [H, hd]
    const att = new Float64Array(pos + 1); // scores of one head over positions [P]
    const xb2 = new Float64Array(H * hd); // attention output [H, hd]
    const o = new Float64Array(D); // o_proj output [D]
    const hb = new Float64Array(F); // gate [F]
    const hb2 = new Float64Array(F); // up [F]
    const down = new Float64Array(D); // down_proj output [D]

    for (let l = 0; l < c.numLayers; l++) {
      const w = this.#layer(l);
      // ---- attention
      rmsnorm(xb, x, w.attnNorm, D, eps);
      const k = new Float64Array(KV * hd); // [KV, hd]
      const v = new Float64Array(KV * hd); // [KV, hd]
      matmul(q, xb, w.wq, H * hd, D, w.bq);
      matmul(k, xb, w.wk, KV * hd, D, w.bk);
      matmul(v, xb, w.wv, KV * hd, D, w.bv);
      // Qwen3: per-head RMSNorm of q and k over hd, before RoPE
      if (w.qNorm) {
        for (let h = 0; h < H; h++) rmsnorm(q, q, w.qNorm, hd, eps, h * hd);
      }
      if (w.kNorm) {
        for (let h = 0; h < KV; h++) rmsnorm(k, k, w.kNorm, hd, eps, h * hd);
      }
      // RoPE on every q and k head: rotate-half, or GLM's adjacent pairs
      const rope = INTERLEAVED.has(c.architecture)
        ? ropeHeadInterleaved
        : ropeHead;
      for (let h = 0; h < H; h++) rope(q, h * hd, pos, invFreq);
      for (let h = 0; h < KV; h++) rope(k, h * hd, pos, invFreq);
      this.#kCache[l].push(k);
      this.#vCache[l].push(v);
      // causal GQA attention: head h reads kv head floor(h / group)
      for (let h = 0; h < H; h++) {
        const kvh = Math.floor(h / group);
        for (let t = 0; t <= pos; t++) {
          const kt = this.#kCache[l][t];
          let s = 0;
          for (let i = 0; i < hd; i++) s += q[h * hd + i] * kt[kvh * hd + i];
          att[t] = s * scale;
        }
        softmax(att, pos + 1);
        for (let i = 0; i < hd; i++) {
          let s = 0;
          for (let t = 0; t <= pos; t++) {
            s += att[t] * this.#vCache[l][t][kvh * hd + i];
          }
          xb2[h * hd + i] = s;
        }
      }
      matmul(o, xb2, w.wo, D, H * hd, w.bo);
      // GLM-4 (Glm4DecoderLayer): post_self_attn_layernorm on the attention
      // output, before the residual
      if (w.attnPost) rmsnorm(o, o, w.attnPost, D, eps);
      for (let i = 0; i < D; i++) x[i] += o[i]; // residual
      // ---- MLP: down(silu(gate(x)) * up(x)), or routed experts (moe.ts)
      rmsnorm(xb, x, w.mlpNorm, D, eps);
      this.routes[l] = null;
      if (refSparse(c, l)) {
        const moe = refMoe(xb, c, l, (n) => this.#get(n));
        down.set(moe.y);
        this.routes[l] = moe.route;
      } else {
        matmul(hb, xb, w.wGate!, F, D);
        matmul(hb2, xb, w.wUp!, F, D);
        for (let i = 0; i < F; i++) hb[i] = silu(hb[i]) * hb2[i];
        matmul(down, hb, w.wDown!, D, F);
      }
      // GLM-4: post_mlp_layernorm on the MLP output, before the residual
      if (w.mlpPost) rmsnorm(down, down, w.mlpPost, D, eps);
      for (let i = 0; i < D; i++) x[i] += down[i]; // residual
    }

    // final norm and classifier (tied: the embedding matrix)
    rmsnorm(
      xb,
      x,
      this.#get(
        chatglm ? CG + "encoder.final_layernorm.weight" : "model.norm.weight",
      ),
      D,
      eps,
    );
    this.hidden = xb.slice();
    this.pos++;
    if (!this.#w.has(headName) && !c.tieWordEmbeddings) {
      return new Float64Array(0); // hidden states only (no classifier)
    }
    const head = c.tieWordEmbeddings ? emb : this.#get(headName);
    const logits = new Float64Array(V);
    matmul(logits, xb, head, V, D);
    return logits;
  }

  /** Layer `l`'s tensors by what they do, fused ones split into parts. */
  #layer(l: number): RefLayer {
    const c = this.cfg;
    const D = c.hiddenSize, F = c.intermediateSize, hd = c.headDim;
    const qDim = c.numHeads * hd, kvDim = c.numKvHeads * hd;
    if (c.architecture === "chatglm") {
      const p = `${CG}encoder.layers.${l}.`;
      // query_key_value rows: [q (H·hd) | k (KV·hd) | v (KV·hd)]
      const qkv = this.#get(p + "self_attention.query_key_value.weight");
      const b = this.#opt(p + "self_attention.query_key_value.bias");
      // a split shard directory holds the bias as three slices
      const part = (x: string, r0: number, r1: number) =>
        b ? rows(b, r0, r1, 1) : this.#opt(
          p + "self_attention.query_key_value.bias." + x,
        );
      // dense_h_to_4h rows: [gate (F) | up (F)]
      const h4 = this.#get(p + "mlp.dense_h_to_4h.weight");
      return {
        attnNorm: this.#get(p + "input_layernorm.weight"),
        wq: rows(qkv, 0, qDim, D),
        wk: rows(qkv, qDim, qDim + kvDim, D),
        wv: rows(qkv, qDim + kvDim, qDim + 2 * kvDim, D),
        bq: part("q", 0, qDim),
        bk: part("k", qDim, qDim + kvDim),
        bv: part("v", qDim + kvDim, qDim + 2 * kvDim),
        wo: this.#get(p + "self_attention.dense.weight"),
        mlpNorm: this.#get(p + "post_attention_layernorm.weight"),
        wGate: rows(h4, 0, F, D),
        wUp: rows(h4, F, 2 * F, D),
        wDown: this.#get(p + "mlp.dense_4h_to_h.weight"),
      };
    }
    const p = `model.layers.${l}.`;
    const a = p + "self_attn.";
    // GLM: one gate_up_proj [gate (F) | up (F)]
    const gu = this.#opt(p + "mlp.gate_up_proj.weight");
    return {
      attnNorm: this.#get(p + "input_layernorm.weight"),
      wq: this.#get(a + "q_proj.weight"),
      wk: this.#get(a + "k_proj.weight"),
      wv: this.#get(a + "v_proj.weight"),
      bq: this.#opt(a + "q_proj.bias"),
      bk: this.#opt(a + "k_proj.bias"),
      bv: this.#opt(a + "v_proj.bias"),
      qNorm: this.#opt(a + "q_norm.weight"),
      kNorm: this.#opt(a + "k_norm.weight"),
      wo: this.#get(a + "o_proj.weight"),
      bo: this.#opt(a + "o_proj.bias"),
      attnPost: this.#opt(p + "post_self_attn_layernorm.weight"),
      mlpNorm: this.#get(p + "post_attention_layernorm.weight"),
      // a sparse (MoE) layer has experts instead (read by refMoe)
      ...(refSparse(c, l) ? {} : {
        wGate: gu ? rows(gu, 0, F, D) : this.#get(p + "mlp.gate_proj.weight"),
        wUp: gu ? rows(gu, F, 2 * F, D) : this.#get(p + "mlp.up_proj.weight"),
        wDown: this.#get(p + "mlp.down_proj.weight"),
      }),
      mlpPost: this.#opt(p + "post_mlp_layernorm.weight"),
    };
  }
}

/**
 * Logits [V] for every position of `tokens` (positions 0..P-1), from an empty cache.
 */
export function referenceForward(
  weights: RefWeights,
  cfg: ModelConfig,
  tokens: number[],
): Float64Array[] {
  const m = new ReferenceModel(weights, cfg);
  return tokens.map((t) => m.step(t));
}

/** Index of the largest value; ties go to the lower index. */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** Greedy decoding: `n` new ids after `promptIds` (no stopping on EOS). */
export function referenceGreedy(
  weights: RefWeights,
  cfg: ModelConfig,
  promptIds: number[],
  n: number,
): number[] {
  if (promptIds.length === 0) throw new Error("reference: empty prompt");
  const m = new ReferenceModel(weights, cfg);
  let logits: Float64Array = new Float64Array(0);
  for (const t of promptIds) logits = m.step(t);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const next = argmax(logits);
    out.push(next);
    if (i + 1 < n) logits = m.step(next);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Loading weights from a Hugging Face checkpoint directory or a shard directory.
// The decoders below are written from the format definitions on purpose
// (independent of lib/quant), so tests of the engine also check them.

/** IEEE half → number. */
function f16(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Decodes raw little-endian F32/F16/BF16 bytes. */
export function refDecode(
  bytes: Uint8Array,
  dtype: string,
  what: string,
): Float64Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = dtype === "F32"
    ? 4
    : dtype === "F16" || dtype === "BF16"
    ? 2
    : 0;
  if (size === 0) {
    throw new Error(`reference: ${what}: dtype ${dtype} not supported`);
  }
  const out = new Float64Array(bytes.length / size);
  const tmp = new DataView(new ArrayBuffer(4));
  for (let i = 0; i < out.length; i++) {
    if (dtype === "F32") out[i] = dv.getFloat32(i * 4, true);
    else if (dtype === "F16") out[i] = f16(dv.getUint16(i * 2, true));
    else {
      // bf16 is the top half of an f32
      tmp.setUint32(0, dv.getUint16(i * 2, true) << 16);
      out[i] = tmp.getFloat32(0);
    }
  }
  return out;
}

/**
 * Strata q8/q4 dequantization from the layout definition: blocks of 32 along a
 * row, nb = ceil(cols/32), one f16 scale per block; q8: x = d*q (int8);
 * q4: byte j of a block holds element j (low nibble) and j+16 (high nibble),
 * x = d*(nibble - 8).
 */
export function refDequant(
  type: "q8" | "q4",
  data: Uint8Array,
  scales: Float64Array,
  rows: number,
  cols: number,
): Float64Array {
  const nb = Math.ceil(cols / 32);
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < nb; b++) {
      const d = scales[r * nb + b];
      for (let j = 0; j < 32; j++) {
        const c = b * 32 + j;
        if (c >= cols) break;
        let q: number;
        if (type === "q8") {
          const u = data[r * nb * 32 + c];
          q = u >= 128 ? u - 256 : u;
        } else {
          const byte = data[r * nb * 16 + b * 16 + (j % 16)];
          q = (j < 16 ? byte & 15 : byte >> 4) - 8;
        }
        out[r * cols + c] = d * q;
      }
    }
  }
  return out;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Reads every tensor of a safetensors file, dequantizing Strata q8/q4 tensors. */
async function loadSafetensors(
  path: string,
  into: Map<string, RefTensor>,
): Promise<void> {
  const f = await SafetensorsFile.open(path);
  try {
    const quant: Record<
      string,
      { type: string; shape: [number, number] }
    > = JSON.parse(
      f.metadata["strata.quant"] ?? "{}",
    );
    for (const [name, info] of f.tensors) {
      if (name.endsWith(".scales") && quant[name.slice(0, -".scales".length)]) {
        continue;
      }
      const bytes = await f.read(name);
      const q = quant[name];
      if (q && q.type !== "q8" && q.type !== "q4") {
        // GGUF block encodings (q4k, q6k, ...: scales inline) decode with
        // lib/quant/ggml_blocks.ts, which tests/quant/ggml_blocks_test.ts
        // proves bit-identical to ggml's own dequantizer on llama.cpp's bytes
        into.set(
          name,
          encoding(q.type).decode({ data: bytes }, q.shape[0], q.shape[1]),
        );
      } else if (q) {
        const scales = refDecode(
          await f.read(name + ".scales"),
          "F16",
          name + ".scales",
        );
        into.set(
          name,
          refDequant(
            q.type as "q8" | "q4",
            bytes,
            scales,
            q.shape[0],
            q.shape[1],
          ),
        );
      } else {
        into.set(name, refDecode(bytes, info.dtype, `${path}: ${name}`));
      }
    }
  } finally {
    f.close();
  }
}

/**
 * Loads a model for the reference from a Hugging Face checkpoint directory
 * (config.json + model.safetensors or model.safetensors.index.json) or a
 * Strata shard directory (manifest.json; q8/q4 tensors dequantized).
 * Everything is held in memory as float64: tiny models only.
 */
export async function loadReferenceModel(
  dir: string,
): Promise<{ config: ModelConfig; weights: Map<string, RefTensor> }> {
  const weights = new Map<string, RefTensor>();
  const j = (p: string) => `${dir}/${p}`;
  if (await exists(j("manifest.json"))) {
    const man = JSON.parse(await Deno.readTextFile(j("manifest.json")));
    const config: ModelConfig = man.config ??
      normalizeConfig(
        JSON.parse(await Deno.readTextFile(j("config.json"))),
        j("config.json"),
      );
    for (const p of [man.embed, man.head, ...man.layers] as string[]) {
      await loadSafetensors(j(p), weights);
    }
    return { config, weights };
  }
  const config = normalizeConfig(
    JSON.parse(await Deno.readTextFile(j("config.json"))),
    j("config.json"),
  );
  if (await exists(j("model.safetensors.index.json"))) {
    const idx = JSON.parse(
      await Deno.readTextFile(j("model.safetensors.index.json")),
    );
    const files = [
      ...new Set(Object.values(idx.weight_map as Record<string, string>)),
    ];
    for (const f of files) await loadSafetensors(j(f), weights);
  } else {
    await loadSafetensors(j("model.safetensors"), weights);
  }
  return { config, weights };
}
