/**
 * The seeded tiny-model maker: HF config fields, tensor names, determinism,
 * the tokenizer loads with @huggingface/tokenizers.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import {
  makeTinyModel,
  readTinyHeader,
  readTinyTensor,
  tinyModelBytes,
  tinyVariants,
} from "../../lib/testing/tiny_model.ts";
import { normalizeConfig } from "../../lib/model/config.ts";
import { sha256, tempDir } from "./_helpers.ts";

Deno.test("tinyVariants covers every arch, dtype, single/sharded, tied/untied", () => {
  const vs = tinyVariants();
  for (const arch of ["llama", "mistral", "qwen2", "qwen3"]) {
    assert.ok(vs.some((v) => v.arch === arch), arch);
  }
  for (const dtype of ["F32", "F16", "BF16"]) {
    assert.ok(vs.some((v) => v.dtype === dtype), dtype);
  }
  for (const b of [true, false]) {
    assert.ok(vs.some((v) => v.sharded === b));
    assert.ok(vs.some((v) => v.tied === b));
  }
  assert.equal(new Set(vs.map((v) => v.name)).size, vs.length);
});

Deno.test("tiny models: HF config fields and tensor names", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    for (const v of tinyVariants()) {
      const m = await makeTinyModel(join(dir, v.name), v);
      const c = m.config;
      assert.equal(c.model_type, v.arch);
      assert.equal(c.tie_word_embeddings, v.tied);
      const cfg = normalizeConfig(
        JSON.parse(await Deno.readTextFile(join(m.dir, "config.json"))),
        "config.json",
      );
      assert.equal(cfg.architecture, v.arch);
      const names = new Set(m.tensors.map((t) => t.name));
      assert.ok(names.has("model.embed_tokens.weight"));
      assert.ok(names.has("model.norm.weight"));
      assert.equal(names.has("lm_head.weight"), !v.tied);
      const L = c.num_hidden_layers as number;
      for (let i = 0; i < L; i++) {
        const p = `model.layers.${i}.`;
        for (
          const s of [
            "input_layernorm.weight",
            "post_attention_layernorm.weight",
            "self_attn.q_proj.weight",
            "self_attn.k_proj.weight",
            "self_attn.v_proj.weight",
            "self_attn.o_proj.weight",
            "mlp.gate_proj.weight",
            "mlp.up_proj.weight",
            "mlp.down_proj.weight",
          ]
        ) assert.ok(names.has(p + s), p + s);
        for (const s of ["q", "k", "v"]) {
          assert.equal(
            names.has(`${p}self_attn.${s}_proj.bias`),
            v.arch === "qwen2",
          );
        }
        for (const s of ["q", "k"]) {
          assert.equal(
            names.has(`${p}self_attn.${s}_norm.weight`),
            v.arch === "qwen3",
          );
        }
      }
      if (v.arch === "llama") {
        const rs = c.rope_scaling as Record<string, unknown>;
        assert.equal(rs.rope_type, "llama3");
        assert.equal(cfg.ropeScaling?.type, "llama3");
      }
      if (v.arch === "qwen3") {
        assert.notEqual(
          c.head_dim,
          (c.hidden_size as number) / (c.num_attention_heads as number),
        );
        assert.equal(cfg.headDim, c.head_dim);
      }
      if (v.sharded) {
        const index = JSON.parse(
          await Deno.readTextFile(join(m.dir, "model.safetensors.index.json")),
        );
        assert.equal(Object.keys(index.weight_map).length, m.tensors.length);
        assert.ok(new Set(Object.values(index.weight_map)).size >= 2);
        for (const t of m.tensors) {
          assert.equal(index.weight_map[t.name], t.file);
        }
      }
      for (const f of new Set(m.tensors.map((t) => t.file))) {
        const h = await readTinyHeader(join(m.dir, f));
        for (const n of h.names) assert.equal(h.tensors[n].dtype, v.dtype);
      }
    }
  } finally {
    await cleanup();
  }
});

Deno.test("tiny models are deterministic; single and sharded hold the same tensors", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const o = { arch: "mistral", dtype: "BF16" } as const;
    const a = await makeTinyModel(join(dir, "a"), o);
    const b = await makeTinyModel(join(dir, "b"), o);
    const s = await makeTinyModel(join(dir, "s"), { ...o, sharded: true });
    const c = await makeTinyModel(join(dir, "c"), { ...o, seed: 99 });
    assert.equal(
      await sha256(join(a.dir, "model.safetensors")),
      await sha256(join(b.dir, "model.safetensors")),
    );
    assert.notEqual(
      await sha256(join(a.dir, "model.safetensors")),
      await sha256(join(c.dir, "model.safetensors")),
    );
    for (const t of s.tensors) {
      const x = await readTinyTensor(join(a.dir, "model.safetensors"), t.name);
      const y = await readTinyTensor(join(s.dir, t.file), t.name);
      assert.deepEqual(x.bytes, y.bytes, t.name);
    }
    // Sensible scale: norms near 1, projections ~ 1/sqrt(fan_in).
    const f32 = await makeTinyModel(join(dir, "f"), {
      arch: "llama",
      dtype: "F32",
    });
    const rd = async (n: string) =>
      new Float32Array(
        (await readTinyTensor(join(f32.dir, "model.safetensors"), n)).bytes
          .slice().buffer,
      );
    const norm = await rd("model.layers.0.input_layernorm.weight");
    const mean = norm.reduce((x, y) => x + y, 0) / norm.length;
    assert.ok(Math.abs(mean - 1) < 0.1, `norm mean ${mean}`);
    const q = await rd("model.layers.0.self_attn.q_proj.weight");
    const std = Math.sqrt(q.reduce((x, y) => x + y * y, 0) / q.length);
    assert.ok(Math.abs(std - 1 / 8) < 0.02, `q_proj std ${std}`);
  } finally {
    await cleanup();
  }
});

Deno.test("the tiny tokenizer loads with @huggingface/tokenizers", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const m = await makeTinyModel(dir, { arch: "qwen2", dtype: "F32" });
    const tj = JSON.parse(
      await Deno.readTextFile(join(m.dir, "tokenizer.json")),
    );
    const tc = JSON.parse(
      await Deno.readTextFile(join(m.dir, "tokenizer_config.json")),
    );
    const tok = new Tokenizer(tj, tc);
    const text = "Once upon a time, the little girl said: héllo!";
    const enc = tok.encode(text);
    assert.equal(enc.ids[0], 1); // <s> added
    assert.ok(enc.ids.every((id) => id >= 0 && id < 300));
    // Merges apply: fewer tokens than UTF-8 bytes.
    assert.ok(enc.ids.length < new TextEncoder().encode(text).length);
    assert.equal(tok.decode(enc.ids, { skip_special_tokens: true }), text);
    assert.equal(tok.token_to_id("<s>"), 1);
    assert.equal(tok.token_to_id("</s>"), 2);
    assert.equal(tok.token_to_id("<unk>"), 0);
    assert.equal(Object.keys(tj.model.vocab).length, 300);
    assert.equal(typeof tc.chat_template, "string");
  } finally {
    await cleanup();
  }
});

Deno.test("bench-size model: 24 layers, about 0.5 GB in F16 (header only)", async () => {
  // Only the plan is checked here (writing 0.5 GB is the benchmark's job):
  // a 1-layer model with the bench widths has the bench layer size.
  const [dir, cleanup] = await tempDir();
  try {
    const m = await makeTinyModel(dir, {
      arch: "llama",
      dtype: "F16",
      size: "bench",
      layers: 1,
    });
    const layer = m.tensors
      .filter((t) => t.name.startsWith("model.layers.0."))
      .reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1) * 2, 0);
    const total24 = layer * 24;
    assert.ok(total24 > 0.5e9 && total24 < 1e9, `${total24}`);
  } finally {
    await cleanup();
  }
});

Deno.test("tinyModelBytes and onProgress agree with what is written; maxPositions", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    for (const sharded of [false, true]) {
      const opts = {
        arch: "mixtral" as const,
        dtype: "F16" as const,
        sharded,
        maxPositions: 32768,
        moe: { experts: 3, topK: 2, expertSize: 40 },
      };
      const calls: [number, number][] = [];
      const m = await makeTinyModel(join(dir, String(sharded)), {
        ...opts,
        onProgress: (done, total) => calls.push([done, total]),
      });
      // one call per tensor, increasing, ending at every byte written
      assert.equal(calls.length, m.tensors.length);
      for (let i = 1; i < calls.length; i++) {
        assert.ok(calls[i][0] > calls[i - 1][0]);
      }
      const files = m.weightFiles.filter((f) => f.endsWith(".safetensors"));
      let onDisk = 0;
      for (const f of files) {
        const h = await readTinyHeader(join(m.dir, f));
        for (const n of h.names) {
          const [b, e] = h.tensors[n].data_offsets;
          onDisk += e - b;
        }
      }
      assert.deepEqual(calls.at(-1), [onDisk, onDisk]);
      assert.equal(m.tensorBytes, onDisk);
      assert.equal(tinyModelBytes(opts), onDisk);
      assert.equal(m.config.max_position_embeddings, 32768);
      assert.equal(m.config.intermediate_size, 40);
    }
  } finally {
    await cleanup();
  }
});

Deno.test("the maker imports nothing from the library it tests", async () => {
  for (const f of ["tiny_model.ts", "tiny_tokenizer.ts"]) {
    const src = await Deno.readTextFile(
      new URL(`../../lib/testing/${f}`, import.meta.url),
    );
    const specs = [
      ...src.matchAll(/^\s*(?:import|export)\b[^;]*?from\s+"([^"]+)"/gm),
    ]
      .map((m) => m[1]);
    assert.ok(!/\bimport\s*\(/.test(src), `${f}: dynamic import`);
    for (const s of specs) {
      assert.ok(
        s.startsWith("node:") || s === "./tiny_tokenizer.ts",
        `${f} imports ${s}`,
      );
    }
  }
});
