/**
 * Atomicity, resume and --delete-original: a split that fails or is killed
 * midway never leaves a file that looks finished; re-running completes it
 * with output identical to an uninterrupted run; sources survive every failed
 * run and are deleted only after a verified success.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeTinyModel } from "../../lib/testing/tiny_model.ts";
import { copyDir, listFiles, runCli, sha256, tempDir } from "./_helpers.ts";

async function hashes(dir: string): Promise<Map<string, string>> {
  const m = new Map<string, string>();
  for (const f of await listFiles(dir)) m.set(f, await sha256(join(dir, f)));
  return m;
}

/** Every file under `out` with a final name equals the reference file. */
async function assertNothingLooksFinished(
  out: string,
  ref: Map<string, string>,
): Promise<void> {
  for (const f of await listFiles(out)) {
    if (f.endsWith(".partial") || f === ".strata-split.json") continue;
    assert.ok(f !== "manifest.json", "manifest.json written by a failed run");
    assert.equal(
      await sha256(join(out, f)),
      ref.get(f),
      `${f} looks finished but differs`,
    );
  }
}

for (const quantize of ["none", "q4"]) {
  Deno.test(`split --quantize ${quantize}: failed and killed runs resume to identical output`, async () => {
    const [dir, cleanup] = await tempDir();
    try {
      const m = await makeTinyModel(join(dir, "m"), {
        arch: "qwen2",
        dtype: "BF16",
        sharded: true,
      });
      const q = ["--quantize", quantize];
      const ref = join(dir, "ref");
      const r0 = await runCli(["split", m.dir, "--out", ref, ...q]);
      assert.equal(r0.code, 0, r0.stderr);
      const want = await hashes(ref);

      const out = join(dir, "out");
      // 1. An error in the middle of the 6th file (after 5 finished).
      const r1 = await runCli(["split", m.dir, "--out", out, ...q], {
        STRATA_SPLIT_FAIL_AFTER: "5",
      });
      assert.equal(r1.code, 1);
      assert.match(r1.stderr, /injected failure/);
      await assertNothingLooksFinished(out, want);
      // 2. SIGKILL in the middle of a later file (partial left behind).
      const r2 = await runCli(["split", m.dir, "--out", out, ...q], {
        STRATA_SPLIT_KILL_AFTER: "2",
      });
      assert.equal(r2.signal, "SIGKILL");
      const files = await listFiles(out);
      assert.ok(files.some((f) => f.endsWith(".partial")), files.join(" "));
      await assertNothingLooksFinished(out, want);
      // 3. A finished file corrupted while nobody was looking is redone.
      await Deno.writeTextFile(join(out, "embed.safetensors"), "garbage");
      // 4. Re-run completes: identical to the uninterrupted run.
      const r3 = await runCli(["split", m.dir, "--out", out, ...q]);
      assert.equal(r3.code, 0, r3.stderr);
      assert.match(r3.stderr, /already done/);
      assert.deepEqual(await hashes(out), want);
    } finally {
      await cleanup();
    }
  });
}

Deno.test("split --delete-original: sources survive failures, go after success", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const m = await makeTinyModel(join(dir, "m"), {
      arch: "llama",
      dtype: "F16",
      sharded: true,
    });
    const src = join(dir, "src");
    await copyDir(m.dir, src);
    const before = await hashes(src);
    const out = join(dir, "out");
    // 8 files in all (4 text files, embed, 2 layers, head). Each failing run
    // finishes some more, then fails or dies; the last one fails after every
    // shard is written, just before the manifest.
    const runs: [Record<string, string>, number][] = [
      [{ STRATA_SPLIT_FAIL_AFTER: "0" }, 0],
      [{ STRATA_SPLIT_KILL_AFTER: "2" }, 2],
      [{ STRATA_SPLIT_FAIL_AFTER: "1" }, 3],
      [{ STRATA_SPLIT_FAIL_AFTER: "5" }, 8],
    ];
    for (const [env, done] of runs) {
      const r = await runCli(
        ["split", src, "--out", out, "--delete-original"],
        env,
      );
      if (env.STRATA_SPLIT_KILL_AFTER) assert.equal(r.signal, "SIGKILL");
      else assert.equal(r.code, 1, r.stderr);
      assert.deepEqual(await hashes(src), before, JSON.stringify(env));
      const finished = (await listFiles(out)).filter((f) =>
        !f.endsWith(".partial") && f !== ".strata-split.json"
      );
      assert.equal(finished.length, done, finished.join(" "));
      assert.ok(!finished.includes("manifest.json"));
    }
    // Not enough space: refused before anything is deleted.
    const full = await runCli(
      ["split", src, "--out", out, "--delete-original"],
      {
        STRATA_SPLIT_FREE_BYTES: "10",
      },
    );
    assert.equal(full.code, 1);
    assert.deepEqual(await hashes(src), before);

    const ok = await runCli(["split", src, "--out", out, "--delete-original"]);
    assert.equal(ok.code, 0, ok.stderr);
    const left = await listFiles(src);
    assert.deepEqual(
      left,
      [
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
      ],
    );
    // Running the same command again: the weights are gone, the shards are
    // verified and nothing is left to do.
    const again = await runCli([
      "split",
      src,
      "--out",
      out,
      "--delete-original",
    ]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /is already complete \(8 files verified\)/);
    // ...but another --quantize needs the weights.
    const other = await runCli([
      "split",
      src,
      "--out",
      out,
      "--quantize",
      "q8",
    ]);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /no model\.safetensors/);
    // The shards are complete and verified.
    const info = await runCli(["info", out, "--verify"]);
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, /verified: +every file matches manifest\.json/);
    // Equal to a split of the untouched copy.
    const ref = join(dir, "ref");
    assert.equal((await runCli(["split", m.dir, "--out", ref])).code, 0);
    const a = await hashes(out), b = await hashes(ref);
    a.delete("manifest.json");
    b.delete("manifest.json");
    assert.deepEqual(a, b);
  } finally {
    await cleanup();
  }
});

Deno.test("info --verify detects a corrupted shard", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const m = await makeTinyModel(join(dir, "m"), {
      arch: "mistral",
      dtype: "F32",
    });
    const out = join(dir, "out");
    assert.equal((await runCli(["split", m.dir, "--out", out])).code, 0);
    const f = join(out, "layers/001.safetensors");
    const b = await Deno.readFile(f);
    b[b.length - 1] ^= 1;
    await Deno.writeFile(f, b);
    const r = await runCli(["info", out, "--verify"]);
    assert.equal(r.code, 1);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1);
    assert.match(lines[0], /layers\/001\.safetensors: CRC-32 differs/);
  } finally {
    await cleanup();
  }
});

/** Runs the CLI, sends `signal` as soon as `path` exists, returns how it ended. */
async function stopWhenPresent(
  args: string[],
  path: string,
  signal: Deno.Signal,
): Promise<{ code: number; signal: string | null; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../../cli.ts", import.meta.url).pathname,
      ...args,
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const t0 = Date.now();
  while (Date.now() - t0 < 60_000) {
    try {
      await Deno.stat(path);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 2));
    }
  }
  child.kill(signal);
  const o = await child.output();
  return {
    code: o.code,
    signal: o.signal,
    stderr: new TextDecoder().decode(o.stderr),
  };
}

Deno.test("split killed (SIGKILL), then interrupted (SIGINT) midway, then re-run", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    // ~150 MB of F32 weights: long enough to be killed midway.
    const m = await makeTinyModel(join(dir, "m"), {
      arch: "llama",
      dtype: "F32",
      layers: 12,
      hidden: 512,
      intermediate: 1536,
      heads: 8,
      kvHeads: 2,
      headDim: 64,
    });
    const out = join(dir, "out");
    const args = ["split", m.dir, "--out", out];
    const killed = await stopWhenPresent(
      args,
      join(out, "layers/000.safetensors"),
      "SIGKILL",
    );
    assert.equal(
      killed.signal,
      "SIGKILL",
      "the split finished before it could be killed",
    );
    await assert.rejects(Deno.stat(join(out, "manifest.json")));
    // Again, interrupted (Ctrl-C) once a later layer file appears.
    const stopped = await stopWhenPresent(
      args,
      join(out, "layers/002.safetensors"),
      "SIGINT",
    );
    assert.equal(stopped.code, 130, stopped.stderr);
    assert.match(
      stopped.stderr,
      /split: interrupted; finished files in .* are kept \(no manifest\.json yet\): run the same command again to resume/,
    );
    assert.doesNotMatch(stopped.stderr, /\n\s+at /);
    await assert.rejects(Deno.stat(join(out, "manifest.json")));
    const r = await runCli(["split", m.dir, "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /already done/);
    const ref = join(dir, "ref");
    assert.equal((await runCli(["split", m.dir, "--out", ref])).code, 0);
    assert.deepEqual(await hashes(out), await hashes(ref));
  } finally {
    await cleanup();
  }
});

Deno.test("an unfinished split of another plan leaves no files behind", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const m = await makeTinyModel(join(dir, "m"), {
      arch: "qwen3",
      dtype: "F16",
    });
    const out = join(dir, "out");
    const r1 = await runCli(
      ["split", m.dir, "--out", out, "--quantize", "q8"],
      {
        STRATA_SPLIT_FAIL_AFTER: "6",
      },
    );
    assert.equal(r1.code, 1);
    assert.ok((await listFiles(out)).includes("layers/000.safetensors"));
    const r2 = await runCli(["split", m.dir, "--out", out], {
      STRATA_SPLIT_FAIL_AFTER: "0",
    });
    assert.equal(r2.code, 1);
    const left = (await listFiles(out)).filter((f) =>
      f.endsWith(".safetensors")
    );
    assert.deepEqual(left, []);
    const r3 = await runCli(["split", m.dir, "--out", out]);
    assert.equal(r3.code, 0, r3.stderr);
    const ref = join(dir, "ref");
    assert.equal((await runCli(["split", m.dir, "--out", ref])).code, 0);
    assert.deepEqual(await hashes(out), await hashes(ref));
  } finally {
    await cleanup();
  }
});
