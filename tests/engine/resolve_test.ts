/**
 * Model resolution: a shard directory is used as is; a Hugging Face
 * directory is split into the cache ($STRATA_CACHE, or layerShardsSavingPath)
 * on first use and reused afterwards; a missing path that is not a repo id
 * is a one-line FormatError.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { cacheDirFor, resolveModel } from "../../lib/engine/resolve.ts";
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
    assert.ok(dir.startsWith(cache));
    assert.match(dir, /-[0-9a-f]{8}-q8$/);
    assert.notEqual(dir, cacheDirFor(hf, "q8"), "the key holds a fingerprint");
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

Deno.test("resolve: a source replaced at the same path is split again, not served stale", async () => {
  const v = VARIANTS[0];
  const { hf } = await tinyShards(v.name, v);
  const copy = join(await tempRoot(), "resolve-stale-src");
  await Deno.mkdir(copy, { recursive: true });
  for await (const e of Deno.readDir(hf)) {
    if (e.isFile) await Deno.copyFile(join(hf, e.name), join(copy, e.name));
  }
  const cache = join(await tempRoot(), "resolve-stale-cache");
  const old = Deno.env.get("STRATA_CACHE");
  Deno.env.set("STRATA_CACHE", cache);
  try {
    const first = await resolveModel(copy);
    assert.equal(await resolveModel(copy), first, "unchanged source: reused");
    // the same path now holds a different file (a new modification time)
    const cfg = join(copy, "config.json");
    await Deno.utime(cfg, new Date(), new Date(Date.now() + 60_000));
    const lines: string[] = [];
    const second = await resolveModel(copy, { log: (l) => lines.push(l) });
    assert.notEqual(second, first);
    assert.ok(lines.some((l) => l.startsWith("splitting")));
  } finally {
    if (old === undefined) Deno.env.delete("STRATA_CACHE");
    else Deno.env.set("STRATA_CACHE", old);
  }
});
