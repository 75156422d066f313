// Checks the float64 reference forward pass against independent truth: the
// real stories260K model (llama2.c format) must reproduce llama2.c's published
// greedy output. The .bin is parsed here directly, and wq/wk are permuted from
// llama2.c's interleaved-pair RoPE layout to Hugging Face's rotate-half layout.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { normalizeConfig } from "../../lib/model/config.ts";
import {
  argmax,
  ReferenceModel,
  type RefTensor,
} from "../reference/forward.ts";

const DIR = fileURLToPath(
  new URL("../../../shared/models/stories260K/", import.meta.url),
);

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

const present = await exists(DIR + "stories260K.bin");
if (!present) console.log(`reference_stories_test: skipped, ${DIR} is absent`);

interface Llama2c {
  dim: number;
  hidden: number;
  nLayers: number;
  nHeads: number;
  nKv: number;
  vocab: number;
  seqLen: number;
  weights: Map<string, RefTensor>;
}

/**
 * llama2.c row permutation undone per head: llama2.c rotates adjacent pairs
 * (2i, 2i+1); HF rotate-half rotates (i, i + hd/2). hf_row[s*hd/2 + i] = l2c_row[2i + s].
 */
function toRotateHalf(
  w: Float32Array,
  heads: number,
  hd: number,
  cols: number,
): Float32Array {
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < hd / 2; i++) {
      for (let s = 0; s < 2; s++) {
        const src = (h * hd + 2 * i + s) * cols;
        const dst = (h * hd + s * (hd / 2) + i) * cols;
        out.set(w.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

function parseLlama2c(buf: Uint8Array): Llama2c {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const h = Array.from({ length: 7 }, (_, i) => dv.getInt32(i * 4, true));
  const [dim, hidden, nLayers, nHeads, nKv, vocabSigned, seqLen] = h;
  const vocab = Math.abs(vocabSigned);
  const hs = dim / nHeads, kv = nKv * hs;
  const f = new Float32Array(buf.slice(28).buffer);
  let off = 0;
  const take = (n: number) => {
    const t = f.subarray(off, off + n);
    off += n;
    return t;
  };
  const w = new Map<string, RefTensor>();
  w.set("model.embed_tokens.weight", take(vocab * dim));
  const rmsAtt = take(nLayers * dim);
  const wq = take(nLayers * dim * dim);
  const wk = take(nLayers * kv * dim);
  const wv = take(nLayers * kv * dim);
  const wo = take(nLayers * dim * dim);
  const rmsFfn = take(nLayers * dim);
  const w1 = take(nLayers * hidden * dim);
  const w2 = take(nLayers * dim * hidden);
  const w3 = take(nLayers * hidden * dim);
  w.set("model.norm.weight", take(dim));
  take(seqLen * hs / 2); // freq_cis_real
  take(seqLen * hs / 2); // freq_cis_imag
  if (vocabSigned < 0) w.set("lm_head.weight", take(vocab * dim));
  assert.equal(off, f.length, "llama2.c layout consumes the file exactly");
  const sl = (a: Float32Array, l: number, n: number) =>
    a.subarray(l * n, (l + 1) * n);
  for (let l = 0; l < nLayers; l++) {
    const p = `model.layers.${l}.`;
    w.set(p + "input_layernorm.weight", sl(rmsAtt, l, dim));
    w.set(
      p + "self_attn.q_proj.weight",
      toRotateHalf(sl(wq, l, dim * dim), nHeads, hs, dim),
    );
    w.set(
      p + "self_attn.k_proj.weight",
      toRotateHalf(sl(wk, l, kv * dim), nKv, hs, dim),
    );
    w.set(p + "self_attn.v_proj.weight", sl(wv, l, kv * dim));
    w.set(p + "self_attn.o_proj.weight", sl(wo, l, dim * dim));
    w.set(p + "post_attention_layernorm.weight", sl(rmsFfn, l, dim));
    w.set(p + "mlp.gate_proj.weight", sl(w1, l, hidden * dim));
    w.set(p + "mlp.down_proj.weight", sl(w2, l, dim * hidden));
    w.set(p + "mlp.up_proj.weight", sl(w3, l, hidden * dim));
  }
  return { dim, hidden, nLayers, nHeads, nKv, vocab, seqLen, weights: w };
}

/** tok512.bin pieces: int32 max_len, then per token f32 score, i32 len, bytes. */
function parseTokenizer(buf: Uint8Array, vocab: number): Uint8Array[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 4;
  const pieces: Uint8Array[] = [];
  for (let i = 0; i < vocab; i++) {
    off += 4; // score
    const len = dv.getInt32(off, true);
    off += 4;
    pieces.push(buf.subarray(off, off + len));
    off += len;
  }
  assert.equal(off, buf.length);
  return pieces;
}

/** llama2.c decode: drop the leading space after BOS; `<0xHH>` is a raw byte. */
function decode(pieces: Uint8Array[], ids: number[], prev: number): string {
  const bytes: number[] = [];
  const td = new TextDecoder();
  for (const id of ids) {
    let piece = pieces[id];
    if (prev === 1 && piece[0] === 0x20) piece = piece.subarray(1);
    const m = /^<0x([0-9A-F]{2})>$/.exec(td.decode(piece));
    if (m) bytes.push(parseInt(m[1], 16));
    else bytes.push(...piece);
    prev = id;
  }
  return td.decode(new Uint8Array(bytes));
}

Deno.test({
  name: "reference forward reproduces llama2.c's greedy stories260K output",
  ignore: !present,
  fn: async () => {
    const m = parseLlama2c(await Deno.readFile(DIR + "stories260K.bin"));
    assert.deepEqual([m.dim, m.hidden, m.nLayers, m.nHeads, m.nKv, m.vocab], [
      64,
      172,
      5,
      8,
      4,
      512,
    ]);
    const cfg = normalizeConfig({
      model_type: "llama",
      hidden_size: m.dim,
      intermediate_size: m.hidden,
      num_hidden_layers: m.nLayers,
      num_attention_heads: m.nHeads,
      num_key_value_heads: m.nKv,
      vocab_size: m.vocab,
      max_position_embeddings: m.seqLen,
      rms_norm_eps: 1e-5, // hard-coded in llama2.c's run.c
      rope_theta: 10000,
      tie_word_embeddings: true,
      bos_token_id: 1,
      eos_token_id: 2,
    }, "stories260K.bin");
    const pieces = parseTokenizer(
      await Deno.readFile(DIR + "tok512.bin"),
      m.vocab,
    );
    const expected =
      (await Deno.readTextFile(DIR + "expected_greedy_t0_256steps.txt"))
        .trimEnd();

    // llama2.c `run -t 0 -n 256`: 256 forward passes from BOS, each printing the
    // greedy next token, stopping early on BOS.
    const model = new ReferenceModel(m.weights, cfg);
    const ids: number[] = [];
    let token = 1;
    for (let pos = 0; pos < 256; pos++) {
      const next = argmax(model.step(token));
      if (next === 1) break;
      ids.push(next);
      token = next;
    }
    const text = decode(pieces, ids, 1);
    assert.equal(ids.length, 256);
    // the published text is exactly llama2.c's output (its trailing newline is run.c's final printf)
    assert.equal(text, expected);
  },
});
