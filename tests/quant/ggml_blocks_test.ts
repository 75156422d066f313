/**
 * ggml block decoders (lib/quant/ggml_blocks.ts) and encoders
 * (lib/quant/ggml_encode.ts):
 * - against llama.cpp: every tensor of the fixtures in
 *   tests/fixtures/gguf_llamacpp/ decodes to exactly the f32 values ggml's
 *   own `dequantize_row_*` gave (sha256 of the f32 bytes, recorded when the
 *   fixtures were made), and a float64 forward pass over our CPU decoding of
 *   every GGUF there and in ../shared/models/gguf-kquant/ reproduces the
 *   reference greedy ids and first-step top-5 logits (computed from ggml's
 *   dequantization) to 1e-9;
 * - our encoder: round trips within a per-type error bound, hand-built blocks
 *   decode to the values the layout says, and bad sizes are refused.
 */
import assert from "node:assert/strict";
import { GgufFile } from "../../lib/format/gguf.ts";
import {
  dequantizeGgml,
  dequantizeGgmlRow,
  GGML_BLOCKS,
  type GgmlBlockType,
  isGgmlBlockType,
} from "../../lib/quant/ggml_blocks.ts";
import { quantizeGgml } from "../../lib/quant/ggml_encode.ts";
import { f32ToF16 } from "../../lib/quant/half.ts";
import { openGgufSource } from "../../lib/split/source_gguf.ts";
import { normalizeConfig } from "../../lib/model/config.ts";
import { UsageError } from "../../lib/errors.ts";
import { encoding } from "../../lib/quant/encoding.ts";
import {
  argmax,
  refDecode,
  refDequant,
  ReferenceModel,
  type RefTensor,
} from "../reference/forward.ts";

const LOCAL = new URL("../fixtures/gguf_llamacpp/", import.meta.url).pathname;
const SHARED = new URL("../../../shared/models/gguf-kquant/", import.meta.url)
  .pathname;

interface Fixture {
  quantize_ftype: string;
  tensor_types: Record<string, number>;
  tensor_sha256?: Record<string, { type: string; sha256: string }>;
  runs: {
    prompt_ids: number[];
    ids: number[];
    first_logits_top5: [number, number][];
  }[];
}

async function fixtures(dir: string): Promise<[string, Fixture][]> {
  const out: [string, Fixture][] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (!e.name.endsWith(".gguf")) continue;
      const json = dir + e.name.replace(/\.gguf$/, ".json");
      out.push([dir + e.name, JSON.parse(await Deno.readTextFile(json))]);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort((a, b) => a[0].localeCompare(b[0]));
}

const local = await fixtures(LOCAL);
const shared = await fixtures(SHARED);
if (shared.length === 0) {
  console.warn(`skipped: ${SHARED} is absent (the shared llama.cpp fixtures)`);
}

async function sha256(x: Float32Array): Promise<string> {
  const h = await crypto.subtle.digest("SHA-256", x.slice().buffer);
  return [...new Uint8Array(h)].map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}

Deno.test("ggml blocks: the local llama.cpp fixtures cover every type", () => {
  const seen = new Set(local.flatMap(([, f]) => Object.keys(f.tensor_types)));
  for (const t of Object.keys(GGML_BLOCKS)) {
    if (t !== "Q4_0") assert.ok(seen.has(t), `no fixture holds ${t}`);
  }
  assert.equal(local.length, 10);
});

Deno.test("ggml blocks: every tensor decodes bit-exactly as ggml's dequantize_row_*", async () => {
  let checked = 0;
  for (const [path, fx] of local) {
    const g = await GgufFile.open(path);
    try {
      for (const t of g.tensors.values()) {
        const want = fx.tensor_sha256![t.name];
        assert.equal(t.type.name, want.type, `${path}: ${t.name} type`);
        if (!isGgmlBlockType(t.type.name)) continue;
        const n = t.dims.reduce((a, b) => a * b, 1);
        const x = dequantizeGgml(t.type.name, await g.read(t.name), n);
        assert.equal(await sha256(x), want.sha256, `${path}: ${t.name}`);
        checked++;
      }
    } finally {
      g.close();
    }
  }
  assert.ok(checked >= 70, `${checked} tensors`);
});

for (const [path, fx] of [...shared, ...local]) {
  const name = path.split("/").slice(-3).join("/");
  Deno.test(`ggml blocks: float64 forward over our decoding of ${name} gives the reference ids and logits`, async () => {
    const src = await openGgufSource(path);
    const w = new Map<string, RefTensor>();
    let cfg;
    try {
      cfg = normalizeConfig(src.config, path);
      for (const t of src.tensors) {
        const d = await t.read();
        if ("bytes" in d) w.set(t.name, refDecode(d.bytes, d.dtype, t.name));
        else {
          const data = new Uint8Array(
            d.data.buffer,
            d.data.byteOffset,
            d.data.length,
          );
          if (d.dtype === "q8" || d.dtype === "q4") {
            // GGUF Q8_0 / Q4_0 repacked into q8 / q4: the reference's own decoder
            const sc = refDecode(
              new Uint8Array(d.scales.buffer),
              "F16",
              t.name,
            );
            w.set(
              t.name,
              refDequant(d.dtype, data, sc, d.shape[0], d.shape[1]),
            );
          } else {
            // kept as in the file: our CPU decoder (bit-exact with ggml, tested above)
            assert.equal(d.scales.length, 0);
            w.set(
              t.name,
              encoding(d.dtype).decode({ data }, d.shape[0], d.shape[1]),
            );
          }
        }
      }
    } finally {
      src.close();
    }
    for (const run of fx.runs) {
      const m = new ReferenceModel(w, cfg);
      let logits: Float64Array = new Float64Array(0);
      for (const id of run.prompt_ids) logits = m.step(id);
      for (const [id, want] of run.first_logits_top5) {
        assert.ok(
          Math.abs(logits[id] - want) < 1e-9,
          `${name}: logit ${id} ${logits[id]} vs ${want}`,
        );
      }
      const ids: number[] = [];
      for (let i = 0; i < run.ids.length; i++) {
        ids.push(argmax(logits));
        if (i + 1 < run.ids.length) logits = m.step(ids[i]);
      }
      assert.deepEqual(ids, run.ids, name);
    }
  });
}

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// RMS error relative to the RMS of the data, for Gaussian data: a bound each
// format's code count allows with room (4 bits ~ 0.1, 6 bits ~ 0.03).
const BOUND: Record<GgmlBlockType, number> = {
  Q8_0: 0.01,
  Q6_K: 0.04,
  Q5_0: 0.06,
  Q5_1: 0.06,
  Q5_K: 0.06,
  Q4_0: 0.12,
  Q4_1: 0.12,
  Q4_K: 0.12,
  IQ4_NL: 0.12,
  Q3_K: 0.25,
  Q2_K: 0.5,
};

Deno.test("ggml encode: every type round trips within its error bound, and a whole-grid block exactly", () => {
  const r = rng(5);
  const n = 256 * 8;
  const x = Float32Array.from({ length: n }, () => {
    const u = Math.max(r(), 1e-12), v = r();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v) *
      (0.01 + r());
  });
  let ss = 0;
  for (const v of x) ss += v * v;
  const rms = Math.sqrt(ss / n);
  for (const t of Object.keys(GGML_BLOCKS) as GgmlBlockType[]) {
    const q = quantizeGgml(t, x);
    assert.equal(q.length, (n / GGML_BLOCKS[t].elems) * GGML_BLOCKS[t].bytes);
    const y = dequantizeGgml(t, q, n);
    let e = 0;
    for (let i = 0; i < n; i++) e += (y[i] - x[i]) ** 2;
    const rel = Math.sqrt(e / n) / rms;
    assert.ok(rel < BOUND[t], `${t}: relative RMS error ${rel}`);
    // all-zero input stays zero
    const z = dequantizeGgml(t, quantizeGgml(t, new Float32Array(256)), 256);
    assert.ok(z.every((v) => v === 0), `${t}: zeros`);
  }
  // values already on the Q8_0 grid come back exactly
  const grid = Float32Array.from({ length: 32 }, (_, i) => (i - 16) * 0.25);
  grid[0] = -127 * 0.25;
  assert.deepEqual(
    dequantizeGgml("Q8_0", quantizeGgml("Q8_0", grid), 32),
    grid,
  );
});

Deno.test("ggml blocks: hand-built blocks decode as the layout says", () => {
  const put16 = (b: Uint8Array, o: number, v: number) => {
    const h = f32ToF16(v);
    b[o] = h & 255;
    b[o + 1] = h >> 8;
  };
  // Q5_1: d = 0.5, m = -1; element 3: nibble 7, qh bit 3 set -> q = 23; element 19: high nibble 2, qh bit 19 clear
  const q51 = new Uint8Array(24);
  put16(q51, 0, 0.5);
  put16(q51, 2, -1);
  q51[4] = 0x08; // qh bits 0..7: bit 3
  q51[8 + 3] = 0x27;
  let y = dequantizeGgml("Q5_1", q51, 32);
  assert.equal(y[3], 23 * 0.5 - 1);
  assert.equal(y[19], 2 * 0.5 - 1);
  // Q4_K: d = 1, dmin = 0.5; sub-block 5 (elements 160..191, high nibbles of
  // qs[64..95]): scale 37 = 0b10_0101 (low 4 in byte 9, top 2 in byte 1),
  // min 9 (low 4 in byte 9's high nibble, top bits 0 in byte 5)
  const q4k = new Uint8Array(144);
  put16(q4k, 0, 1);
  put16(q4k, 2, 0.5);
  q4k[4 + 9] = 0x95;
  q4k[4 + 1] = 0b10 << 6;
  q4k[16 + 64 + 7] = 0xc0; // element 160 + 7: nibble 12
  y = dequantizeGgml("Q4_K", q4k, 256);
  assert.equal(y[167], 37 * 12 - 0.5 * 9);
  assert.equal(y[160], -0.5 * 9);
  // Q6_K: d = 0.25; element 200 = 128 + 64 + 8: ql[64 + 8] high nibble, qh[32 + 8] bits 4..5, scale 8 + 4
  const q6k = new Uint8Array(210);
  put16(q6k, 208, 0.25);
  q6k[64 + 8] = 0xa0;
  q6k[128 + 32 + 8] = 0b11 << 4;
  q6k[192 + 12] = 0xfe; // -2
  const y6 = dequantizeGgml("Q6_K", q6k, 256);
  assert.equal(y6[200], 0.25 * -2 * ((0xa | (3 << 4)) - 32));
  // IQ4_NL: d = 2, element 17: high nibble of byte 1 = 15 -> 113
  const iq = new Uint8Array(18);
  put16(iq, 0, 2);
  iq[2 + 1] = 0xf0;
  y = dequantizeGgml("IQ4_NL", iq, 32);
  assert.equal(y[17], 226);
  assert.equal(y[1], 2 * -127);
  // a row of a [2, 256] Q6_K tensor
  const two = new Uint8Array(420);
  two.set(q6k, 210);
  assert.deepEqual(dequantizeGgmlRow("Q6_K", two, 1, 256), y6);
});

Deno.test("ggml blocks: partial blocks and short buffers are usage errors", () => {
  assert.throws(
    () => dequantizeGgml("Q4_K", new Uint8Array(144), 128),
    UsageError,
  );
  assert.throws(
    () => dequantizeGgml("Q4_K", new Uint8Array(143), 256),
    UsageError,
  );
  assert.throws(() => quantizeGgml("Q2_K", new Float32Array(32)), UsageError);
  assert.throws(
    () => dequantizeGgmlRow("Q8_0", new Uint8Array(34), 1, 32),
    UsageError,
  );
});
