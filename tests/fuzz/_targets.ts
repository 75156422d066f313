/**
 * The fuzz targets: one per parser, each with seed inputs that parse, a
 * mutation and the code that reads the result. A case passes when it
 * succeeds or throws a {@linkcode StrataError} with a one-line message.
 *
 * @module
 */
import { join } from "node:path";
import { StrataError } from "../../lib/errors.ts";
import { SafetensorsFile } from "../../lib/format/safetensors.ts";
import { GgufFile } from "../../lib/format/gguf.ts";
import {
  parseLlama2cTokenizer,
  readLlama2cCheckpoint,
} from "../../lib/format/llama2c.ts";
import { parseManifest, ShardDir } from "../../lib/format/shards.ts";
import { normalizeConfig } from "../../lib/model/config.ts";
import { openSource } from "../../lib/split/open_source.ts";
import type { ModelSource } from "../../lib/split/source.ts";
import { Tokenizer } from "../../lib/text/tokenizer.ts";
import {
  renderChatTemplate,
  type TemplateLimits,
} from "../../lib/text/chat_template.ts";
import {
  makeTinyTokenizer,
  TINY_CHAT_TEMPLATE,
} from "../../lib/testing/tiny_tokenizer.ts";
import {
  int,
  mutateBytes,
  mutateJson,
  mutateTemplate,
  pick,
  type Rng,
} from "./_mutate.ts";

/** One parser under fuzzing. */
export interface Target {
  /** Short name (safetensors, gguf, ...). */
  name: string;
  /** Runs one mutated input through the parser; throws what it throws. */
  run(r: Rng): Promise<void>;
}

/** How one case ended. */
export type Outcome =
  | { kind: "ok" }
  | { kind: "strata"; message: string }
  | { kind: "crash"; message: string };

/**
 * Runs case `r` of `t`: success and one-line StrataErrors pass; anything
 * else (another error class, a multi-line message) is a crash.
 */
export async function runCase(t: Target, r: Rng): Promise<Outcome> {
  try {
    await t.run(r);
    return { kind: "ok" };
  } catch (e) {
    if (e instanceof StrataError && !e.message.includes("\n")) {
      return { kind: "strata", message: e.message };
    }
    const m = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    return { kind: "crash", message: m.split("\n")[0].slice(0, 300) };
  }
}

const SHARED = new URL("../../../shared/", import.meta.url).pathname;

async function readOptional(path: string): Promise<Uint8Array | null> {
  try {
    return await Deno.readFile(path);
  } catch {
    return null;
  }
}

/** Reads every tensor of a source whose bytes are few (bounded work per case). */
async function drain(src: ModelSource): Promise<void> {
  try {
    let budget = 2 ** 19;
    for (const t of src.tensors) {
      if (t.byteLength > budget) continue;
      budget -= t.byteLength;
      await t.read();
    }
  } finally {
    src.close();
  }
}

function f32(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

// ---------------------------------------------------------------- safetensors

const TINY_CONFIG = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 8,
  intermediate_size: 16,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  vocab_size: 6,
  rms_norm_eps: 1e-5,
  bos_token_id: 1,
  eos_token_id: 2,
  tie_word_embeddings: true,
};

/** A complete one-layer llama checkpoint in one safetensors file. */
function tinySafetensors(): Uint8Array {
  const d = 8, ff = 16, kv = 4, v = 6;
  const shapes: Record<string, number[]> = {
    "model.embed_tokens.weight": [v, d],
    "model.norm.weight": [d],
    "model.layers.0.input_layernorm.weight": [d],
    "model.layers.0.post_attention_layernorm.weight": [d],
    "model.layers.0.self_attn.q_proj.weight": [d, d],
    "model.layers.0.self_attn.k_proj.weight": [kv, d],
    "model.layers.0.self_attn.v_proj.weight": [kv, d],
    "model.layers.0.self_attn.o_proj.weight": [d, d],
    "model.layers.0.mlp.gate_proj.weight": [ff, d],
    "model.layers.0.mlp.up_proj.weight": [ff, d],
    "model.layers.0.mlp.down_proj.weight": [d, ff],
  };
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  const parts: Uint8Array[] = [];
  let off = 0;
  let i = 0;
  for (const [name, shape] of Object.entries(shapes)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const dtype = i++ % 3 === 0 ? "F16" : "F32";
    const bytes = dtype === "F16"
      ? new Uint8Array(n * 2).fill(0x3c)
      : f32(Array.from({ length: n }, (_, k) => Math.sin(k + i)));
    header[name] = { dtype, shape, data_offsets: [off, off + bytes.length] };
    parts.push(bytes);
    off += bytes.length;
  }
  let h = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - (h.length % 8)) % 8;
  h = new TextEncoder().encode(JSON.stringify(header) + " ".repeat(pad));
  const out = new Uint8Array(8 + h.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  let o = 8 + h.length;
  for (const p of parts) (out.set(p, o), o += p.length);
  return out;
}

/** safetensors: the file alone, and as a Hugging Face checkpoint directory. */
export async function safetensorsTarget(tmp: string): Promise<Target> {
  const seed = tinySafetensors();
  const dir = join(tmp, "st");
  await Deno.mkdir(dir, { recursive: true });
  const file = join(dir, "model.safetensors");
  await Deno.writeTextFile(
    join(dir, "config.json"),
    JSON.stringify(TINY_CONFIG),
  );
  const headerLen = Number(new DataView(seed.buffer).getBigUint64(0, true));
  return {
    name: "safetensors",
    async run(r) {
      let bytes: Uint8Array;
      if (r() < 0.5) bytes = mutateBytes(seed, r, 8 + headerLen);
      else {
        // Mutate the header as JSON, keep the data.
        const text = new TextDecoder().decode(seed.subarray(8, 8 + headerLen));
        const h = new TextEncoder().encode(
          JSON.stringify(mutateJson(JSON.parse(text), r)),
        );
        bytes = new Uint8Array(8 + h.length + seed.length - 8 - headerLen);
        new DataView(bytes.buffer).setBigUint64(0, BigInt(h.length), true);
        bytes.set(h, 8);
        bytes.set(seed.subarray(8 + headerLen), 8 + h.length);
      }
      await Deno.writeFile(file, bytes);
      if (r() < 0.5) {
        const f = await SafetensorsFile.open(file);
        try {
          for (const name of f.tensors.keys()) await f.read(name);
        } finally {
          f.close();
        }
      } else await drain(await openSource(dir));
    },
  };
}

// ----------------------------------------------------------------------- GGUF

class Bytes {
  parts: number[] = [];
  u8(v: number) {
    this.parts.push(v & 255);
  }
  u32(v: number) {
    for (let i = 0; i < 4; i++) this.u8(v >>> (8 * i));
  }
  u64(v: number) {
    this.u32(v % 2 ** 32);
    this.u32(Math.floor(v / 2 ** 32));
  }
  str(s: string) {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    for (const x of b) this.u8(x);
  }
}

/** A one-layer llama GGUF (F32 tensors, a 6-token SentencePiece vocabulary). */
function tinyGguf(): Uint8Array {
  const w = new Bytes();
  const d = 8, ff = 16, kv = 4, v = 6;
  const tensors: [string, number[]][] = [
    ["token_embd.weight", [d, v]],
    ["output_norm.weight", [d]],
    ["blk.0.attn_norm.weight", [d]],
    ["blk.0.ffn_norm.weight", [d]],
    ["blk.0.attn_q.weight", [d, d]],
    ["blk.0.attn_k.weight", [d, kv]],
    ["blk.0.attn_v.weight", [d, kv]],
    ["blk.0.attn_output.weight", [d, d]],
    ["blk.0.ffn_gate.weight", [d, ff]],
    ["blk.0.ffn_up.weight", [d, ff]],
    ["blk.0.ffn_down.weight", [ff, d]],
  ];
  const kvs: [string, number, (w: Bytes) => void][] = [
    ["general.architecture", 8, (w) => w.str("llama")],
    ["llama.embedding_length", 4, (w) => w.u32(d)],
    ["llama.feed_forward_length", 4, (w) => w.u32(ff)],
    ["llama.block_count", 4, (w) => w.u32(1)],
    ["llama.attention.head_count", 4, (w) => w.u32(2)],
    ["llama.attention.head_count_kv", 4, (w) => w.u32(1)],
    ["llama.context_length", 4, (w) => w.u32(32)],
    ["llama.attention.layer_norm_rms_epsilon", 6, (w) => w.u32(0x3727c5ac)],
    ["tokenizer.ggml.model", 8, (w) => w.str("llama")],
    ["tokenizer.ggml.tokens", 9, (w) => {
      w.u32(8);
      w.u64(v);
      for (const t of ["<unk>", "<s>", "</s>", "▁a", "b", "▁ab"]) w.str(t);
    }],
    ["tokenizer.ggml.scores", 9, (w) => {
      w.u32(6);
      w.u64(v);
      for (let i = 0; i < v; i++) w.u32(0xbf800000);
    }],
    ["tokenizer.ggml.token_type", 9, (w) => {
      w.u32(5);
      w.u64(v);
      for (const t of [2, 3, 3, 1, 1, 1]) w.u32(t);
    }],
    ["tokenizer.ggml.bos_token_id", 4, (w) => w.u32(1)],
    ["tokenizer.ggml.eos_token_id", 4, (w) => w.u32(2)],
  ];
  for (const c of "GGUF") w.u8(c.charCodeAt(0));
  w.u32(3);
  w.u64(tensors.length);
  w.u64(kvs.length);
  for (const [k, type, put] of kvs) {
    w.str(k);
    w.u32(type);
    put(w);
  }
  let off = 0;
  const offs: number[] = [];
  for (const [, dims] of tensors) {
    offs.push(off);
    off += Math.ceil((dims.reduce((a, b) => a * b, 1) * 4) / 32) * 32;
  }
  tensors.forEach(([name, dims], i) => {
    w.str(name);
    w.u32(dims.length);
    for (const x of dims) w.u64(x);
    w.u32(0); // F32
    w.u64(offs[i]);
  });
  while (w.parts.length % 32) w.u8(0);
  const start = w.parts.length;
  for (let i = 0; i < off / 4; i++) w.u32(0x3d000000 + (i % 97) * 0x1000);
  void start;
  return new Uint8Array(w.parts);
}

/** GGUF: the synthetic file, and ../shared's stories260K.gguf when present. */
export async function ggufTarget(
  tmp: string,
  realShare = 0.25,
): Promise<Target> {
  const seeds = [tinyGguf()];
  const real = await readOptional(join(SHARED, "models/gguf/stories260K.gguf"));
  if (real) seeds.push(real);
  const file = join(tmp, "m.gguf");
  return {
    name: "gguf",
    async run(r) {
      // The real file (1 MB) costs more per case: a share of the cases.
      const seed = seeds.length > 1 && r() < realShare ? seeds[1] : seeds[0];
      await Deno.writeFile(
        file,
        mutateBytes(seed, r, seed === seeds[0] ? 1200 : 4096),
      );
      if (r() < 0.3) {
        const g = await GgufFile.open(file);
        g.close();
      } else await drain(await openSource(file));
    },
  };
}

// ------------------------------------------------------------------- llama2.c

/** A llama2.c checkpoint (dim 8, 1 layer, vocab 6, shared classifier) and its tokenizer. */
function tinyLlama2c(): { bin: Uint8Array; tok: Uint8Array } {
  const [dim, hidden, layers, heads, kvHeads, vocab, seq] = [
    8,
    16,
    1,
    2,
    1,
    6,
    8,
  ];
  const head = dim / heads;
  const floats = vocab * dim + layers * dim + layers * dim * dim +
    2 * layers * kvHeads * head * dim + layers * dim * dim + layers * dim +
    3 * layers * hidden * dim + dim + seq * head;
  const bin = new Uint8Array(28 + floats * 4);
  const dv = new DataView(bin.buffer);
  [dim, hidden, layers, heads, kvHeads, vocab, seq].forEach((v, i) =>
    dv.setInt32(i * 4, v, true)
  );
  for (let i = 0; i < floats; i++) {
    dv.setFloat32(28 + i * 4, Math.sin(i) * 0.1, true);
  }
  const pieces = ["<unk>", "\n<s>\n", "\n</s>\n", " a", "b", " ab"];
  const parts: number[] = [];
  const u32 = (v: number) => {
    for (let i = 0; i < 4; i++) parts.push((v >>> (8 * i)) & 255);
  };
  u32(6);
  for (const p of pieces) {
    u32(0xbf800000);
    const b = new TextEncoder().encode(p);
    u32(b.length);
    parts.push(...b);
  }
  return { bin, tok: new Uint8Array(parts) };
}

/** llama2.c: checkpoint and tokenizer, synthetic and (when present) stories260K. */
export async function llama2cTarget(
  tmp: string,
  realShare = 0.25,
): Promise<Target> {
  const tiny = tinyLlama2c();
  const seeds = [tiny];
  const bin = await readOptional(
    join(SHARED, "models/stories260K/stories260K.bin"),
  );
  const tok = await readOptional(join(SHARED, "models/stories260K/tok512.bin"));
  if (bin && tok) seeds.push({ bin, tok });
  const binPath = join(tmp, "m.bin"), tokPath = join(tmp, "tok.bin");
  return {
    name: "llama2c",
    async run(r) {
      const s = seeds.length > 1 && r() < realShare ? seeds[1] : seeds[0];
      const which = int(r, 3); // 0: checkpoint, 1: tokenizer, 2: both
      const b = which !== 1 ? mutateBytes(s.bin, r, 28) : s.bin;
      const t = which !== 0 ? mutateBytes(s.tok, r, 256) : s.tok;
      await Deno.writeFile(binPath, b);
      await Deno.writeFile(tokPath, t);
      if (r() < 0.3) {
        const c = await readLlama2cCheckpoint(binPath);
        parseLlama2cTokenizer(t, c.header.vocabSize, tokPath);
      } else await drain(await openSource(binPath, { tokenizer: tokPath }));
    },
  };
}

// ------------------------------------------------------------ manifest, config

function tinyManifest(): Record<string, unknown> {
  const config = normalizeConfig(TINY_CONFIG, "config.json");
  const sha = (c: string) => c.repeat(64);
  const crc = (c: string) => c.repeat(8);
  return {
    format: "strata-shards",
    version: 2,
    source: { kind: "hf", path: "/m", description: "tiny" },
    config,
    quantization: "q8",
    quant: {
      "model.layers.0.self_attn.q_proj.weight": {
        type: "q8",
        shape: [8, 8],
        block: 32,
      },
    },
    embed: "embed.safetensors",
    head: "head.safetensors",
    layers: ["layers/000.safetensors"],
    files: [
      { path: "config.json", size: 10, crc32: crc("a") },
      { path: "embed.safetensors", size: 100, crc32: crc("b") },
      { path: "layers/000.safetensors", size: 1000, crc32: crc("c") },
      // an older split's checksum: still read
      { path: "head.safetensors", size: 100, sha256: sha("d") },
    ],
    plan: sha("e"),
  };
}

/** manifest.json: parsed objects, and mutated text read through ShardDir.open. */
export async function manifestTarget(tmp: string): Promise<Target> {
  const seed = tinyManifest();
  const dir = join(tmp, "shards");
  await Deno.mkdir(dir, { recursive: true });
  const text = new TextEncoder().encode(JSON.stringify(seed, null, 2));
  return {
    name: "manifest",
    async run(r) {
      if (r() < 0.7) {
        parseManifest(mutateJson(seed, r), "manifest.json");
      } else {
        await Deno.writeFile(
          join(dir, "manifest.json"),
          mutateBytes(text, r, text.length),
        );
        await ShardDir.open(dir);
      }
    },
  };
}

const CONFIG_SEEDS: Record<string, unknown>[] = [
  TINY_CONFIG,
  {
    model_type: "llama",
    hidden_size: 64,
    intermediate_size: 172,
    num_hidden_layers: 5,
    num_attention_heads: 8,
    num_key_value_heads: 4,
    vocab_size: 512,
    max_position_embeddings: 2048,
    rope_theta: 500000,
    rope_scaling: {
      rope_type: "llama3",
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    },
    eos_token_id: [2, 3],
    bos_token_id: 1,
    pad_token_id: 0,
  },
  {
    model_type: "qwen3",
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 16,
    vocab_size: 300,
    tie_word_embeddings: true,
    rope_parameters: { rope_theta: 1000000, rope_type: "default" },
  },
];

/** config.json through normalizeConfig. */
export function configTarget(): Promise<Target> {
  return Promise.resolve({
    name: "config",
    run(r) {
      normalizeConfig(mutateJson(pick(r, CONFIG_SEEDS), r), "config.json");
      return Promise.resolve();
    },
  });
}

// ------------------------------------------------------------- tokenizer.json

function unigramJson(): Record<string, unknown> {
  return {
    version: "1.0",
    added_tokens: [{ id: 0, content: "<unk>", special: true }],
    normalizer: { type: "Sequence", normalizers: [{ type: "NFKC" }] },
    pre_tokenizer: {
      type: "Metaspace",
      replacement: "▁",
      prepend_scheme: "always",
    },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<unk>", type_id: 0 } }, {
        Sequence: { id: "A", type_id: 0 },
      }],
      pair: null,
      special_tokens: { "<unk>": { id: "<unk>", ids: [0], tokens: ["<unk>"] } },
    },
    decoder: { type: "Metaspace", replacement: "▁", prepend_scheme: "always" },
    model: {
      type: "Unigram",
      unk_id: 0,
      vocab: [["<unk>", 0], ["▁a", -1], ["b", -2], ["▁ab", -1.5], ["▁", -3]],
    },
  };
}

function wordPieceJson(): Record<string, unknown> {
  return {
    version: "1.0",
    added_tokens: [{ id: 0, content: "[UNK]", special: true }, {
      id: 1,
      content: "[CLS]",
      special: true,
    }, {
      id: 2,
      content: "[SEP]",
      special: true,
    }],
    normalizer: { type: "BertNormalizer", lowercase: true },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: {
      type: "BertProcessing",
      sep: ["[SEP]", 2],
      cls: ["[CLS]", 1],
    },
    decoder: { type: "WordPiece", prefix: "##" },
    model: {
      type: "WordPiece",
      unk_token: "[UNK]",
      continuing_subword_prefix: "##",
      max_input_chars_per_word: 100,
      vocab: { "[UNK]": 0, "[CLS]": 1, "[SEP]": 2, hi: 3, "##s": 4, a: 5 },
    },
  };
}

/** tokenizer.json: BPE (the tiny tokenizer), Unigram and WordPiece seeds. */
export async function tokenizerTarget(tmp: string): Promise<Target> {
  const tiny = makeTinyTokenizer(300);
  const seeds = [tiny.tokenizerJson, unigramJson(), wordPieceJson()];
  const dir = join(tmp, "tok");
  await Deno.mkdir(dir, { recursive: true });
  const probe = "Hello, wörld! 12 <s>  tabs\tand 😀";
  return {
    name: "tokenizer",
    async run(r) {
      const seed = pick(r, seeds);
      let tok: Tokenizer;
      if (r() < 0.8) {
        tok = Tokenizer.fromJson(mutateJson(seed, r), {
          config: seed === tiny.tokenizerJson ? tiny.tokenizerConfig : {},
        });
      } else {
        const text = new TextEncoder().encode(JSON.stringify(seed));
        await Deno.writeFile(
          join(dir, "tokenizer.json"),
          mutateBytes(text, r, text.length),
        );
        tok = await Tokenizer.fromDir(dir);
      }
      const ids = tok.encode(probe);
      tok.decode(ids);
      tok.decode([...ids, tok.vocabSize - 1, 0], { skipSpecialTokens: true });
    },
  };
}

// ------------------------------------------------------------------ templates

const TEMPLATE_SEEDS = [
  TINY_CHAT_TEMPLATE,
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
  "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] | trim + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] | trim + eos_token }}{% endif %}{% endfor %}",
  "{%- set ns = namespace(n=0) -%}{%- for m in messages -%}{%- set ns.n = ns.n + m.content | length -%}{{ m.role | upper }}: {{ m.content }}\n{%- endfor -%}{{ ns.n }}{{ messages | tojson }}",
];

/** Chat templates through renderChatTemplate (time limit `timeMs`). */
export function templateTarget(limits: TemplateLimits = {}): Promise<Target> {
  const messages = [
    { role: "system", content: "Be terse." },
    { role: "user", content: "Hi" },
    { role: "assistant", content: "Hello." },
    { role: "user", content: "Bye" },
  ];
  return Promise.resolve({
    name: "template",
    run(r) {
      renderChatTemplate(mutateTemplate(pick(r, TEMPLATE_SEEDS), r), {
        messages: r() < 0.8 ? messages : messages.slice(1),
        addGenerationPrompt: r() < 0.5,
        bosToken: "<s>",
        eosToken: "</s>",
        limits,
      });
      return Promise.resolve();
    },
  });
}

/**
 * Every target, in a fixed order, writing its files under `tmp`; `realShare`
 * is the share of GGUF and llama2.c cases mutating ../shared's real files.
 */
export async function allTargets(
  tmp: string,
  opts: { templateLimits?: TemplateLimits; realShare?: number } = {},
): Promise<Target[]> {
  return [
    await safetensorsTarget(tmp),
    await ggufTarget(tmp, opts.realShare),
    await llama2cTarget(tmp, opts.realShare),
    await manifestTarget(tmp),
    await configTarget(),
    await tokenizerTarget(tmp),
    await templateTarget(opts.templateLimits),
  ];
}
