/**
 * The registry of weight encodings (lib/quant/encoding.ts): every record's
 * CPU decode against the float64 element decoder of tests/reference/embed.ts
 * (written from the format rules), on random stored bytes (f32/f16/bf16
 * exact; packed encodings within one f32 rounding of d·q), its encode/decode
 * round trip, its GGUF repack, its shapes, and the CLI-facing helpers.
 */
import assert from "node:assert/strict";
import { UsageError } from "../../lib/errors.ts";
import {
  decodeRow,
  type Encoding,
  encoding,
  ENCODINGS,
  floatEncoding,
  ggufEncoding,
  isPacked,
  PACKED,
  parseQuantization,
  quantizationChoices,
  storedShapes,
} from "../../lib/quant/encoding.ts";
import { section } from "../../lib/gpu/_wgsl.ts";
import { f16ToF32 } from "../../lib/quant/half.ts";
import { embedRef, type EmbedTable } from "../reference/embed.ts";

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Random f16 bits of a normal number with exponent in [e0, e1]. */
function randHalf(r: () => number, e0: number, e1: number): number {
  const e = e0 + Math.floor(r() * (e1 - e0 + 1));
  return (r() < 0.5 ? 0x8000 : 0) | (e << 10) | Math.floor(r() * 1024);
}

/** Random stored bytes of a [rows, cols] weight of `e` (finite values). */
function randomStored(
  e: Encoding,
  rows: number,
  cols: number,
  r: () => number,
): { data: Uint8Array; scales?: Uint16Array } {
  const [rb] = e.rowBytes(cols);
  if (e.float === "F32") {
    const f = new Float32Array(rows * cols).map(() => (r() - 0.5) * 10);
    return { data: new Uint8Array(f.buffer) };
  }
  if (e.float === "F16" || e.float === "BF16") {
    const h = new Uint16Array(rows * cols).map(() =>
      e.float === "F16"
        ? randHalf(r, 1, 30)
        : (r() < 0.5 ? 0x8000 : 0) | ((100 + Math.floor(r() * 50)) << 7) |
          Math.floor(r() * 128)
    );
    return { data: new Uint8Array(h.buffer) };
  }
  const data = new Uint8Array(rows * rb).map(() => Math.floor(r() * 256));
  const nb = Math.ceil(cols / e.blockElems);
  const scales = new Uint16Array(rows * nb).map(() => randHalf(r, 5, 16));
  return { data, scales };
}

function refTable(
  e: Encoding,
  rows: number,
  cols: number,
  p: { data: Uint8Array; scales?: Uint16Array },
): EmbedTable {
  return e.float ? { dtype: e.name as "f32", rows, cols, bytes: p.data } : {
    dtype: e.name as "q8",
    rows,
    cols,
    data: p.data,
    scales: p.scales!,
  };
}

for (const e of ENCODINGS.values()) {
  // GGUF block encodings (scales inline): their decoder is checked bit for bit
  // against ggml's in tests/quant/ggml_blocks_test.ts, which also bounds their
  // round trip; their kernels in tests/gpu/ggml_kernels_test.ts
  const inline = e.scales === "inline";
  Deno.test({
    name:
      `encoding ${e.name}: decode matches the float64 reference (cols 100, 37, 32)`,
    ignore: inline,
  }, () => {
    const r = rng(e.name.length * 7919 + e.blockBytes);
    for (const cols of [100, 37, 32]) {
      const rows = 5;
      const p = randomStored(e, rows, cols, r);
      const [rb, sb] = e.rowBytes(cols);
      assert.equal(p.data.byteLength, rows * rb);
      assert.equal(p.scales?.byteLength ?? 0, rows * sb);
      const want = embedRef(refTable(e, rows, cols, p), [0, 1, 2, 3, 4]);
      const got = e.decode(p, rows, cols);
      assert.equal(got.length, rows * cols);
      const rtol = e.packed ? 1e-6 : 0;
      for (let i = 0; i < want.length; i++) {
        assert.ok(
          Math.abs(got[i] - want[i]) <= rtol * Math.abs(want[i]),
          `${e.name} cols ${cols} [${i}]: ${got[i]} vs ${want[i]}`,
        );
      }
      // one row at a time, from raw bytes as read from a file
      const out = new Float32Array(cols);
      const row = 3;
      const sc = p.scales
        ? new Uint8Array(p.scales.buffer).slice(row * sb, (row + 1) * sb)
        : undefined;
      decodeRow(e, p.data.slice(row * rb, (row + 1) * rb), sc, out);
      assert.deepEqual([...out], [
        ...got.subarray(row * cols, (row + 1) * cols),
      ]);
    }
  });

  Deno.test({
    name: `encoding ${e.name}: encode → decode round trip and stored shapes`,
    ignore: inline,
  }, () => {
    const r = rng(11);
    const rows = 3, cols = 45;
    const w = new Float32Array(rows * cols).map(() => (r() - 0.5) * 4);
    const p = e.encode(w, rows, cols);
    const [rb, sb] = e.rowBytes(cols);
    assert.equal(p.data.byteLength, rows * rb);
    assert.equal(p.scales?.byteLength ?? 0, rows * sb);
    const s = storedShapes(e, rows, cols);
    assert.equal(s.data.dtype, e.storage);
    assert.equal(s.scales === null, e.scales !== "tensor");
    const back = e.decode(p, rows, cols);
    // plain floats: the f16/bf16 rounding; packed: at most one step d of the block
    const nb = Math.ceil(cols / e.blockElems);
    for (let i = 0; i < w.length; i++) {
      const row = Math.floor(i / cols);
      const b = Math.floor((i % cols) / e.blockElems);
      const tol = e.float === "F32"
        ? 0
        : e.float
        ? Math.abs(w[i]) * 2 ** -7
        : Math.abs(f16ToF32(p.scales![row * nb + b])) * 1.001;
      assert.ok(
        Math.abs(back[i] - w[i]) <= tol,
        `${e.name} [${i}]: ${back[i]} vs ${w[i]} (tol ${tol})`,
      );
    }
  });

  Deno.test(`encoding ${e.name}: WGSL decode snippet has the sections its kernels use`, () => {
    assert.ok(section(e.wgsl, "scalar").includes("fn weight_at("), e.name);
    assert.ok(
      e.gpu.align % 4 === 0 && e.gpu.matvec.rows > 0 && e.gpu.matmul.tile > 0,
    );
    assert.equal(ENCODINGS.get(e.name), e);
    if (e.float) assert.equal(floatEncoding(e.float), e);
    if (e.gguf) assert.equal(ggufEncoding(e.gguf.type), e);
  });
}

Deno.test("encoding: GGUF scale-first blocks repack into data rows + scales", () => {
  const r = rng(5);
  for (const e of PACKED) {
    if (!e.gguf || e.scales === "inline") continue; // inline: kept as in the file
    const rows = 2, cols = 64, nb = cols / 32;
    const q = randomStored(e, rows, cols, r);
    // GGUF layout: per block, the f16 scale then the block's bytes
    const blockBytes = e.blockBytes + 2;
    const gguf = new Uint8Array(rows * nb * blockBytes);
    for (let b = 0; b < rows * nb; b++) {
      gguf[b * blockBytes] = q.scales![b] & 0xff;
      gguf[b * blockBytes + 1] = q.scales![b] >> 8;
      gguf.set(
        q.data.subarray(b * e.blockBytes, (b + 1) * e.blockBytes),
        b * blockBytes + 2,
      );
    }
    const p = e.gguf.repack(gguf, rows, cols);
    assert.deepEqual(p.data, q.data, e.name);
    assert.deepEqual(p.scales, q.scales, e.name);
  }
});

Deno.test("encoding: names, quantization choices and errors", () => {
  assert.throws(() => encoding("q3"), UsageError);
  assert.equal(isPacked("f16"), false);
  assert.ok(PACKED.length >= 1 && PACKED.every((e) => isPacked(e.name)));
  assert.equal(parseQuantization("none"), "none");
  for (const e of PACKED) assert.equal(parseQuantization(e.name), e.name);
  assert.throws(
    () => parseQuantization("f16", "--quantize"),
    (err: Error) =>
      err instanceof UsageError &&
      err.message.startsWith(
        `--quantize must be ${quantizationChoices(", ", " or ")}`,
      ),
  );
  assert.equal(
    quantizationChoices(),
    ["none", ...PACKED.map((e) => e.name)].join("|"),
  );
});

Deno.test("encoding: GGUF block encodings keep the file's bytes and pad rows to whole blocks", () => {
  for (const e of ENCODINGS.values()) {
    if (e.scales !== "inline") continue;
    assert.ok(e.gguf && e.packed && e.storage === "U8" && !e.float, e.name);
    assert.equal(ggufEncoding(e.gguf.type), e);
    const rows = 3, cols = e.blockElems + e.blockElems / 2 + 3; // a whole block + a padded one
    const r = rng(e.blockBytes);
    const w = new Float32Array(rows * cols).map(() => r() - 0.5);
    const p = e.encode(w, rows, cols);
    assert.deepEqual(e.rowBytes(cols), [2 * e.blockBytes, 0]);
    assert.equal(p.data.byteLength, rows * 2 * e.blockBytes);
    assert.equal(e.gguf.repack(p.data, rows, cols).data, p.data, "no copy");
    const back = e.decode(p, rows, cols);
    assert.equal(back.length, rows * cols);
    let err = 0;
    for (let i = 0; i < w.length; i++) {
      err = Math.max(err, Math.abs(back[i] - w[i]));
    }
    assert.ok(
      err < 0.5,
      `${e.name}: max error ${err} on values in [-0.5, 0.5)`,
    );
    // row 1 alone, as read from a shard file
    const out = new Float32Array(cols);
    decodeRow(
      e,
      p.data.slice(2 * e.blockBytes, 4 * e.blockBytes),
      undefined,
      out,
    );
    assert.deepEqual([...out], [...back.subarray(cols, 2 * cols)]);
    assert.deepEqual(storedShapes(e, rows, cols), {
      data: { dtype: "U8", shape: [rows, 2 * e.blockBytes] },
      scales: null,
    });
  }
});
