// downloadSnapshot against a fake hub (Deno.serve on 127.0.0.1).
import assert from "node:assert/strict";
import { join } from "node:path";
import { downloadSnapshot } from "../../lib/hub/download.ts";
import {
  cachedSnapshot,
  checkRepoFileName,
  hubCacheDir,
  normalizeEtag,
} from "../../lib/hub/cache.ts";
import { parseRepoId } from "../../lib/hub/repo_id.ts";
import { FormatError, StrataError, UsageError } from "../../lib/errors.ts";
import { type FakeFile, FakeHub, sha256 } from "./_fake_hub.ts";

const REPO = "tiny-org/tiny-model";
const COMMIT = "0123456789abcdef0123456789abcdef01234567";

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}
const text = (s: string) => new TextEncoder().encode(s);

function files(): FakeFile[] {
  return [
    {
      name: "config.json",
      data: text(JSON.stringify({ model_type: "llama", hidden_size: 8 })),
    },
    {
      name: "tokenizer.json",
      data: text(JSON.stringify({ model: { type: "BPE" } })),
    },
    { name: "tokenizer_config.json", data: text("{}") },
    { name: "generation_config.json", data: text(`{"eos_token_id": [2]}`) },
    {
      name: "model.safetensors.index.json",
      data: text(
        JSON.stringify({
          weight_map: {
            a: "model-00001-of-00002.safetensors",
            b: "model-00002-of-00002.safetensors",
          },
        }),
      ),
    },
    {
      name: "model-00001-of-00002.safetensors",
      data: bytes(300_001, 1),
      lfs: true,
    },
    {
      name: "model-00002-of-00002.safetensors",
      data: bytes(200_003, 2),
      lfs: true,
    },
    { name: "README.md", data: text("# not downloaded") },
    {
      name: "original/consolidated.safetensors",
      data: bytes(10, 3),
      lfs: true,
    },
  ];
}

const quiet = () => {};

async function withCache(fn: (cache: string) => Promise<void>): Promise<void> {
  const cache = await Deno.makeTempDir({ prefix: "strata-hub-" });
  try {
    await fn(cache);
  } finally {
    await Deno.remove(cache, { recursive: true });
  }
}

async function checkSnapshot(dir: string, fs: FakeFile[]): Promise<void> {
  for (const f of fs) {
    if (f.name === "README.md" || f.name.includes("/")) {
      await assert.rejects(
        Deno.lstat(join(dir, f.name)),
        Deno.errors.NotFound,
        `${f.name} is not fetched`,
      );
      continue;
    }
    const st = await Deno.lstat(join(dir, f.name));
    assert.ok(st.isSymlink, `${f.name} is a symlink`);
    const target = await Deno.readLink(join(dir, f.name));
    assert.ok(target.startsWith("../../blobs/"), `relative link: ${target}`);
    const got = await Deno.readFile(join(dir, f.name));
    assert.equal(sha256(got), sha256(f.data), `${f.name} bytes`);
  }
}

Deno.test("download: complete snapshot in the HF cache layout, token sent to the hub only", async () => {
  const fs = files();
  const hub = new FakeHub({
    repo: REPO,
    commit: COMMIT,
    files: fs,
    token: "hf_secret_token",
  });
  try {
    await withCache(async (cache) => {
      const seen: string[] = [];
      const dir = await downloadSnapshot(REPO, {
        cacheDir: cache,
        endpoint: hub.endpoint,
        token: "hf_secret_token",
        onProgress: (p) => {
          if (p.bytesDone === p.bytesTotal) seen.push(p.file);
        },
      });
      assert.equal(
        dir,
        join(cache, "models--tiny-org--tiny-model", "snapshots", COMMIT),
      );
      await checkSnapshot(dir, fs);
      assert.equal(
        await Deno.readTextFile(
          join(cache, "models--tiny-org--tiny-model", "refs", "main"),
        ),
        COMMIT,
      );
      // LFS blobs are named by sha256, regular files by their git id.
      const lfs = fs.find((f) => f.lfs)!;
      assert.equal(
        sha256(
          await Deno.readFile(
            join(
              cache,
              "models--tiny-org--tiny-model",
              "blobs",
              sha256(lfs.data),
            ),
          ),
        ),
        sha256(lfs.data),
      );
      assert.equal(seen.length, 7);
      // The token goes to the hub, not to the CDN the LFS files redirect to.
      for (const r of hub.log) {
        assert.equal(
          r.authorization,
          r.path.startsWith("/cdn/") ? null : "Bearer hf_secret_token",
          r.path,
        );
      }
      // A second run finds every blob and fetches no file again.
      const before = hub.log.length;
      assert.equal(
        await downloadSnapshot(`${REPO}@main`, {
          cacheDir: cache,
          endpoint: hub.endpoint,
          token: "hf_secret_token",
          onProgress: quiet,
        }),
        dir,
      );
      assert.deepEqual(hub.log.slice(before).map((r) => r.path), [
        `/api/models/${REPO}/revision/main`,
      ]);
    });
    // Without the token: a clear message that does not echo any token.
    await withCache(async (cache) => {
      await assert.rejects(
        downloadSnapshot(REPO, {
          cacheDir: cache,
          endpoint: hub.endpoint,
          token: "hf_wrong",
          onProgress: quiet,
        }),
        (e) =>
          e instanceof StrataError && /HTTP 401.*HF_TOKEN/.test(e.message) &&
          !e.message.includes("hf_wrong"),
      );
    });
  } finally {
    await hub.stop();
  }
});

Deno.test("download: the token from the login file; a malformed token is refused without being shown", async () => {
  const hub = new FakeHub({
    repo: REPO,
    commit: COMMIT,
    files: files(),
    token: "hf_secret_token",
  });
  const names = ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH"];
  const saved = names.map((n) => Deno.env.get(n));
  try {
    for (const n of names) Deno.env.delete(n);
    await withCache(async (cache) => {
      // `huggingface-cli login` writes the token with a final newline.
      const tokenFile = join(cache, "token");
      await Deno.writeTextFile(tokenFile, "hf_secret_token\n");
      Deno.env.set("HF_TOKEN_PATH", tokenFile);
      await downloadSnapshot(REPO, {
        cacheDir: join(cache, "hub"),
        endpoint: hub.endpoint,
        onProgress: quiet,
      });
      assert.ok(hub.log.length > 0);
      for (const r of hub.log) {
        if (!r.path.startsWith("/cdn/")) {
          assert.equal(r.authorization, "Bearer hf_secret_token", r.path);
        }
      }
      // A token with a newline or NUL inside: refused before any request,
      // and the message does not quote it.
      const before = hub.log.length;
      const refused = (e: unknown) =>
        e instanceof UsageError && /HF_TOKEN|token/.test(e.message) &&
        !e.message.includes("hf_sec");
      Deno.env.set("HF_TOKEN", "hf_sec\nret_token");
      await assert.rejects(
        downloadSnapshot(REPO, {
          cacheDir: join(cache, "hub2"),
          endpoint: hub.endpoint,
          onProgress: quiet,
        }),
        refused,
      );
      await assert.rejects(
        downloadSnapshot(REPO, {
          cacheDir: join(cache, "hub2"),
          endpoint: hub.endpoint,
          token: "hf_sec\u0000ret",
          onProgress: quiet,
        }),
        refused,
      );
      assert.equal(hub.log.length, before);
    });
  } finally {
    names.forEach((n, i) => {
      if (saved[i] === undefined) Deno.env.delete(n);
      else Deno.env.set(n, saved[i]!);
    });
    await hub.stop();
  }
});

Deno.test("download: the connection drops midway; the retry resumes with Range and the bytes are identical", async () => {
  const fs = files();
  const big = "model-00001-of-00002.safetensors";
  const hub = new FakeHub({
    repo: REPO,
    commit: COMMIT,
    files: fs,
    dropOnce: [big, "config.json"],
  });
  try {
    await withCache(async (cache) => {
      const dir = await downloadSnapshot(REPO, {
        cacheDir: cache,
        endpoint: hub.endpoint,
        onProgress: quiet,
      });
      await checkSnapshot(dir, fs);
      const gets = hub.requestsFor(
        `/cdn/${sha256(fs.find((f) => f.name === big)!.data)}`,
      );
      assert.equal(gets.length, 2, "one cut transfer, one resumed transfer");
      assert.equal(gets[0].range, null);
      const half = Math.floor(300_001 / 2);
      assert.equal(gets[1].range, `bytes=${half}-`);
      const cfg = hub.requestsFor(`/resolve/${COMMIT}/config.json`);
      assert.equal(cfg.length, 2);
      assert.match(cfg[1].range ?? "", /^bytes=\d+-$/);
      for await (
        const e of Deno.readDir(
          join(cache, "models--tiny-org--tiny-model", "blobs"),
        )
      ) {
        assert.ok(!e.name.endsWith(".incomplete"), `left over: ${e.name}`);
      }
    });
  } finally {
    await hub.stop();
  }
});

Deno.test("download: with no retries the cut run fails; the next run resumes with Range", async () => {
  const fs = files();
  const big = "model-00001-of-00002.safetensors";
  const data = fs.find((f) => f.name === big)!.data;
  const hub = new FakeHub({
    repo: REPO,
    commit: COMMIT,
    files: fs,
    dropOnce: [big],
  });
  try {
    await withCache(async (cache) => {
      const o = { cacheDir: cache, endpoint: hub.endpoint, onProgress: quiet };
      await assert.rejects(
        downloadSnapshot(REPO, { ...o, retries: 0 }),
        (e) =>
          e instanceof StrataError &&
          /download incomplete \(150000 of 300001 bytes\).*run again to resume/
            .test(e.message),
      );
      const part = join(
        cache,
        "models--tiny-org--tiny-model",
        "blobs",
        `${sha256(data)}.incomplete`,
      );
      assert.equal((await Deno.stat(part)).size, 150000);
      const dir = await downloadSnapshot(REPO, o);
      await checkSnapshot(dir, fs);
      const gets = hub.requestsFor(`/cdn/${sha256(data)}`);
      assert.deepEqual(gets.map((r) => r.range), [null, "bytes=150000-"]);
    });
  } finally {
    await hub.stop();
  }
});

Deno.test("download: a partial .incomplete file left by an earlier run is resumed with Range", async () => {
  const fs = files();
  const f = fs.find((x) => x.name === "model-00002-of-00002.safetensors")!;
  const hub = new FakeHub({
    repo: REPO,
    commit: COMMIT,
    files: fs,
    bareListing: true,
  });
  try {
    await withCache(async (cache) => {
      const blobs = join(cache, "models--tiny-org--tiny-model", "blobs");
      await Deno.mkdir(blobs, { recursive: true });
      await Deno.writeFile(
        join(blobs, `${sha256(f.data)}.incomplete`),
        f.data.subarray(0, 12345),
      );
      const dir = await downloadSnapshot(REPO, {
        cacheDir: cache,
        endpoint: hub.endpoint,
        onProgress: quiet,
      });
      await checkSnapshot(dir, fs);
      const gets = hub.requestsFor(`/cdn/${sha256(f.data)}`);
      assert.deepEqual(gets.map((r) => [r.method, r.range]), [[
        "GET",
        "bytes=12345-",
      ]]);
      // bareListing: sizes and etags came from HEAD requests.
      assert.ok(hub.log.some((r) => r.method === "HEAD"));
    });
  } finally {
    await hub.stop();
  }
});

Deno.test("download: offline reuse of the cache with the server stopped", async () => {
  const fs = files();
  const hub = new FakeHub({
    repo: REPO,
    commit: COMMIT,
    files: fs,
    refs: ["main", "v1"],
  });
  await withCache(async (cache) => {
    const dir = await downloadSnapshot(`${REPO}@v1`, {
      cacheDir: cache,
      endpoint: hub.endpoint,
      onProgress: quiet,
    });
    await hub.stop();
    // Explicit offline, HF_HUB_OFFLINE, and an unreachable hub all use the cache.
    assert.equal(
      await downloadSnapshot(`${REPO}@v1`, {
        cacheDir: cache,
        endpoint: hub.endpoint,
        offline: true,
      }),
      dir,
    );
    Deno.env.set("HF_HUB_OFFLINE", "1");
    try {
      assert.equal(
        await downloadSnapshot(`${REPO}@v1`, {
          cacheDir: cache,
          endpoint: hub.endpoint,
        }),
        dir,
      );
    } finally {
      Deno.env.delete("HF_HUB_OFFLINE");
    }
    assert.equal(
      await downloadSnapshot(`${REPO}@v1`, {
        cacheDir: cache,
        endpoint: hub.endpoint,
      }),
      dir,
    );
    assert.equal(
      await downloadSnapshot(`${REPO}@${COMMIT}`, {
        cacheDir: cache,
        endpoint: hub.endpoint,
        offline: true,
      }),
      dir,
    );
    // A ref never downloaded is not in the cache: a clear error.
    await assert.rejects(
      downloadSnapshot(`${REPO}@main`, {
        cacheDir: cache,
        endpoint: hub.endpoint,
        offline: true,
      }),
      (e) =>
        e instanceof StrataError &&
        /offline.*no complete snapshot/.test(e.message),
    );
    // An incomplete snapshot (a shard link removed) is not used.
    await Deno.remove(join(dir, "model-00002-of-00002.safetensors"));
    assert.equal(await cachedSnapshot(cache, REPO, "v1"), null);
    await assert.rejects(
      downloadSnapshot(`${REPO}@v1`, {
        cacheDir: cache,
        endpoint: hub.endpoint,
      }),
      (e) =>
        e instanceof StrataError &&
        /cannot reach .*no complete snapshot/.test(e.message),
    );
  });
});

Deno.test("download: file names that escape the cache are refused", async () => {
  for (
    const evil of [
      "../evil.safetensors",
      "/etc/config.json",
      "..\\evil.safetensors",
      "a/../../config.json",
    ]
  ) {
    const hub = new FakeHub({
      repo: REPO,
      commit: COMMIT,
      files: files(),
      extraNames: [evil],
    });
    try {
      await withCache(async (cache) => {
        await assert.rejects(
          downloadSnapshot(REPO, {
            cacheDir: cache,
            endpoint: hub.endpoint,
            onProgress: quiet,
          }),
          (e) =>
            e instanceof FormatError &&
            e.message.includes(JSON.stringify(evil)) &&
            /refusing file name/.test(e.message),
          evil,
        );
        await assert.rejects(
          Deno.stat(join(cache, "evil.safetensors")),
          Deno.errors.NotFound,
        );
        await assert.rejects(
          Deno.stat(join(cache, "..", "evil.safetensors")),
          Deno.errors.NotFound,
        );
        // Nothing was fetched before the listing was checked.
        assert.ok(hub.log.every((r) => r.path.startsWith("/api/")));
      });
    } finally {
      await hub.stop();
    }
  }
  assert.throws(() => checkRepoFileName(REPO, "C:/x.json"), FormatError);
  assert.throws(() => checkRepoFileName(REPO, "a//b.json"), FormatError);
  checkRepoFileName(REPO, "sub/dir/model.safetensors");
});

Deno.test("download: errors for unknown repos and revisions, bad ids, size mismatches", async () => {
  const fs = files();
  const hub = new FakeHub({ repo: REPO, commit: COMMIT, files: fs });
  try {
    await withCache(async (cache) => {
      const o = { cacheDir: cache, endpoint: hub.endpoint, onProgress: quiet };
      await assert.rejects(
        downloadSnapshot("nobody/nothing", o),
        (e) =>
          e instanceof StrataError && /not found \(HTTP 404\)/.test(e.message),
      );
      await assert.rejects(
        downloadSnapshot(`${REPO}@nope`, o),
        (e) =>
          e instanceof StrataError &&
          /revision 'nope' not found/.test(e.message),
      );
      await assert.rejects(downloadSnapshot("not a repo", o), UsageError);
      await assert.rejects(downloadSnapshot(`${REPO}@../x`, o), UsageError);
    });
  } finally {
    await hub.stop();
  }
  // The listing says one size, the server sends another.
  const hub2 = new FakeHub({
    repo: REPO,
    commit: COMMIT,
    files: files(),
    wrongSize: ["model-00002-of-00002.safetensors"],
  });
  try {
    await withCache(async (cache) => {
      await assert.rejects(
        downloadSnapshot(REPO, {
          cacheDir: cache,
          endpoint: hub2.endpoint,
          onProgress: quiet,
        }),
        (e) =>
          e instanceof FormatError &&
          /model-00002-of-00002\.safetensors: Content-Length 100001 but 200003 bytes/
            .test(e.message),
      );
    });
  } finally {
    await hub2.stop();
  }
});

Deno.test("repo ids, cache dir and etags", () => {
  assert.deepEqual(parseRepoId("Qwen/Qwen3-0.6B"), {
    repoId: "Qwen/Qwen3-0.6B",
    revision: "main",
  });
  assert.deepEqual(parseRepoId("a/b@refs/pr/1"), {
    repoId: "a/b",
    revision: "refs/pr/1",
  });
  for (
    const bad of [
      "./x",
      "/abs/path",
      "a/b/c",
      "a",
      "a/..",
      "../b",
      "a/b@",
      "a/b@../x",
      "a--x/b",
      "model.gguf",
    ]
  ) {
    assert.equal(parseRepoId(bad), null, bad);
  }
  const saved = [
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_HOME",
    "XDG_CACHE_HOME",
    "HOME",
  ].map((k) => [k, Deno.env.get(k)] as const);
  try {
    for (const [k] of saved) Deno.env.delete(k);
    Deno.env.set("HOME", "/home/u");
    assert.equal(hubCacheDir(), "/home/u/.cache/huggingface/hub");
    Deno.env.set("HF_HOME", "/data/hf");
    assert.equal(hubCacheDir(), "/data/hf/hub");
    Deno.env.set("HF_HUB_CACHE", "/fast/hub");
    assert.equal(hubCacheDir(), "/fast/hub");
  } finally {
    for (const [k, v] of saved) {
      v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
    }
  }
  assert.equal(normalizeEtag('W/"abc"'), "abc");
  assert.equal(normalizeEtag('"../x"'), null);
});
