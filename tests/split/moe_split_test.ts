/**
 * Splitting mixture-of-experts checkpoints: the manifest records the
 * tensor-per-expert layout, each expert's three tensors are adjacent in its
 * layer's shard (one byte range per expert, read without the others), a
 * tampered `experts` record is refused, and `--quantize q8` packs the expert
 * matrices but keeps the router in its source precision.
 */
import assert from "node:assert/strict";
import { makeTinyModel } from "../../lib/testing/tiny_model.ts";
import { openSource } from "../../lib/split/open_source.ts";
import { splitModel } from "../../lib/split/split.ts";
import { ShardDir } from "../../lib/format/shards.ts";
import { SafetensorsFile } from "../../lib/format/safetensors.ts";
import { layerTensors } from "../../lib/model/tensors.ts";
import { FormatError } from "../../lib/errors.ts";

Deno.test("split moe: manifest experts record, one byte range per expert, q8 experts", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "strata-moe-split-" });
  try {
    const hf = `${tmp}/hf`;
    await makeTinyModel(hf, { arch: "qwen2_moe", dtype: "BF16" });
    for (const quantize of ["none", "q8"] as const) {
      const out = `${tmp}/${quantize}`;
      const src = await openSource(hf);
      try {
        await splitModel(src, { out, quantize });
      } finally {
        src.close();
      }
      const dir = await ShardDir.open(out);
      const m = dir.manifest;
      assert.deepEqual(m.experts, {
        layout: "tensor-per-expert",
        experts: 6,
        topK: 2,
        sparseLayers: [1, 2], // mlp_only_layers [0]
        names: {
          gate: "model.layers.{i}.mlp.experts.{e}.gate_proj.weight",
          up: "model.layers.{i}.mlp.experts.{e}.up_proj.weight",
          down: "model.layers.{i}.mlp.experts.{e}.down_proj.weight",
        },
      });
      const f = await SafetensorsFile.open(dir.layerPath(1));
      try {
        const byExpert = new Map<number, string[]>();
        for (const t of layerTensors(dir.config, 1)) {
          if (t.expert !== undefined) {
            byExpert.set(t.expert, [...byExpert.get(t.expert) ?? [], t.name]);
          }
        }
        assert.equal(byExpert.size, 6);
        for (const names of byExpert.values()) {
          // the expert's tensors (and q8 scales) form one contiguous range
          const all = names.flatMap((n) =>
            f.tensors.has(n + ".scales") ? [n, n + ".scales"] : [n]
          ).map((n) => f.tensors.get(n)!);
          all.sort((a, b) => a.offset - b.offset);
          for (let i = 1; i < all.length; i++) {
            const gap = all[i].offset -
              (all[i - 1].offset + all[i - 1].byteLength);
            assert.ok(gap >= 0 && gap < 64, `gap ${gap}`);
          }
          if (quantize === "q8") {
            assert.equal(m.quant[names[0]]?.type, "q8");
          }
        }
        const router = "model.layers.1.mlp.gate.weight";
        assert.equal(f.tensors.get(router)?.dtype, "BF16");
        assert.equal(m.quant[router], undefined);
      } finally {
        f.close();
      }
      // a tampered record is refused
      const path = `${out}/manifest.json`;
      const raw = JSON.parse(await Deno.readTextFile(path));
      raw.experts.topK = 3;
      await Deno.writeTextFile(path, JSON.stringify(raw));
      await assert.rejects(() => ShardDir.open(out), FormatError);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
