// End to end: `strata run org/name` downloads a (tiny, seeded) model from the
// fake hub through HF_ENDPOINT into HF_HUB_CACHE, splits it and generates the
// same ids as the local checkpoint; offline, with the hub stopped, it runs
// again from the cache. Skips without a WebGPU adapter.
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeTinyModel } from "../../lib/testing/tiny_model.ts";
import { type FakeFile, FakeHub } from "./_fake_hub.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const { gpu } = await import("../_gpu.ts");
if (!gpu) console.log("hub e2e_test: skipped (no WebGPU adapter)");

async function runCli(
  args: string[],
  env: Record<string, string>,
): Promise<{ ids: number[]; stderr: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "cli.ts"), "run", ...args],
    env: { XDG_RUNTIME_DIR: "/tmp", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(r.stderr);
  assert.ok(r.success, `run ${args.join(" ")} failed:\n${stderr}`);
  const out = JSON.parse(new TextDecoder().decode(r.stdout));
  return { ids: out.ids, stderr };
}

Deno.test({
  name:
    "run org/name: fake hub → HF cache → split → same ids as the local checkpoint; offline afterwards",
  ignore: !gpu,
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "strata-hub-e2e-" });
    const src = join(tmp, "src");
    await makeTinyModel(src, { arch: "llama", dtype: "F32", sharded: true });
    const files: FakeFile[] = [];
    for await (const e of Deno.readDir(src)) {
      if (!e.isFile) continue;
      files.push({
        name: e.name,
        data: await Deno.readFile(join(src, e.name)),
        lfs: e.name.endsWith(".safetensors"),
      });
    }
    const shard = files.find((f) => f.name.endsWith(".safetensors"))!.name;
    const hub = new FakeHub({
      repo: "tiny-org/tiny-llama",
      commit: "89abcdef0123456789abcdef0123456789abcdef",
      files,
      dropOnce: [shard],
      token: "hf_e2e_secret",
    });
    const flags = [
      "--prompt-ids",
      "1,5,9,14",
      "--temperature",
      "0",
      "--max-new-tokens",
      "8",
      "--json",
    ];
    try {
      const env = {
        HF_ENDPOINT: hub.endpoint,
        HF_HUB_CACHE: join(tmp, "hub"),
        HF_TOKEN: "hf_e2e_secret",
        STRATA_CACHE: join(tmp, "strata"),
      };
      const local = await runCli([src, ...flags], env);
      const remote = await runCli(["tiny-org/tiny-llama", ...flags], env);
      assert.deepEqual(remote.ids, local.ids);
      assert.equal(remote.ids.length > 0, true);
      assert.ok(
        !remote.stderr.includes("hf_e2e_secret"),
        "the token is never printed",
      );
      const snap = join(
        tmp,
        "hub",
        "models--tiny-org--tiny-llama",
        "snapshots",
        "89abcdef0123456789abcdef0123456789abcdef",
      );
      for (const f of files) {
        assert.deepEqual(
          await Deno.readFile(join(snap, f.name)),
          f.data,
          f.name,
        );
      }
      // The dropped shard was resumed with a Range request.
      assert.ok(
        hub.log.some((r) => r.path.startsWith("/cdn/") && r.range !== null),
        "a Range request",
      );
      await hub.stop();
      // Offline and with the hub gone: the cached snapshot (and split) are used.
      const offline = await runCli(["tiny-org/tiny-llama@main", ...flags], {
        ...env,
        HF_HUB_OFFLINE: "1",
      });
      assert.deepEqual(offline.ids, local.ids);
    } finally {
      await hub.stop().catch(() => {});
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test("info org/name: from the fake hub into the HF cache, then offline from it", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "strata-hub-info-" });
  const src = join(tmp, "src");
  await makeTinyModel(src, { arch: "qwen3", dtype: "F16" });
  const files: FakeFile[] = [];
  for await (const e of Deno.readDir(src)) {
    if (!e.isFile) continue;
    files.push({
      name: e.name,
      data: await Deno.readFile(join(src, e.name)),
      lfs: e.name.endsWith(".safetensors"),
    });
  }
  const hub = new FakeHub({
    repo: "tiny-org/tiny-qwen",
    commit: "0123456789abcdef0123456789abcdef89abcdef",
    files,
  });
  const info = async (model: string, env: Record<string, string>) => {
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", join(ROOT, "cli.ts"), "info", model, "--json"],
      env: { HF_HUB_CACHE: join(tmp, "hub"), ...env },
      stdout: "piped",
      stderr: "piped",
    }).output();
    return {
      code: r.code,
      stdout: new TextDecoder().decode(r.stdout),
      stderr: new TextDecoder().decode(r.stderr),
    };
  };
  try {
    const local = await info(src, {});
    assert.equal(local.code, 0, local.stderr);
    const want = JSON.parse(local.stdout);
    const remote = await info("tiny-org/tiny-qwen", {
      HF_ENDPOINT: hub.endpoint,
    });
    assert.equal(remote.code, 0, remote.stderr);
    const got = JSON.parse(remote.stdout);
    assert.equal(got.architecture, "qwen3");
    assert.deepEqual(got.config, want.config);
    assert.deepEqual(got.tokenizer, want.tokenizer);
    await hub.stop();
    const offline = await info("tiny-org/tiny-qwen", { HF_HUB_OFFLINE: "1" });
    assert.equal(offline.code, 0, offline.stderr);
    assert.deepEqual(JSON.parse(offline.stdout).config, want.config);
    // Never downloaded: one line, non-zero exit.
    const missing = await info("tiny-org/other", { HF_HUB_OFFLINE: "1" });
    assert.equal(missing.code, 1);
    assert.match(
      missing.stderr,
      /^strata: error: tiny-org\/other@main: offline mode .* no complete snapshot/m,
    );
  } finally {
    await hub.stop().catch(() => {});
    await Deno.remove(tmp, { recursive: true });
  }
});
