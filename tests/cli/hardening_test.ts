/**
 * Issue 14's command-line checks: a corrupted shard stops `run` before any
 * id is printed; `info` refuses a manifest whose config is invalid; flag
 * parsing (negative numbers, suggestions); `--prompt` without a tokenizer
 * fails before the GPU; `--prompt-ids` prints the text; cache names of hub
 * snapshots; the message of a resumed split.
 */
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { gpuTest } from "../_gpu.ts";
import { makeTinyModel } from "../../lib/testing/tiny_model.ts";
import { openSource } from "../../lib/split/open_source.ts";
import { splitModel } from "../../lib/split/split.ts";
import { cacheDirFor, resolveModel } from "../../lib/engine/resolve.ts";
import {
  checkIntegrity,
  recordVerified,
  VERIFIED_FILE,
} from "../../lib/format/_integrity.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

async function cli(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return {
    code: out.code,
    stdout: d.decode(out.stdout),
    stderr: d.decode(out.stderr),
  };
}

let made: Promise<{ root: string; hf: string; shards: string }> | null = null;
/** A tiny llama, split once; tests that change it work on a copy. */
function tiny() {
  made ??= (async () => {
    const root = await Deno.makeTempDir({ prefix: "strata-harden-" });
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(root, { recursive: true });
      } catch { /* gone */ }
    });
    const hf = join(root, "hf");
    await makeTinyModel(hf, { arch: "llama", dtype: "F32" });
    const shards = join(root, "shards");
    const src = await openSource(hf);
    try {
      await splitModel(src, { out: shards });
    } finally {
      src.close();
    }
    return { root, hf, shards };
  })();
  return made;
}

async function copyShards(name: string): Promise<string> {
  const { root, shards } = await tiny();
  const to = join(root, name);
  await Deno.mkdir(join(to, "layers"), { recursive: true });
  for (const sub of [".", "layers"]) {
    for await (const e of Deno.readDir(join(shards, sub))) {
      if (e.isFile && e.name !== VERIFIED_FILE) {
        await Deno.copyFile(join(shards, sub, e.name), join(to, sub, e.name));
      }
    }
  }
  return to;
}

Deno.test("run: a same-size corrupted layer exits non-zero naming the file, printing no ids", async () => {
  const dir = await copyShards("corrupt");
  const layer = join(dir, "layers", "001.safetensors");
  // A first check records every file as verified (files changed within the
  // second before a check are not recorded: wait that second out).
  await new Promise((r) => setTimeout(r, 1100));
  const manifest = JSON.parse(
    await Deno.readTextFile(join(dir, "manifest.json")),
  );
  await checkIntegrity(dir, manifest.files);
  const record = JSON.parse(await Deno.readTextFile(join(dir, VERIFIED_FILE)));
  assert.ok(record.files["layers/001.safetensors"], "the layer was recorded");
  const before = await Deno.stat(layer);
  const bytes = await Deno.readFile(layer);
  for (let i = bytes.length - 64; i < bytes.length; i++) bytes[i] ^= 0x5a;
  await Deno.writeFile(layer, bytes);
  // Even with the old modification time put back, the change is seen.
  await Deno.utime(layer, before.atime!, before.mtime!);
  assert.equal((await Deno.stat(layer)).size, before.size);
  const r = await cli([
    "run",
    dir,
    "--prompt-ids",
    "1,2,3",
    "--max-new-tokens",
    "4",
    "--temperature",
    "0",
  ]);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stdout, "", "no ids printed");
  assert.match(
    r.stderr,
    /^strata: error: .*layers\/001\.safetensors: CRC-32 differs from manifest\.json .*split the model again/m,
  );
  assert.doesNotMatch(r.stderr, /^(budget|plan):/m, "refused before the GPU");
  // info --verify, the full check, agrees.
  const v = await cli(["info", dir, "--verify"]);
  assert.equal(v.code, 1);
  assert.match(v.stderr, /layers\/001\.safetensors: CRC-32 differs/);
});

Deno.test("integrity: an unchanged file is not hashed again; a changed one is", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "a.bin"), "abc");
    await new Promise((r) => setTimeout(r, 1100)); // not "racily" recent
    // Recorded under a wrong CRC: only a check that skips reading passes.
    const wrong = { path: "a.bin", size: 3, crc32: "00000000" };
    await recordVerified(dir, [wrong]);
    await checkIntegrity(dir, [wrong]);
    await Deno.writeTextFile(join(dir, "a.bin"), "abd");
    await assert.rejects(
      checkIntegrity(dir, [wrong]),
      /a\.bin: CRC-32 differs/,
    );
    // A size change is reported without hashing.
    await Deno.writeTextFile(join(dir, "a.bin"), "abcd");
    await assert.rejects(
      checkIntegrity(dir, [wrong]),
      /size 4 bytes, manifest\.json says 3/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("info: a manifest with an invalid config exits non-zero", async () => {
  for (
    const [patch, re] of [
      [
        { hiddenSize: 2 ** 31 },
        /config\.hiddenSize 2147483648 is implausibly large/,
      ],
      [
        { vocabSize: -5 },
        /config\.vocabSize must be a positive integer, got -5/,
      ],
      [
        { bosTokenId: 1_000_000 },
        /config\.bosTokenId 1000000 is outside the vocabulary/,
      ],
    ] as const
  ) {
    const dir = await copyShards(`badcfg-${Object.keys(patch)[0]}`);
    const path = join(dir, "manifest.json");
    const m = JSON.parse(await Deno.readTextFile(path));
    Object.assign(m.config, patch);
    await Deno.writeTextFile(path, JSON.stringify(m));
    const r = await cli(["info", dir]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /^strata: error: .*manifest\.json: /m);
    assert.match(r.stderr, re);
    const run = await cli(["run", dir, "--prompt-ids", "1"]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, re);
  }
});

Deno.test("flags: negative numbers reach the range check; unknown flags get a suggestion", async () => {
  const { shards } = await tiny();
  const neg = await cli(["run", shards, "--temperature", "-1"]);
  assert.equal(neg.code, 1);
  assert.match(neg.stderr, /--temperature must be a number >= 0, got '-1'/);
  assert.doesNotMatch(neg.stderr, /ambiguous/);
  const typo = await cli(["run", shards, "--temprature", "0.5"]);
  assert.equal(typo.code, 1);
  assert.match(
    typo.stderr,
    /Unknown option '--temprature' \(did you mean --temperature\?\)/,
  );
  const cmd = await cli(["rnu", shards]);
  assert.equal(cmd.code, 2);
  assert.match(cmd.stderr, /unknown command 'rnu' \(did you mean 'run'\?\)/);
});

Deno.test("run --prompt without a tokenizer fails before the GPU, naming --prompt-ids", async () => {
  const dir = await copyShards("notok");
  const path = join(dir, "manifest.json");
  const m = JSON.parse(await Deno.readTextFile(path));
  m.files = m.files.filter((f: { path: string }) =>
    !f.path.startsWith("tokenizer")
  );
  await Deno.writeTextFile(path, JSON.stringify(m));
  await Deno.remove(join(dir, "tokenizer.json"));
  await Deno.remove(join(dir, "tokenizer_config.json"));
  const r = await cli(["run", dir, "--prompt", "Hello"]);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /--prompt needs a tokenizer .* no tokenizer\.json; give token ids with --prompt-ids/,
  );
  assert.doesNotMatch(r.stderr, /^(budget|plan):/m, "nothing was loaded");
});

gpuTest("run --prompt-ids prints the ids, then the text", async () => {
  const { shards } = await tiny();
  const args = [
    "run",
    shards,
    "--prompt-ids",
    "1,72,101",
    "--max-new-tokens",
    "6",
    "--temperature",
    "0",
  ];
  const plain = await cli(args);
  assert.equal(plain.code, 0, plain.stderr);
  const json = JSON.parse((await cli([...args, "--json"])).stdout);
  const [idLine, ...text] = plain.stdout.split("\n");
  assert.equal(idLine, json.ids.join(" "));
  assert.equal(
    text.join("\n").replace(/\n$/, ""),
    json.text.replace(/\n$/, ""),
  );
});

Deno.test("cache directories of hub snapshots are named by repo and a short hash", () => {
  const commit = "0123456789abcdef0123456789abcdef01234567";
  const snap = `/h/hub/models--tiny-org--tiny-llama/snapshots/${commit}`;
  const name = basename(cacheDirFor(snap, "q4"));
  assert.match(name, /^tiny-org--tiny-llama-01234567-[0-9a-f]{8}-q4$/);
  assert.match(
    basename(cacheDirFor("/m/llama.gguf", "none")),
    /^llama-[0-9a-f]{8}-none$/,
  );
});

Deno.test("an unfinished split is resumed, and said so", async () => {
  const { root, hf } = await tiny();
  const out = join(root, "resumed");
  await Deno.mkdir(out, { recursive: true });
  await Deno.writeTextFile(
    join(out, ".strata-split.json"),
    JSON.stringify({ plan: "x", done: {} }),
  );
  const lines: string[] = [];
  await resolveModel(hf, {
    layerShardsSavingPath: out,
    log: (l) => lines.push(l),
  });
  assert.ok(
    lines.some((l) =>
      l.startsWith(`resuming the unfinished split of ${hf} in ${out}`)
    ),
    lines.join("\n"),
  );
  assert.ok(!lines.some((l) => l.startsWith("splitting")));
});
