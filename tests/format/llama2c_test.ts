// llama2.c checkpoint and tokenizer reader, and the llama2.c model source.
// Independent truths: llama2.c's run.c (RoPE, encode) written out here from
// FORMATS.md §5, the real stories260K/tok512 files and their GGUF twin.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "@huggingface/tokenizers";
import { FormatError, UsageError } from "../../lib/errors.ts";
import { GgufFile } from "../../lib/format/gguf.ts";
import {
  llama2cLayout,
  parseLlama2cTokenizer,
  readLlama2cCheckpoint,
} from "../../lib/format/llama2c.ts";
import { openLlama2cSource } from "../../lib/split/source_llama2c.ts";
import { normalizeConfig } from "../../lib/model/config.ts";
import { unpermuteRows } from "../../lib/split/source_gguf.ts";
import { argmax, ReferenceModel } from "../reference/forward.ts";

const SHARED = fileURLToPath(new URL("../../../shared/", import.meta.url));
const STORIES_BIN = SHARED + "models/stories260K/stories260K.bin";
const TOK512 = SHARED + "models/stories260K/tok512.bin";
const STORIES_GGUF = SHARED + "models/gguf/stories260K.gguf";

const present = await Deno.stat(STORIES_BIN).then(() => true, () => false);
if (!present) {
  console.log(`llama2c_test: real-file tests skipped, ${SHARED} is absent`);
}

function rng(seed: number) {
  let s = seed >>> 0;
  return () => (s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32 - 0.5;
}

// ---------------------------------------------------------------------------
// RoPE layout conversion

/** run.c: rotate adjacent pairs (2i, 2i+1) of a head by pos·10000^(−2i/hs). */
function ropeInterleaved(x: Float64Array, pos: number): Float64Array {
  const hs = x.length, out = x.slice();
  for (let i = 0; i < hs; i += 2) {
    const a = pos * Math.pow(10000, -i / hs), c = Math.cos(a), s = Math.sin(a);
    out[i] = x[i] * c - x[i + 1] * s;
    out[i + 1] = x[i] * s + x[i + 1] * c;
  }
  return out;
}

/** Hugging Face rotate-half: pairs (i, i + hs/2) by pos·10000^(−2i/hs). */
function ropeRotateHalf(x: Float64Array, pos: number): Float64Array {
  const hs = x.length, h = hs / 2, out = x.slice();
  for (let i = 0; i < h; i++) {
    const a = pos * Math.pow(10000, -(2 * i) / hs),
      c = Math.cos(a),
      s = Math.sin(a);
    out[i] = x[i] * c - x[i + h] * s;
    out[i + h] = x[i + h] * c + x[i] * s;
  }
  return out;
}

/** The row permutation the source applies, on a vector (one element per row). */
function permute(x: Float64Array, heads: number): Float64Array {
  return new Float64Array(
    unpermuteRows(new Uint8Array(x.slice().buffer), 8, heads).buffer,
  );
}

Deno.test("llama2c: interleaved RoPE then the row map equals the row map then rotate-half", () => {
  const r = rng(7);
  for (const hs of [2, 8, 16, 64]) {
    for (const pos of [0, 1, 5, 100, 511]) {
      const x = Float64Array.from({ length: hs }, r);
      const a = permute(ropeInterleaved(x, pos), 1);
      const b = ropeRotateHalf(permute(x, 1), pos);
      a.forEach((v, i) =>
        assert.ok(Math.abs(v - b[i]) < 1e-12, `hs ${hs} pos ${pos} i ${i}`)
      );
    }
  }
});

Deno.test("llama2c: attention scores are unchanged by the conversion of wq and wk", () => {
  // q = Wq·x and k = Wk·x with llama2.c weights and interleaved RoPE, versus the
  // converted weights (rows moved per head) with rotate-half RoPE.
  const r = rng(11);
  const dim = 16, heads = 4, kvHeads = 2, hs = dim / heads;
  const wq = Float64Array.from({ length: dim * dim }, r);
  const wk = Float64Array.from({ length: kvHeads * hs * dim }, r);
  const conv = (w: Float64Array, h: number) =>
    new Float64Array(
      unpermuteRows(new Uint8Array(w.slice().buffer), dim * 8, h).buffer,
    );
  const wq2 = conv(wq, heads), wk2 = conv(wk, kvHeads);
  const mv = (w: Float64Array, x: Float64Array) =>
    Float64Array.from(
      { length: w.length / x.length },
      (_, i) => x.reduce((s, v, j) => s + w[i * x.length + j] * v, 0),
    );
  const x1 = Float64Array.from({ length: dim }, r),
    x2 = Float64Array.from({ length: dim }, r);
  const score = (
    q: Float64Array,
    k: Float64Array,
    h: number,
    rope: typeof ropeInterleaved,
    pq: number,
    pk: number,
  ) => {
    const kh = Math.floor(h / (heads / kvHeads));
    const qh = rope(q.slice(h * hs, (h + 1) * hs), pq),
      khv = rope(k.slice(kh * hs, (kh + 1) * hs), pk);
    return qh.reduce((s, v, i) => s + v * khv[i], 0);
  };
  for (let h = 0; h < heads; h++) {
    const a = score(mv(wq, x1), mv(wk, x2), h, ropeInterleaved, 7, 3);
    const b = score(mv(wq2, x1), mv(wk2, x2), h, ropeRotateHalf, 7, 3);
    assert.ok(Math.abs(a - b) < 1e-9, `head ${h}: ${a} vs ${b}`);
  }
});

// ---------------------------------------------------------------------------
// Checkpoint header

/** A synthetic checkpoint with the float count the header implies. */
function checkpoint(h: number[], extraFloats = 0): Uint8Array {
  const [dim, hidden, L, heads, kv, vocabRaw, seq] = h;
  const hs = dim / heads, V = Math.abs(vocabRaw), kvd = kv * hs;
  const n = V * dim + L * dim + L * dim * dim + 2 * L * kvd * dim +
    L * dim * dim + L * dim + 3 * L * hidden * dim + dim +
    seq * hs + (vocabRaw < 0 ? V * dim : 0) + extraFloats;
  const out = new Uint8Array(28 + n * 4);
  const dv = new DataView(out.buffer);
  h.forEach((v, i) => dv.setInt32(i * 4, v, true));
  for (let i = 0; i < n; i++) dv.setFloat32(28 + i * 4, i, true);
  return out;
}

function header(b: Uint8Array): Int32Array {
  const dv = new DataView(b.buffer);
  return Int32Array.from({ length: 7 }, (_, i) => dv.getInt32(i * 4, true));
}

Deno.test("llama2c: header validated against the exact file size", () => {
  const good = checkpoint([8, 16, 2, 2, 1, 10, 4]);
  const c = llama2cLayout("m.bin", header(good), good.length);
  assert.equal(c.header.sharedClassifier, true);
  assert.equal(
    c.arrays.at(-1)!.offset + c.arrays.at(-1)!.byteLength,
    good.length,
  );
  const sep = checkpoint([8, 16, 2, 2, 1, -10, 4]);
  const s = llama2cLayout("m.bin", header(sep), sep.length);
  assert.equal(s.header.sharedClassifier, false);
  assert.equal(s.header.vocabSize, 10);
  assert.equal(s.arrays.at(-1)!.name, "wcls");
  const bad = (h: number[], size: number, re: RegExp) =>
    assert.throws(
      () => llama2cLayout("m.bin", Int32Array.from(h), size),
      (e: Error) => e instanceof FormatError && re.test(e.message),
    );
  bad(
    [8, 16, 2, 2, 1, 10, 4],
    good.length - 4,
    /needs .* bytes but the file has/,
  );
  bad(
    [8, 16, 2, 2, 1, 10, 4],
    good.length + 4,
    /needs .* bytes but the file has/,
  );
  bad([8, 16, 2, 2, 1, -10, 4], good.length, /needs/); // a separate classifier needs more floats
  bad([0, 16, 2, 2, 1, 10, 4], good.length, /dim = 0 must be positive/);
  bad([8, 16, 2, 3, 1, 10, 4], good.length, /not a multiple of n_heads/);
  bad([8, 16, 2, 2, 3, 10, 4], good.length, /not a multiple of n_kv_heads/);
  bad([8, 16, 2, 2, 1, 0, 4], good.length, /vocab_size = 0/);
  bad([1073741824, 2147483647, 2147483647, 2, 1, 10, 4], good.length, /needs/); // sizes beyond 2^53 compared exactly
  assert.throws(
    () => llama2cLayout("m.bin", Int32Array.from([8, 16, 2, 2, 1, 10, 4]), 10),
    FormatError,
  );
});

Deno.test("llama2c: a separate-classifier checkpoint gives lm_head and untied config", async () => {
  const bytes = checkpoint([8, 16, 1, 2, 2, -4, 4]);
  const tok = tokenizerBytes([["<unk>", 0], ["\n<s>\n", 0], ["\n</s>\n", 0], [
    " a",
    -1,
  ]]);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/m.bin`, bytes);
    await Deno.writeFile(`${dir}/t.bin`, tok);
    const src = await openLlama2cSource(`${dir}/m.bin`, {
      tokenizer: `${dir}/t.bin`,
    });
    try {
      assert.equal(src.config.tie_word_embeddings, false);
      assert.equal(src.config.max_position_embeddings, 4);
      assert.equal(src.config.rms_norm_eps, 1e-5);
      assert.equal(src.config.rope_theta, 10000);
      const names = src.tensors.map((t) => t.name);
      assert.ok(names.includes("lm_head.weight"));
      assert.equal(names.length, 2 + 1 + 9); // embed, norm, lm_head + 9 per layer
      const lm = await src.tensors.find((t) => t.name === "lm_head.weight")!
        .read();
      assert.ok(lm.dtype === "F32");
      // wcls is the last array: floats n-32..n-1 of the file
      const total = (bytes.length - 28) / 4;
      assert.deepEqual(
        Array.from(new Float32Array(lm.bytes.slice().buffer)),
        Array.from({ length: 32 }, (_, i) => total - 32 + i),
      );
      // layer 0 w2 (down_proj) is [dim, hidden] right after wo and rms_ffn
      const down = src.tensors.find((t) =>
        t.name === "model.layers.0.mlp.down_proj.weight"
      )!;
      assert.deepEqual(down.shape, [8, 16]);
    } finally {
      src.close();
    }
    await assert.rejects(openLlama2cSource(`${dir}/m.bin`, {}), UsageError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------
// Tokenizer

function tokenizerBytes(entries: [string, number][], maxLen = 7): Uint8Array {
  const enc = new TextEncoder();
  const parts: number[] = [];
  const i32 = (v: number) =>
    parts.push(...new Uint8Array(Int32Array.of(v).buffer));
  i32(maxLen);
  for (const [s, score] of entries) {
    parts.push(...new Uint8Array(Float32Array.of(score).buffer));
    const b = enc.encode(s);
    i32(b.length);
    parts.push(...b);
  }
  return new Uint8Array(parts);
}

Deno.test("llama2c: tokenizer.bin corruptions are FormatErrors", () => {
  const good = tokenizerBytes([["<unk>", 0], ["\n<s>\n", 0], ["\n</s>\n", 0], [
    " a",
    -1,
  ]]);
  assert.deepEqual(parseLlama2cTokenizer(good, 4, "t").tokens, [
    "<unk>",
    "<s>",
    "</s>",
    "▁a",
  ]);
  const bad = (b: Uint8Array, n: number, re: RegExp) =>
    assert.throws(
      () => parseLlama2cTokenizer(b, n, "t.bin"),
      (e: Error) => e instanceof FormatError && re.test(e.message),
    );
  bad(good.slice(0, good.length - 1), 4, /runs past the end/);
  bad(good, 3, /bytes left after 3 tokens/);
  bad(good, 1000, /cannot hold 1000 tokens/);
  const huge = good.slice();
  new DataView(huge.buffer).setInt32(8, 1 << 30, true);
  bad(huge, 4, /length .* runs past the end/);
  const badUtf8 = tokenizerBytes([
    ["<unk>", 0],
    ["\n<s>\n", 0],
    ["\n</s>\n", 0],
    ["ab", -1],
  ]);
  badUtf8[badUtf8.length - 1] = 0xff;
  bad(badUtf8, 4, /not valid UTF-8/);
  // a complete tokenizer with fewer tokens than the model: name the counts
  bad(good, 6, /holds 4 tokens but the model's vocab size is 6/);
});

Deno.test("llama2c: a missing tokenizer file is a FormatError naming it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/m.bin`, checkpoint([8, 16, 1, 2, 2, 4, 4]));
    await assert.rejects(
      openLlama2cSource(`${dir}/m.bin`, { tokenizer: `${dir}/nope.bin` }),
      (e: Error) =>
        e instanceof FormatError &&
        e.message === `${dir}/nope.bin: tokenizer file not found`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** llama2.c run.c `encode` (FORMATS.md §5), on raw pieces (spaces, not ▁). */
function runcEncode(
  pieces: string[],
  scores: Float32Array,
  text: string,
): number[] {
  const id = new Map<string, number>();
  pieces.forEach((p, i) => id.has(p) || id.set(p, i));
  const toks: number[] = [];
  if (text.length > 0) toks.push(id.get(" ")!);
  for (const ch of text) {
    const t = id.get(ch);
    if (t !== undefined) toks.push(t);
    else for (const b of new TextEncoder().encode(ch)) toks.push(b + 3);
  }
  for (;;) {
    let best = -1e10, bi = -1, bid = -1;
    for (let i = 0; i + 1 < toks.length; i++) {
      const m = id.get(pieces[toks[i]] + pieces[toks[i + 1]]);
      if (m !== undefined && scores[m] > best) {
        (best = scores[m], bi = i, bid = m);
      }
    }
    if (bi < 0) break;
    toks.splice(bi, 2, bid);
  }
  return toks;
}

Deno.test({
  name: "llama2c: tok512.bin matches stories260K.gguf and encodes like run.c",
  ignore: !present,
  fn: async () => {
    const raw = await Deno.readFile(TOK512);
    const t = parseLlama2cTokenizer(raw, 512, TOK512);
    assert.equal(t.maxTokenLength, 7);
    for (let b = 0; b < 256; b++) {
      assert.equal(
        t.tokens[3 + b],
        `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`,
      );
    }
    const g = await GgufFile.open(STORIES_GGUF);
    try {
      assert.deepEqual(t.tokens, g.get("tokenizer.ggml.tokens")!.value);
      assert.deepEqual(t.scores, g.get("tokenizer.ggml.scores")!.value);
    } finally {
      g.close();
    }
    const src = await openLlama2cSource(STORIES_BIN, { tokenizer: TOK512 });
    try {
      const tok = new Tokenizer(
        JSON.parse(src.files["tokenizer.json"]),
        JSON.parse(src.files["tokenizer_config.json"]),
      );
      const pieces = t.tokens.map((
        p,
        i,
      ) => (i < 3 ? p : p.replaceAll("▁", " ")));
      const probes = [
        "Once upon a time, there was a little girl named Lily.",
        "naïve café",
        "emoji 🦙 and  double  spaces",
        " leading space",
        'Tom said, "Hi!"\nThe end.',
        "日本語",
      ];
      for (const s of probes) {
        assert.deepEqual(
          tok.encode(s, { add_special_tokens: false }).ids,
          runcEncode(pieces, t.scores, s),
          s,
        );
        assert.deepEqual(tok.encode(s).ids, [
          1,
          ...runcEncode(pieces, t.scores, s),
        ], s);
        assert.equal(
          tok.decode(tok.encode(s).ids, { skip_special_tokens: true }),
          s,
        );
      }
      assert.deepEqual(tok.encode("", { add_special_tokens: false }).ids, []);
    } finally {
      src.close();
    }
  },
});

Deno.test({
  name: "llama2c: stories260K.bin header and source config",
  ignore: !present,
  fn: async () => {
    const c = await readLlama2cCheckpoint(STORIES_BIN);
    assert.deepEqual(
      [
        c.header.dim,
        c.header.hiddenDim,
        c.header.nLayers,
        c.header.nHeads,
        c.header.nKvHeads,
        c.header.vocabSize,
        c.header.seqLen,
      ],
      [64, 172, 5, 8, 4, 512, 512],
    );
    assert.equal(c.header.sharedClassifier, true);
    assert.equal(c.fileSize, 1056540);
    const src = await openLlama2cSource(STORIES_BIN, { tokenizer: TOK512 });
    try {
      assert.equal(src.kind, "llama2c");
      assert.equal(src.config.tie_word_embeddings, true);
      assert.equal(src.config.max_position_embeddings, 512);
      assert.equal(src.tensors.length, 3 - 1 + 9 * 5);
      assert.deepEqual(src.sourceFiles, [STORIES_BIN]);
    } finally {
      src.close();
    }
  },
});

Deno.test({
  name:
    "llama2c: stories260K through the float64 reference reproduces llama2.c's greedy text",
  ignore: !present,
  fn: async () => {
    const src = await openLlama2cSource(STORIES_BIN, { tokenizer: TOK512 });
    try {
      const w = new Map<string, Float32Array>();
      for (const t of src.tensors) {
        const d = await t.read();
        assert.ok(d.dtype === "F32");
        w.set(t.name, new Float32Array(d.bytes.slice().buffer));
      }
      const model = new ReferenceModel(
        w,
        normalizeConfig(src.config, STORIES_BIN),
      );
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
      const expected = await Deno.readTextFile(
        SHARED + "models/stories260K/expected_greedy_t0_256steps.txt",
      );
      assert.equal(
        tok.decode(ids, { skip_special_tokens: true }),
        expected.trimEnd(),
      );
    } finally {
      src.close();
    }
  },
});
