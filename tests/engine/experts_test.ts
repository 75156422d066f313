/**
 * The expert store's two upload paths (lib/engine/_experts.ts): from a
 * memory mapping of each layer file, and through pooled host images
 * (`map: false`, the path without FFI or with STRATA_NO_MMAP). Through a
 * fake upload target that keeps the bytes, every tensor of every loaded
 * expert lands in its slot equal to the shard file's bytes (read back with
 * readRange, the independent truth) on both paths, with all of a layer's
 * experts loading at once (more loads than host images), and the same
 * counters on both.
 */
import assert from "node:assert/strict";
import { tinyMoeVariants } from "../../lib/testing/tiny_model.ts";
import { tinyShards } from "./_models.ts";
import { ShardDir } from "../../lib/format/shards.ts";
import { SafetensorsFile } from "../../lib/format/safetensors.ts";
import {
  expertLayouts,
  ExpertStore,
  HEAP_IMAGES,
} from "../../lib/engine/_experts.ts";
import type { UploadTarget } from "../../lib/engine/reader.ts";
import { canMap } from "../../lib/engine/_mmap.ts";

/** A fake GPU: buffers are byte arrays; writes must be 4-byte sized and aligned. */
function fakeTarget(): UploadTarget<GPUBuffer> & { flushes: number } {
  const t = {
    flushes: 0,
    create: (size: number) => new Uint8Array(size),
    write: (b: Uint8Array, offset: number, data: Uint8Array) => {
      assert.equal(offset % 4, 0, `write offset ${offset}`);
      assert.equal(data.length % 4, 0, `write size ${data.length}`);
      b.set(data, offset);
    },
    wait: () => Promise.resolve(),
    flush: () => void t.flushes++,
    destroy: () => {},
  };
  return t as unknown as UploadTarget<GPUBuffer> & { flushes: number };
}

const LIMITS = {
  maxStorageBufferBindingSize: 128 << 20,
  maxBufferSize: 1 << 30,
};

Deno.test("expert store: mapped and host-image uploads put the file's bytes in the slots", async () => {
  const v = tinyMoeVariants().find((x) =>
    x.arch === "mixtral" && x.dtype === "BF16"
  )!;
  const { shards: dir } = await tinyShards(v.name, v);
  const shards = await ShardDir.open(dir);
  const cfg = shards.config;
  const files: SafetensorsFile[] = [];
  for (let i = 0; i < cfg.numLayers; i++) {
    files.push(await SafetensorsFile.open(shards.layerPath(i)));
  }
  try {
    const ex = expertLayouts(cfg, files, LIMITS);
    const perLayer = ex.layouts.find((x) => x)!.length;
    assert.ok(perLayer > HEAP_IMAGES, "more loads at once than host images");
    const run = async (map: boolean) => {
      const target = fakeTarget();
      const store = await ExpertStore.create({
        target,
        files,
        layouts: ex,
        slots: perLayer,
        map,
      });
      assert.equal(store.allResident, false);
      try {
        for (let l = 0; l < cfg.numLayers; l++) {
          const lays = ex.layouts[l];
          if (!lays) continue;
          assert.equal(store.mapped(l), map && canMap());
          const experts = lays.map((_, e) => e);
          // a prefetch of the layer, then all of its experts at once
          store.prefetch(l, experts.slice(0, 2));
          const ws = await store.ensure(l, experts);
          for (const [e, w] of ws.entries()) {
            const slot = w.wGate.parts[0].data.buffer as unknown as Uint8Array;
            for (const ent of lays[e].entries.values()) {
              assert.equal(ent.kind, "matrix");
              if (ent.kind !== "matrix") continue;
              for (const c of ent.copies) {
                const want = await files[l].readRange(
                  c.fileOffset,
                  new Uint8Array(c.length),
                );
                const end = (c.imageOffset + c.length + 3) & ~3;
                const got = slot.slice(c.imageOffset, end);
                assert.deepEqual(got.subarray(0, c.length), want);
                assert.ok(got.subarray(c.length).every((b) => b === 0));
              }
            }
          }
        }
        return { stats: store.stats, flushes: target.flushes };
      } finally {
        await store.destroy();
      }
    };
    const mapped = await run(true);
    const heap = await run(false);
    assert.ok(mapped.stats.loaded > 0);
    assert.equal(mapped.stats.loaded, heap.stats.loaded);
    assert.equal(mapped.stats.bytesMoved, heap.stats.bytesMoved);
    assert.ok(heap.flushes >= heap.stats.loaded);
  } finally {
    for (const f of files) f.close();
  }
});
