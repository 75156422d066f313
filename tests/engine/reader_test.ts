/**
 * The layer reader against plain files and a fake upload target (every
 * write logged in call order, which is WebGPU queue order): streamed layers
 * arrive with the right bytes, in order, across passes; a slot is never
 * written while the load it holds has not been released (acquired and
 * submitted); prefetch reads ahead and uploads the next pass's first
 * streamed layers at the end of a pass; without prefetch it waits for the
 * GPU after every streamed layer. Also the residency plan and size parsing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  SafetensorsFile,
  SafetensorsWriter,
} from "../../lib/format/safetensors.ts";
import {
  layoutOf,
  readImage,
  type TensorLayout,
} from "../../lib/engine/_layout.ts";
import { LayerReader, type UploadTarget } from "../../lib/engine/reader.ts";
import { canMap } from "../../lib/engine/_mmap.ts";
import { parseSize, planResidency } from "../../lib/engine/plan.ts";
import { BudgetError, UsageError } from "../../lib/errors.ts";

interface FakeBuf {
  id: number;
  label: string;
  data: Uint8Array;
}

function fakeTarget(log: string[]) {
  let next = 0;
  let waits = 0;
  const target: UploadTarget<FakeBuf> = {
    create: (size, label) => ({
      id: next++,
      label,
      data: new Uint8Array(size),
    }),
    write: (b, off, data) => {
      b.data.set(data, off);
      log.push(`write ${b.label}`);
    },
    wait: () => {
      waits++;
      log.push("wait");
      return Promise.resolve();
    },
    destroy: () => {},
  };
  return { target, waits: () => waits };
}

async function makeLayers(dir: string, n: number): Promise<string[]> {
  const paths: string[] = [];
  for (let i = 0; i < n; i++) {
    const p = join(dir, `${i}.safetensors`);
    const rows = 24, cols = 40;
    const w = new Float32Array(rows * cols).map((_, j) => i * 1000 + j);
    const norm = new Uint16Array(cols).map((_, j) => 0x3c00 + j); // f16 1.0, 1.00098, ...
    const wr = await SafetensorsWriter.create(p, [
      { name: "w", dtype: "F32", shape: [rows, cols] },
      { name: "n", dtype: "F16", shape: [cols] },
    ]);
    await wr.write("w", new Uint8Array(w.buffer));
    await wr.write("n", new Uint8Array(norm.buffer));
    await wr.close();
    paths.push(p);
  }
  return paths;
}

async function setup(n: number) {
  const dir = await Deno.makeTempDir({ prefix: "strata-reader-" });
  const paths = await makeLayers(dir, n);
  const files = await Promise.all(paths.map((p) => SafetensorsFile.open(p)));
  // parts of at most 1 KiB: the 24x40 f32 matrix becomes 4 parts
  const layouts: TensorLayout[] = files.map((f) =>
    layoutOf(f, ["w", "n"], 1024)
  );
  const images = await Promise.all(layouts.map(async (l, i) => {
    const img = new Uint8Array(l.bytes);
    await readImage(files[i], l, img);
    return img;
  }));
  return {
    files,
    layouts,
    images,
    cleanup: async () => {
      for (const f of files) f.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("reader: layout splits matrices into parts and decodes vectors to f32", async () => {
  const s = await setup(1);
  try {
    const w = s.layouts[0].entries.get("w")!;
    assert.equal(w.kind, "matrix");
    if (w.kind === "matrix") {
      assert.equal(w.parts.length, 4); // 6 rows of 160 bytes per 1 KiB part
      for (const p of w.parts) assert.equal(p.data.offset % 256, 0);
      const img = new Float32Array(s.images[0].buffer);
      assert.equal(img[w.parts[1].data.offset / 4], 6 * 40); // row 6, col 0 of layer 0
    }
    // segments: buffers of ≤ 2 KiB hold two 1 KiB parts each
    const seg = layoutOf(s.files[0], ["w", "n"], 1024, 2048);
    assert.equal(seg.segments.length, 3);
    assert.ok(seg.segments.every((b) => b <= 2048));
    assert.equal(seg.bytes, seg.segments.reduce((a, b) => a + b, 0));
    const sw = seg.entries.get("w")!;
    if (sw.kind === "matrix") {
      assert.deepEqual(sw.parts.map((p) => p.segment), [0, 0, 1, 1]);
      // segment 1's image starts with rows 12.. of the matrix
      const img = new Uint8Array(seg.segments[1]);
      await readImage(s.files[0], seg, img, 1);
      assert.equal(new Float32Array(img.buffer)[0], 12 * 40);
    }
    const n = s.layouts[0].entries.get("n")!;
    assert.equal(n.kind, "vector");
    if (n.kind === "vector") {
      const v = new Float32Array(s.images[0].buffer, n.offset, 40);
      assert.equal(v[0], 1);
      assert.equal(v[1], 1 + 1 / 1024);
    }
  } finally {
    await s.cleanup();
  }
});

for (
  const [prefetch, mmap] of [[true, false], [false, false], [true, true], [
    false,
    true,
  ]]
) {
  Deno.test(`reader: ring order, contents and slot safety across passes (prefetch ${prefetch}, mmap ${mmap})`, async () => {
    const s = await setup(6);
    const log: string[] = [];
    const { target, waits } = fakeTarget(log);
    const slots = prefetch ? 3 : 1;
    const slotBytes = Math.max(...s.layouts.map((l) => l.bytes));
    const reader = await LayerReader.create({
      target,
      files: s.files,
      layouts: s.layouts,
      resident: [0],
      streamed: [1, 2, 3, 4, 5],
      slots,
      slotBytes,
      prefetch,
      mmap,
    });
    try {
      // which load each slot holds, and whether that load's compute was released
      const inUse = new Map<string, boolean>();
      for (let pass = 0; pass < 3; pass++) {
        for (let l = 0; l < 6; l++) {
          const before = log.length;
          const got = await reader.acquire(l);
          // the bytes in the buffer are the layer's image
          assert.deepEqual(
            got.buffer.data.subarray(0, got.layout.bytes),
            s.images[l],
            `pass ${pass} layer ${l}`,
          );
          assert.equal(got.streamed, l !== 0);
          if (got.streamed) {
            // writes done by this acquire must target slots whose last load was released
            for (const e of log.slice(before)) {
              if (e.startsWith("write slot.")) {
                const slot = e.slice(6);
                assert.notEqual(
                  inUse.get(slot),
                  true,
                  `write into ${slot} while its load is unreleased`,
                );
              }
            }
            inUse.set(got.buffer.label, true);
          }
          // (the compute of layer l would be submitted here)
          await reader.release(l);
          if (got.streamed) inUse.set(got.buffer.label, false);
        }
        const before = log.length;
        reader.pump();
        if (prefetch) {
          // reads of the next pass's first layers have had time to finish before the pump
          await new Promise((r) => setTimeout(r, 50));
          reader.pump();
          assert.ok(
            log.length > before,
            "the next pass's first streamed layers upload at the end of the pass",
          );
        }
      }
      if (!prefetch) {
        assert.equal(
          waits(),
          15,
          "serial mode waits after every streamed layer",
        );
      } else assert.equal(waits(), 0, "prefetch mode never waits for the GPU");
      assert.ok(reader.stats.bytesStreamed >= 15 * s.layouts[1].bytes);
      if (mmap && canMap()) {
        // uploaded straight from the mappings: nothing was read
        assert.equal(reader.stats.readS, 0);
      }
    } finally {
      await reader.destroy();
      await s.cleanup();
    }
  });
}

Deno.test("reader: layers acquired out of order are an error", async () => {
  const s = await setup(3);
  const { target } = fakeTarget([]);
  const reader = await LayerReader.create({
    target,
    files: s.files,
    layouts: s.layouts,
    resident: [],
    streamed: [0, 1, 2],
    slots: 2,
    slotBytes: s.layouts[0].bytes,
  });
  try {
    await assert.rejects(() => reader.acquire(1), /out of order/);
  } finally {
    await reader.destroy();
    await s.cleanup();
  }
});

Deno.test("plan: sizes, essentials first, most resident layers, BudgetError", () => {
  assert.equal(parseSize("2GB"), 2e9);
  assert.equal(parseSize("512MiB"), 512 * 2 ** 20);
  assert.equal(parseSize("1.5 GiB"), 1.5 * 2 ** 30);
  assert.equal(parseSize(4096), 4096);
  assert.throws(() => parseSize("lots"), UsageError);
  assert.throws(() => parseSize("-1GB"), UsageError);
  const base = {
    layerBytes: [100, 100, 100, 100, 100, 100],
    headBytes: 50,
    kvBytesPerLayer: 5,
    activationBytes: 20,
    slots: 3,
  };
  const all = planResidency({ ...base, budget: 10_000 });
  assert.deepEqual([
    all.resident.length,
    all.streamed.length,
    all.slots,
    all.bytesStreamedPerToken,
  ], [6, 0, 0, 0]);
  // essentials 100; 100 + 3*100 slots + 2 resident = 600
  const p = planResidency({ ...base, budget: 600 });
  assert.deepEqual(p.resident, [0, 1]);
  assert.deepEqual(p.streamed, [2, 3, 4, 5]);
  assert.equal(p.slots, 3);
  assert.equal(p.bytesStreamedPerToken, 400);
  assert.ok(p.totalBytes <= 600);
  // one slot only: fewer slots are tried before giving up
  const one = planResidency({ ...base, budget: 250 });
  assert.deepEqual([one.resident.length, one.slots], [0, 1]);
  assert.throws(() => planResidency({ ...base, budget: 150 }), BudgetError);
  assert.throws(() => planResidency({ ...base, budget: 150 }), /need 200 B/);
});
