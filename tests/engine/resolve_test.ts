/**
 * Model resolution: a shard directory is used as is; a Hugging Face
 * directory is split into the cache ($STRATA_CACHE, or layerShardsSavingPath)
 * on first use and reused afterwards; a missing path that is not a repo id
 * is a one-line FormatError.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { cacheDirFor, resolveModel } from "../../lib/model/resolve.ts";
import { FormatError } from "../../lib/errors.ts";
import { tempRoot, tinyShards, VARIANTS } from "./_models.ts";

Deno.test("resolve: shard dir as is; HF dir split once into the cache, then reused", async () => {
  const v = VARIANTS[1];
  const { hf, shards } = await tinyShards(v.name, v);
  assert.equal(await resolveModel(shards), shards);
  const cache = join(await tempRoot(), "resolve-cache");
  const old = Deno.env.get("STRATA_CACHE");
  Deno.env.set("STRATA_CACHE", cache);
  try {
    const lines: string[] = [];
    const dir = await resolveModel(hf, {
      quantize: "q8",
      log: (s) => lines.push(s),
    });
    assert.equal(dir, cacheDirFor(hf, "q8"));
    assert.ok(dir.startsWith(cache));
    assert.ok(lines.some((l) => l.startsWith("splitting")));
    const manifest = JSON.parse(
      await Deno.readTextFile(join(dir, "manifest.json")),
    );
    assert.equal(manifest.quantization, "q8");
    const mtime = (await Deno.stat(join(dir, "manifest.json"))).mtime;
    const again: string[] = [];
    assert.equal(
      await resolveModel(hf, { quantize: "q8", log: (s) => again.push(s) }),
      dir,
    );
    assert.deepEqual(again, [], "reused without splitting again");
    assert.deepEqual(
      (await Deno.stat(join(dir, "manifest.json"))).mtime,
      mtime,
    );
    // layerShardsSavingPath overrides the cache
    const custom = join(await tempRoot(), "custom-shards");
    assert.equal(
      await resolveModel(hf, { layerShardsSavingPath: custom }),
      custom,
    );
    assert.ok((await Deno.stat(join(custom, "manifest.json"))).isFile);
  } finally {
    if (old === undefined) Deno.env.delete("STRATA_CACHE");
    else Deno.env.set("STRATA_CACHE", old);
  }
  await assert.rejects(() => resolveModel("./no/such/model"), FormatError);
  await assert.rejects(
    () => resolveModel("/no/such/dir"),
    /no such file or directory/,
  );
});
