// GGUF reader and GGUF model source.
// Independent truths used here: the facts of FORMATS.md measured on the real
// files (offsets, counts), llama2.c's stories260K checkpoint (the same weights),
// llama2.c's published greedy output, and block layouts written from the GGUF
// definitions (FORMATS.md §2.4) rather than from lib/.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "@huggingface/tokenizers";
import { FormatError, UnsupportedError } from "../../lib/errors.ts";
import { GgufFile } from "../../lib/format/gguf.ts";
import { openGgufSource } from "../../lib/split/source_gguf.ts";
import { openLlama2cSource } from "../../lib/split/source_llama2c.ts";
import { normalizeConfig } from "../../lib/model/config.ts";
import { ropeInvFreq } from "../../lib/model/rope.ts";
import { encoding } from "../../lib/quant/encoding.ts";
import { quantizeQ4 } from "../../lib/quant/q4.ts";
import { quantizeQ8 } from "../../lib/quant/q8.ts";
import type { ModelSource, TensorData } from "../../lib/split/source.ts";
import { hfTensorName, unpermuteRows } from "../../lib/split/source_gguf.ts";
import { type KV, type TensorSpec, writeGguf } from "./_gguf_writer.ts";
import {
  argmax,
  refDecode,
  refDequant,
  ReferenceModel,
} from "../reference/forward.ts";

const SHARED = fileURLToPath(new URL("../../../shared/", import.meta.url));
const STORIES_GGUF = SHARED + "models/gguf/stories260K.gguf";
const TINY_GGUF = SHARED + "models/gguf/llama-2-tiny-random.gguf";
const STORIES_BIN = SHARED + "models/stories260K/stories260K.bin";
const TOK512 = SHARED + "models/stories260K/tok512.bin";
const EXPECTED = SHARED + "models/stories260K/expected_greedy_t0_256steps.txt";
const LLAMA2_TOKENIZER = SHARED + "tokenizers/llama2/tokenizer.json";

const present = await Deno.stat(STORIES_GGUF).then(() => true, () => false);
if (!present) {
  console.log(`gguf_test: real-file tests skipped, ${SHARED} is absent`);
}

function f32Bytes(a: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Float32Array.from(a).buffer);
}

/** number → IEEE half bits (round to nearest; values used here are exact in f16). */
function toF16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0];
  const s = (u >>> 16) & 0x8000,
    e = ((u >>> 23) & 255) - 127 + 15,
    m = (u >>> 13) & 0x3ff;
  if (x === 0) return s;
  assert.ok(e > 0 && e < 31, "test value out of f16 normal range");
  return s | (e << 10) | m;
}

function spmVocab(): KV[] {
  const bytes = Array.from(
    { length: 256 },
    (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`,
  );
  const tokens = ["<unk>", "<s>", "</s>", ...bytes, "▁", "a", "b", "▁a"];
  return [
    ["tokenizer.ggml.model", "str", "llama"],
    ["tokenizer.ggml.tokens", "strs", tokens],
    ["tokenizer.ggml.scores", "f32s", tokens.map((_, i) => (i < 259 ? 0 : -i))],
    [
      "tokenizer.ggml.token_type",
      "i32s",
      tokens.map((_, i) => (i === 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1)),
    ],
  ];
}

function llamaKvs(
  arch: string,
  o: { dim: number; heads: number; kv: number; ff: number; layers: number },
): KV[] {
  return [
    ["general.architecture", "str", arch],
    [`${arch}.embedding_length`, "u32", o.dim],
    [`${arch}.attention.head_count`, "u32", o.heads],
    [`${arch}.attention.head_count_kv`, "u32", o.kv],
    [`${arch}.feed_forward_length`, "u32", o.ff],
    [`${arch}.block_count`, "u32", o.layers],
    [`${arch}.context_length`, "u32", 128],
    [`${arch}.attention.layer_norm_rms_epsilon`, "f32", 1e-6],
    ...spmVocab(),
  ];
}

async function withTemp<T>(
  bytes: Uint8Array,
  fn: (path: string) => Promise<T>,
): Promise<T> {
  const path = await Deno.makeTempFile({ suffix: ".gguf" });
  try {
    await Deno.writeFile(path, bytes);
    return await fn(path);
  } finally {
    await Deno.remove(path);
  }
}

function floats(t: TensorData): Float64Array {
  if ("data" in t && t.dtype !== "q8" && t.dtype !== "q4") {
    // GGUF blocks kept as in the file: the CPU decoder (tests/quant/ggml_blocks_test.ts)
    return Float64Array.from(
      encoding(t.dtype).decode(
        {
          data: new Uint8Array(
            t.data.buffer,
            t.data.byteOffset,
            t.data.byteLength,
          ),
        },
        t.shape[0],
        t.shape[1],
      ),
    );
  }
  if ("data" in t) {
    const scales = Float64Array.from(
      t.scales,
      (h) =>
        refDecode(new Uint8Array(new Uint16Array([h]).buffer), "F16", "s")[0],
    );
    return refDequant(
      t.dtype as "q8" | "q4",
      new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
      scales,
      t.shape[0],
      t.shape[1],
    );
  }
  return refDecode(t.bytes, t.dtype, "t");
}

// ---------------------------------------------------------------------------
// Real files

Deno.test({
  name: "gguf: stories260K.gguf header facts (FORMATS.md §2.1)",
  ignore: !present,
  fn: async () => {
    const g = await GgufFile.open(STORIES_GGUF);
    try {
      assert.equal(g.version, 3);
      assert.equal(g.tensors.size, 48);
      assert.equal(g.metadata.size, 19);
      assert.equal(g.dataStart, 14176);
      const last = [...g.tensors.values()].reduce((
        a,
        b,
      ) => (b.offset > a.offset ? b : a));
      assert.equal(last.offset + last.byteLength, 1185376);
      assert.deepEqual(g.info("token_embd.weight").dims, [64, 512]);
      assert.deepEqual(g.info("token_embd.weight").shape, [512, 64]);
      assert.deepEqual(g.info("blk.0.ffn_down.weight").shape, [64, 172]);
      assert.equal(g.getString("tokenizer.ggml.model"), "llama");
    } finally {
      g.close();
    }
  },
});

async function hfWeights(src: ModelSource): Promise<Map<string, Float64Array>> {
  const w = new Map<string, Float64Array>();
  for (const t of src.tensors) w.set(t.name, floats(await t.read()));
  return w;
}

Deno.test({
  name:
    "gguf: stories260K.gguf and stories260K.bin give identical HF tensors and tokenizer",
  ignore: !present,
  fn: async () => {
    const a = await openGgufSource(STORIES_GGUF);
    const b = await openLlama2cSource(STORIES_BIN, { tokenizer: TOK512 });
    try {
      assert.equal(a.kind, "gguf");
      const bm = new Map(b.tensors.map((t) => [t.name, t]));
      assert.equal(a.tensors.length, 48);
      assert.equal(b.tensors.length, 47); // shared classifier: no lm_head
      for (const t of a.tensors) {
        // the GGUF stores output.weight as a copy of the tied embedding
        const u = bm.get(
          t.name === "lm_head.weight" ? "model.embed_tokens.weight" : t.name,
        );
        assert.ok(u, `llama2.c source lacks ${t.name}`);
        assert.deepEqual(t.shape, u.shape, t.name);
        const x = await t.read(), y = await u.read();
        assert.ok(x.dtype === "F32" && y.dtype === "F32");
        assert.deepEqual(x.bytes, y.bytes, t.name);
      }
      for (
        const k of [
          "hidden_size",
          "intermediate_size",
          "num_hidden_layers",
          "num_attention_heads",
          "num_key_value_heads",
          "vocab_size",
          "rms_norm_eps",
          "rope_theta",
        ]
      ) {
        assert.equal(a.config[k], b.config[k], k);
      }
      assert.equal(a.config.tie_word_embeddings, false);
      assert.equal(b.config.tie_word_embeddings, true);
      assert.equal(a.files["tokenizer.json"], b.files["tokenizer.json"]);
    } finally {
      a.close();
      b.close();
    }
  },
});

Deno.test({
  name:
    "gguf: stories260K.gguf through the float64 reference reproduces llama2.c's greedy text",
  ignore: !present,
  fn: async () => {
    const src = await openGgufSource(STORIES_GGUF);
    try {
      const cfg = normalizeConfig(src.config, STORIES_GGUF);
      const model = new ReferenceModel(await hfWeights(src), cfg);
      const ids: number[] = [];
      let token = 1;
      for (let pos = 0; pos < 256; pos++) {
        const next = argmax(model.step(token));
        if (next === 1) break;
        ids.push(next);
        token = next;
      }
      const tok = new Tokenizer(
        JSON.parse(src.files["tokenizer.json"]),
        JSON.parse(src.files["tokenizer_config.json"]),
      );
      const text = tok.decode(ids, { skip_special_tokens: true });
      assert.equal(text, (await Deno.readTextFile(EXPECTED)).trimEnd());
    } finally {
      src.close();
    }
  },
});

Deno.test({
  name:
    "gguf: llama-2-tiny-random.gguf (F16) config, shapes and the Llama-2 tokenizer",
  ignore: !present,
  fn: async () => {
    const src = await openGgufSource(TINY_GGUF);
    try {
      const c = src.config;
      assert.equal(c.model_type, "llama");
      assert.deepEqual([
        c.hidden_size,
        c.num_hidden_layers,
        c.num_attention_heads,
        c.num_key_value_heads,
        c.intermediate_size,
        c.vocab_size,
      ], [8, 1, 2, 2, 32, 32000]);
      assert.equal(c.max_position_embeddings, 4096);
      assert.equal(c.tie_word_embeddings, false);
      normalizeConfig(c, TINY_GGUF);
      const byName = new Map(src.tensors.map((t) => [t.name, t]));
      assert.equal(byName.get("model.embed_tokens.weight")?.dtype, "F16");
      assert.deepEqual(byName.get("model.embed_tokens.weight")?.shape, [
        32000,
        8,
      ]);
      assert.deepEqual(
        byName.get("model.layers.0.mlp.down_proj.weight")?.shape,
        [8, 32],
      );
      assert.equal(
        byName.get("model.layers.0.input_layernorm.weight")?.dtype,
        "F32",
      );
      const q = await byName.get("model.layers.0.self_attn.q_proj.weight")!
        .read();
      assert.equal(q.dtype, "F16");
      // the Llama-2 tokenizer.json built from GGUF metadata equals the real one
      // (except id 31353, empty in the real file, U+2028 in the GGUF)
      const mine = JSON.parse(src.files["tokenizer.json"]);
      const real = JSON.parse(await Deno.readTextFile(LLAMA2_TOKENIZER));
      assert.deepEqual(mine.model.merges, real.model.merges);
      for (
        const k of [
          "normalizer",
          "pre_tokenizer",
          "post_processor",
          "decoder",
          "added_tokens",
        ]
      ) {
        assert.deepEqual(mine[k], real[k], k);
      }
      const realVocab = { ...real.model.vocab };
      const mineVocab = { ...mine.model.vocab };
      delete realVocab[""];
      delete mineVocab["\u2028"];
      assert.deepEqual(mineVocab, realVocab);
      const cfg = JSON.parse(src.files["tokenizer_config.json"]);
      assert.equal(cfg.add_bos_token, true);
      assert.equal(cfg.bos_token, "<s>");
      assert.equal(cfg.eos_token, "</s>");
    } finally {
      src.close();
    }
  },
});

// ---------------------------------------------------------------------------
// Synthetic files

/** numpy reference of the undo: reshape [h, hd/2, 2, cols] → swapaxes(1, 2) → [h, 2, hd/2, cols]. */
function undoByReshape(
  w: Float64Array,
  h: number,
  hd: number,
  cols: number,
): Float64Array {
  const out = new Float64Array(w.length);
  for (let a = 0; a < h; a++) {
    for (let b = 0; b < 2; b++) {
      for (let c = 0; c < hd / 2; c++) {
        for (let k = 0; k < cols; k++) {
          // out[a, b, c, k] = in[a, c, b, k]
          out[((a * 2 + b) * (hd / 2) + c) * cols + k] =
            w[((a * (hd / 2) + c) * 2 + b) * cols + k];
        }
      }
    }
  }
  return out;
}

Deno.test("gguf: unpermuteRows equals numpy's reshape/swapaxes undo", () => {
  const h = 3, hd = 6, cols = 5;
  const w = Float64Array.from({ length: h * hd * cols }, (_, i) => i);
  const got = new Float64Array(
    unpermuteRows(new Uint8Array(w.buffer), cols * 8, h).buffer,
  );
  assert.deepEqual(got, undoByReshape(w, h, hd, cols));
});

Deno.test("gguf: hfTensorName maps llama names (FORMATS.md §2.6)", () => {
  assert.equal(hfTensorName("token_embd.weight"), "model.embed_tokens.weight");
  assert.equal(hfTensorName("output.weight"), "lm_head.weight");
  assert.equal(hfTensorName("output_norm.weight"), "model.norm.weight");
  assert.equal(
    hfTensorName("blk.2.attn_output.weight"),
    "model.layers.2.self_attn.o_proj.weight",
  );
  assert.equal(
    hfTensorName("blk.0.ffn_norm.weight"),
    "model.layers.0.post_attention_layernorm.weight",
  );
  assert.equal(
    hfTensorName("blk.0.attn_q.bias"),
    "model.layers.0.self_attn.q_proj.bias",
  );
  assert.equal(hfTensorName("blk.0.something"), null);
});

/** Q8_0 / Q4_0 blocks written from FORMATS.md §2.4, with the values they encode. */
function quantBlocks(
  type: "Q8_0" | "Q4_0",
  rows: number,
  cols: number,
  seed: number,
) {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const nb = cols / 32;
  const bytes: number[] = [];
  const values = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < nb; b++) {
      const d = (1 + Math.floor(rnd() * 64)) / 256; // exact in f16
      const h = toF16(d);
      bytes.push(h & 255, h >> 8);
      if (type === "Q8_0") {
        for (let j = 0; j < 32; j++) {
          const q = Math.floor(rnd() * 255) - 127;
          bytes.push(q & 255);
          values[r * cols + b * 32 + j] = d * q;
        }
      } else {
        const q = Array.from({ length: 32 }, () => Math.floor(rnd() * 16));
        for (let j = 0; j < 16; j++) bytes.push(q[j] | (q[j + 16] << 4));
        q.forEach((v, j) => (values[r * cols + b * 32 + j] = d * (v - 8)));
      }
    }
  }
  return { data: new Uint8Array(bytes), values };
}

Deno.test("gguf: Q8_0 / Q4_0 repack into q8 / q4 without dequantizing; llama Q/K rows unpermuted", async () => {
  const dim = 64, heads = 2, kv = 1, hd = 32, ff = 64;
  const q = quantBlocks("Q8_0", dim, dim, 1); // attn_q: dims [dim, heads*hd]
  const k = quantBlocks("Q4_0", kv * hd, dim, 2);
  const up = quantBlocks("Q4_0", ff, dim, 3);
  const norm = f32Bytes(Array.from({ length: dim }, (_, i) => i / 8));
  const bytes = writeGguf(
    llamaKvs("llama", { dim, heads, kv, ff, layers: 1 }),
    [
      { name: "blk.0.attn_q.weight", dims: [dim, dim], type: 8, data: q.data },
      {
        name: "blk.0.attn_k.weight",
        dims: [dim, kv * hd],
        type: 2,
        data: k.data,
      },
      { name: "blk.0.ffn_up.weight", dims: [dim, ff], type: 2, data: up.data },
      { name: "blk.0.attn_norm.weight", dims: [dim], type: 0, data: norm },
    ],
  );
  await withTemp(bytes, async (path) => {
    const src = await openGgufSource(path);
    try {
      const t = new Map(src.tensors.map((x) => [x.name, x]));
      const qt = t.get("model.layers.0.self_attn.q_proj.weight")!;
      assert.equal(qt.dtype, "q8");
      assert.deepEqual(qt.shape, [dim, dim]);
      assert.equal(qt.byteLength, dim * 2 * 32 + dim * 2 * 2);
      assert.deepEqual(
        floats(await qt.read()),
        undoByReshape(q.values, heads, hd, dim),
      );
      const kt = t.get("model.layers.0.self_attn.k_proj.weight")!;
      assert.equal(kt.dtype, "q4");
      assert.deepEqual(
        floats(await kt.read()),
        undoByReshape(k.values, kv, hd, dim),
      );
      const ut = t.get("model.layers.0.mlp.up_proj.weight")!;
      assert.deepEqual(ut.shape, [ff, dim]);
      assert.deepEqual(floats(await ut.read()), up.values); // not permuted
      const nt = await t.get("model.layers.0.input_layernorm.weight")!.read();
      assert.deepEqual(nt, { dtype: "F32", bytes: norm });
      assert.equal(src.config.tie_word_embeddings, true);
      assert.equal(src.config.rms_norm_eps, 1e-6);
    } finally {
      src.close();
    }
  });
});

Deno.test("gguf: qwen2 Q/K rows are not permuted; qwen2 has q/k/v bias", async () => {
  const dim = 32, ff = 32;
  const w = Float32Array.from({ length: dim * dim }, (_, i) => i);
  const bytes = writeGguf(
    llamaKvs("qwen2", { dim, heads: 2, kv: 2, ff, layers: 1 }),
    [
      {
        name: "blk.0.attn_q.weight",
        dims: [dim, dim],
        type: 0,
        data: new Uint8Array(w.buffer),
      },
    ],
  );
  await withTemp(bytes, async (path) => {
    const src = await openGgufSource(path);
    try {
      assert.equal(src.config.model_type, "qwen2");
      assert.equal(src.config.attention_bias, true);
      const r = await src.tensors[0].read();
      assert.ok(r.dtype === "F32");
      assert.deepEqual(r.bytes, new Uint8Array(w.buffer));
    } finally {
      src.close();
    }
  });
});

Deno.test("gguf: a file without a vocabulary converts without tokenizer files", async () => {
  const kvs = llamaKvs("llama", { dim: 32, heads: 1, kv: 1, ff: 32, layers: 1 })
    .filter(([k]) => !k.startsWith("tokenizer."));
  // no vocabulary and no token_embd: the vocab size is unknown
  await withTemp(writeGguf(kvs, []), async (path) => {
    await assert.rejects(
      openGgufSource(path),
      (e: Error) =>
        e instanceof FormatError && /vocabulary size/.test(e.message),
    );
  });
  const withEmbd = writeGguf(kvs, [{
    name: "token_embd.weight",
    dims: [32, 3],
    type: 0,
    data: new Uint8Array(32 * 3 * 4),
  }]);
  await withTemp(withEmbd, async (path) => {
    const src = await openGgufSource(path);
    try {
      assert.deepEqual(src.files, {});
      assert.equal(src.config.vocab_size, 3);
    } finally {
      src.close();
    }
  });
});

Deno.test("gguf: unsupported architecture and tensor type give UnsupportedError", async () => {
  const falcon = writeGguf(
    llamaKvs("falcon", { dim: 32, heads: 1, kv: 1, ff: 32, layers: 1 }),
    [],
  );
  await withTemp(falcon, async (path) => {
    await assert.rejects(
      openGgufSource(path),
      (e: Error) =>
        e instanceof UnsupportedError &&
        /unsupported architecture falcon \(Strata runs GGUF files of llama, qwen2, qwen3, chatglm, glm4, qwen2moe, qwen3moe\)$/
          .test(e.message),
    );
  });
  const iq2 = writeGguf(
    llamaKvs("llama", { dim: 256, heads: 1, kv: 1, ff: 32, layers: 1 }),
    [
      {
        name: "blk.0.ffn_up.weight",
        dims: [256, 1],
        type: 17, // IQ2_XS
        data: new Uint8Array(74),
      },
    ],
  );
  await withTemp(iq2, async (path) => {
    await assert.rejects(
      openGgufSource(path),
      (e: Error) =>
        e instanceof UnsupportedError && !e.message.includes("\n") &&
        /unsupported tensor type IQ2_XS \(tensor blk\.0\.ffn_up\.weight\); Strata reads GGUF tensors in .*Q4_K.*: requantize the file to one of them/
          .test(e.message),
    );
  });
});

Deno.test("gguf: llama3 rope_freqs.weight becomes rope_scaling llama3", async () => {
  // factors from the Llama-3.1 formula: factor 8, low 1, high 4, original 8192, theta 500000
  const dim = 64, heads = 1, hd = 64, theta = 500000;
  const factors = Array.from({ length: hd / 2 }, (_, i) => {
    const wavelen = 2 * Math.PI / Math.pow(theta, -(2 * i) / hd);
    if (wavelen < 8192 / 4) return 1;
    if (wavelen > 8192 / 1) return 8;
    const s = (8192 / wavelen - 1) / (4 - 1);
    return 1 / ((1 - s) / 8 + s);
  });
  const kvs: KV[] = [
    ...llamaKvs("llama", { dim, heads, kv: 1, ff: 32, layers: 1 }),
    ["llama.rope.freq_base", "f32", theta],
  ];
  const bytes = writeGguf(kvs, [{
    name: "rope_freqs.weight",
    dims: [hd / 2],
    type: 0,
    data: f32Bytes(factors),
  }]);
  await withTemp(bytes, async (path) => {
    const src = await openGgufSource(path);
    try {
      const rs = src.config.rope_scaling as Record<string, number>;
      assert.equal(rs.factor, 8);
      // any original_max_position_embeddings expresses the same line: check the thresholds in wavelength
      const orig = rs.original_max_position_embeddings;
      assert.ok(Math.abs(orig / rs.low_freq_factor - 8192) < 1e-3 * 8192);
      assert.ok(Math.abs(orig / rs.high_freq_factor - 2048) < 1e-3 * 2048);
      assert.ok(!src.tensors.some((t) => t.name.includes("rope_freqs")));
      // the engine's llama3 inverse frequencies equal theta^(-2i/hd) / factor_i
      const inv = ropeInvFreq(normalizeConfig(src.config, path));
      inv.forEach((f, i) => {
        const want = Math.pow(theta, -(2 * i) / hd) / factors[i];
        assert.ok(
          Math.abs(f - want) <= 1e-6 * want,
          `pair ${i}: ${f} vs ${want}`,
        );
      });
    } finally {
      src.close();
    }
  });
});

// ---------------------------------------------------------------------------
// Corrupted inputs: every one must be a FormatError (validated before allocating).

async function rejectsFormat(bytes: Uint8Array, re: RegExp) {
  await withTemp(bytes, async (path) => {
    await assert.rejects(GgufFile.open(path), (e: Error) => {
      assert.ok(e instanceof FormatError, `expected FormatError, got ${e}`);
      assert.match(e.message, re);
      assert.ok(e.message.startsWith(path), "message names the file");
      return true;
    });
  });
}

function patchU64(b: Uint8Array, at: number, v: bigint): Uint8Array {
  const c = b.slice();
  new DataView(c.buffer).setBigUint64(at, v, true);
  return c;
}

Deno.test("gguf: corrupted headers are FormatErrors", async () => {
  const good = writeGguf([["general.architecture", "str", "llama"], [
    "x.list",
    "strs",
    ["a", "bb"],
  ]], [
    {
      name: "t",
      dims: [4, 2],
      type: 0,
      data: f32Bytes([1, 2, 3, 4, 5, 6, 7, 8]),
    },
  ]);
  GgufFile.parseBytes(good); // sanity: the untouched file parses
  await rejectsFormat(good.slice(0, 20), /too short/);
  await rejectsFormat(good.slice(0, good.length - 4), /run past the end/);
  await rejectsFormat(good.slice(0, 60), /past the end|cannot fit/);
  const magic = good.slice();
  magic[0] = 0x47 + 1;
  await rejectsFormat(magic, /bad magic/);
  const v1 = good.slice();
  v1[4] = 1;
  await rejectsFormat(v1, /version 1/);
  const v9 = good.slice();
  v9[4] = 9;
  await rejectsFormat(v9, /unknown GGUF version 9/);
  await rejectsFormat(
    patchU64(good, 8, 1n << 40n),
    /tensor count .* cannot fit/,
  );
  await rejectsFormat(
    patchU64(good, 16, 1n << 40n),
    /metadata count .* cannot fit/,
  );
  await rejectsFormat(patchU64(good, 16, 1n << 62n), /too large|cannot fit/);
  // first key's length (at 24) past EOF
  await rejectsFormat(
    patchU64(good, 24, 1n << 30n),
    /length .* runs past the end/,
  );
  // string value length of general.architecture: key "general.architecture" (20 bytes) at 32..52, type at 52, value len at 56
  await rejectsFormat(
    patchU64(good, 56, 100000n),
    /length 100000 .* runs past the end/,
  );
  // unknown value type
  const vt = good.slice();
  new DataView(vt.buffer).setUint32(52, 77, true);
  await rejectsFormat(vt, /unknown value type 77/);
  // array count too large: x.list key at 69 (8 + 6), type 83, elem type 87, count 91
  await rejectsFormat(patchU64(good, 91, 1n << 40n), /array of .* cannot fit/);
});

Deno.test("gguf: bad tensor infos are FormatErrors", async () => {
  const t = (over: Partial<TensorSpec>[]) =>
    writeGguf(
      [],
      over.map((o, i) => ({
        name: `t${i}`,
        dims: [8],
        type: 0,
        data: new Uint8Array(32),
        ...o,
      })),
    );
  await rejectsFormat(t([{ dims: [8, 1, 1, 1, 1] }]), /5 dims/);
  await rejectsFormat(t([{ type: 4 }]), /unknown ggml type 4/);
  await rejectsFormat(
    t([{ type: 8, dims: [16] }]),
    /not a multiple of the Q8_0 block size/,
  );
  await rejectsFormat(t([{ name: "x".repeat(64) }]), /length 64 exceeds 63/);
  await rejectsFormat(
    t([{ name: "a" }, { name: "a" }]),
    /duplicate tensor name/,
  );
  // a tensor whose range runs past EOF: declare 16 floats but store 8
  const big = t([{ dims: [16], data: new Uint8Array(32) }]);
  await rejectsFormat(big, /run past the end of the file/);
  // offsets must follow tensor-info order (patch the second offset)
  const two = t([{}, {}]);
  const g = GgufFile.parseBytes(two);
  assert.equal(g.tensors.size, 2);
  const dataStart = two.length - 64;
  // second tensor info ends 8 bytes before dataStart's padding; find its offset field by scanning for value 32
  const dv = new DataView(two.buffer);
  let at = -1;
  for (let p = dataStart - 8; p > 24; p--) {
    if (dv.getBigUint64(p, true) === 32n) {
      at = p;
      break;
    }
  }
  assert.ok(at > 0);
  await rejectsFormat(patchU64(two, at, 64n), /should be 32|past the end/);
  // duplicate metadata keys, non power-of-two alignment
  await rejectsFormat(
    writeGguf([["a", "u32", 1], ["a", "u32", 2]], []),
    /duplicate metadata key/,
  );
  await rejectsFormat(
    writeGguf([["general.alignment", "u32", 24]], []),
    /not a power of two/,
  );
});

Deno.test({
  name:
    "gguf: a Q8_0 / Q4_0 stories260K gives the q8 / q4 of the HF-layout F32 tensors (rows moved, not requantized)",
  ignore: !present,
  fn: async () => {
    const g = await GgufFile.open(STORIES_GGUF);
    const ref = await openLlama2cSource(STORIES_BIN, { tokenizer: TOK512 });
    try {
      const refT = new Map(ref.tensors.map((t) => [t.name, t]));
      const kvs: KV[] = [];
      for (const [k, e] of g.metadata) {
        if (typeof e.value === "string") kvs.push([k, "str", e.value]);
        else if (typeof e.value === "number" && e.type === 6) {
          kvs.push([k, "f32", e.value]);
        } else if (typeof e.value === "number" && e.type === 4) {
          kvs.push([k, "u32", e.value]);
        } else if (Array.isArray(e.value)) {
          kvs.push([k, "strs", e.value as string[]]);
        } else if (e.value instanceof Float32Array) {
          kvs.push([k, "f32s", Array.from(e.value)]);
        } else if (e.value instanceof Int32Array) {
          kvs.push([k, "i32s", Array.from(e.value)]);
        }
      }
      for (const [type, id] of [["q8", 8], ["q4", 2]] as const) {
        const tensors: TensorSpec[] = [];
        for (const t of g.tensors.values()) {
          const data = await g.read(t.name);
          if (
            t.dims.length !== 2 || t.dims[0] % 32 !== 0 ||
            t.name === "output.weight"
          ) {
            tensors.push({ name: t.name, dims: [...t.dims], type: 0, data });
            continue;
          }
          const [cols, rows] = t.dims;
          const q = (type === "q8" ? quantizeQ8 : quantizeQ4)(
            new Float32Array(data.slice().buffer),
            rows,
            cols,
          );
          const qb = type === "q8" ? 32 : 16, nb = cols / 32;
          const qd = new Uint8Array(
            q.data.buffer,
            q.data.byteOffset,
            q.data.byteLength,
          );
          const blocks = new Uint8Array(rows * nb * (qb + 2));
          for (let b = 0; b < rows * nb; b++) {
            blocks[b * (qb + 2)] = q.scales[b] & 255;
            blocks[b * (qb + 2) + 1] = q.scales[b] >> 8;
            blocks.set(qd.subarray(b * qb, (b + 1) * qb), b * (qb + 2) + 2);
          }
          tensors.push({
            name: t.name,
            dims: [...t.dims],
            type: id,
            data: blocks,
          });
        }
        await withTemp(writeGguf(kvs, tensors), async (path) => {
          const src = await openGgufSource(path);
          try {
            let quantized = 0;
            for (const t of src.tensors) {
              if (t.dtype !== type) continue;
              quantized++;
              const got = await t.read();
              const f = await refT.get(t.name)!.read();
              assert.ok(
                f.dtype === "F32" && (got.dtype === "q8" || got.dtype === "q4"),
              );
              const [rows, cols] = t.shape;
              const want = (type === "q8" ? quantizeQ8 : quantizeQ4)(
                new Float32Array(f.bytes.slice().buffer),
                rows,
                cols,
              );
              assert.deepEqual(got.scales, want.scales, t.name);
              assert.deepEqual(
                new Uint8Array(
                  got.data.buffer,
                  got.data.byteOffset,
                  got.data.byteLength,
                ),
                new Uint8Array(
                  want.data.buffer,
                  want.data.byteOffset,
                  want.data.byteLength,
                ),
                t.name,
              );
            }
            assert.equal(quantized, 1 + 5 * 6); // embedding + q,k,v,o,gate,up per layer (down has 172 columns)
          } finally {
            src.close();
          }
        });
      }
    } finally {
      g.close();
      ref.close();
    }
  },
});
