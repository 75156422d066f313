/**
 * The shard manifest's per-file checksum: split records a CRC-32 (IEEE, as
 * zip) of every file, checked here against an independent table-driven CRC-32
 * (tests/split/_helpers.ts) and the standard check value; a flipped byte is
 * caught naming the file; a manifest of an older split (version 1, SHA-256
 * entries, rewritten here with WebCrypto) is still read, verified and
 * re-split without being refused; a stamp of one checksum never vouches for
 * another; progress records of an older run (SHA-256) are never trusted; a
 * malformed checksum is a one-line FormatError naming the manifest.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeTinyModel } from "../../lib/testing/tiny_model.ts";
import { openSource } from "../../lib/split/open_source.ts";
import { splitModel } from "../../lib/split/split.ts";
import { PROGRESS_FILE } from "../../lib/split/source.ts";
import {
  type Manifest,
  MANIFEST_FILE,
  ShardDir,
} from "../../lib/format/shards.ts";
import {
  checkIntegrity,
  recordVerified,
  VERIFIED_FILE,
} from "../../lib/format/_integrity.ts";
import { FormatError } from "../../lib/errors.ts";
import { crc32Combine } from "../../lib/_fs.ts";
import {
  crc32,
  crc32Bytes,
  listFiles,
  sha256,
  tempDir,
} from "../split/_helpers.ts";

/** Splits a small seeded model into `dir/out`; returns the source and out. */
async function split(dir: string): Promise<{ src: string; out: string }> {
  const m = await makeTinyModel(join(dir, "src"), {
    arch: "llama",
    dtype: "F16",
    layers: 2,
  });
  const out = join(dir, "out");
  await splitOnce(m.dir, out);
  return { src: m.dir, out };
}

async function splitOnce(src: string, out: string): Promise<Manifest> {
  const s = await openSource(src);
  try {
    return await splitModel(s, { out, quantize: "none" });
  } finally {
    s.close();
  }
}

async function flipByte(path: string, at: number): Promise<void> {
  const b = await Deno.readFile(path);
  b[at] ^= 0x01;
  await Deno.writeFile(path, b);
}

function readManifest(out: string): Promise<Record<string, unknown>> {
  return Deno.readTextFile(join(out, MANIFEST_FILE)).then(JSON.parse);
}

/** Rewrites `out`'s manifest as an older Strata wrote it: version 1, SHA-256. */
async function makeOldSplit(out: string): Promise<void> {
  const m = await readManifest(out);
  const files = m.files as { path: string; size: number; crc32?: string }[];
  m.version = 1;
  m.files = await Promise.all(files.map(async (f) => ({
    path: f.path,
    size: f.size,
    sha256: await sha256(join(out, f.path)),
  })));
  await Deno.writeTextFile(
    join(out, MANIFEST_FILE),
    JSON.stringify(m, null, 2) + "\n",
  );
  await Deno.remove(join(out, VERIFIED_FILE)).catch(() => {});
}

Deno.test("crc32: the reference CRC-32 gives the standard check value", () => {
  const enc = new TextEncoder();
  assert.equal(crc32Bytes(enc.encode("123456789")), "cbf43926");
  assert.equal(crc32Bytes(new Uint8Array(0)), "00000000");
  assert.equal(crc32Bytes(enc.encode("abc")), "352441c2");
});

Deno.test("crc32Combine: the CRC of two pieces gives the CRC of both, against the reference CRC-32", () => {
  const hex = (n: number) => n.toString(16).padStart(8, "0");
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (const n of [0, 1, 2, 3, 31, 32, 1000, 4097, 70000]) {
    const d = new Uint8Array(n).map(() => Math.floor(rand() * 256));
    for (const k of [0, 1, Math.floor(n / 2), Math.max(0, n - 1), n]) {
      if (k > n) continue;
      const [a, b] = [d.subarray(0, k), d.subarray(k)];
      const ca = parseInt(crc32Bytes(a), 16);
      const cb = parseInt(crc32Bytes(b), 16);
      assert.equal(
        hex(crc32Combine(ca, cb, b.length)),
        crc32Bytes(d),
        `${n}/${k}`,
      );
    }
  }
  // many pieces folded in order, as the split does
  const d = new Uint8Array(10007).map((_, i) => (i * 31 + 7) & 255);
  let c = 0;
  for (let at = 0; at < d.length; at += 997) {
    const p = d.subarray(at, at + 997);
    c = crc32Combine(c, parseInt(crc32Bytes(p), 16), p.length);
  }
  assert.equal(hex(c), crc32Bytes(d));
  // a length of 2^32 and more (no 32-bit overflow in the length)
  const zeros = (n: number) => crc32Combine(0, 0, n);
  assert.equal(zeros(2 ** 33), 0);
  assert.notEqual(crc32Combine(1, 0, 2 ** 32), crc32Combine(1, 0, 0));
});

Deno.test("split writes version 2 with a CRC-32 per file, equal to an independent CRC-32", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const { out } = await split(dir);
    const m = await readManifest(out);
    assert.equal(m.version, 2);
    const files = m.files as Record<string, unknown>[];
    assert.deepEqual(
      files.map((f) => f.path).sort(),
      (await listFiles(out)).filter((f) => f !== MANIFEST_FILE),
    );
    for (const f of files) {
      const path = f.path as string;
      assert.deepEqual(Object.keys(f).sort(), ["crc32", "path", "size"]);
      assert.match(f.crc32 as string, /^[0-9a-f]{8}$/);
      assert.equal(f.crc32, await crc32(join(out, path)), path);
    }
    await (await ShardDir.open(out)).verify();
  } finally {
    await cleanup();
  }
});

Deno.test("a flipped byte in a shard fails verification naming the file", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const { out } = await split(dir);
    const layer = join(out, "layers/001.safetensors");
    const size = (await Deno.stat(layer)).size;
    for (const at of [0, Math.floor(size / 2), size - 1]) {
      await flipByte(layer, at);
      const s = await ShardDir.open(out);
      for (const check of [() => s.verify(), () => s.checkIntegrity()]) {
        await assert.rejects(check, (e: Error) => {
          assert.ok(e instanceof FormatError);
          assert.match(
            e.message,
            /layers\/001\.safetensors: CRC-32 differs from manifest\.json/,
          );
          assert.equal(e.message.split("\n").length, 1);
          return true;
        });
      }
      await flipByte(layer, at); // restored: passes again
      await s.verify();
    }
  } finally {
    await cleanup();
  }
});

/**
 * The plan hash Strata wrote for {@link split}'s seeded model before manifests
 * carried CRC-32s (commit 2f836f1, manifest version 1), taken from that
 * version's output. The plan must not change with the manifest version, or
 * re-running split over an older split would be refused as "a different
 * model". (If lib/testing/tiny_model.ts changes what it generates, recompute
 * it with that commit's splitModel on the same model.)
 */
const PLAN_BEFORE_CRC32 =
  "b9a7490c1f0f2889d8bf2ded50c6eafc3cb171ae8782ee08745927ac83bfc588";

Deno.test("an older split (version 1, SHA-256) is still read, verified and re-split as done", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const { src, out } = await split(dir);
    assert.equal((await readManifest(out)).plan, PLAN_BEFORE_CRC32);
    await makeOldSplit(out);
    const s = await ShardDir.open(out);
    assert.equal(s.manifest.version, 1);
    assert.ok(s.manifest.files.every((f) => f.sha256 && !f.crc32));
    await s.verify();
    await s.checkIntegrity();
    // Re-running split on it is a verified no-op, not "a different model".
    const before = await Deno.readTextFile(join(out, MANIFEST_FILE));
    const again = await splitOnce(src, out);
    assert.equal(again.version, 1);
    assert.equal(await Deno.readTextFile(join(out, MANIFEST_FILE)), before);
    // A flipped byte is still caught, by SHA-256.
    const layer = join(out, "layers/000.safetensors");
    await flipByte(layer, 100);
    await assert.rejects(
      () => s.verify(),
      /layers\/000\.safetensors: SHA-256 differs from manifest\.json/,
    );
    await assert.rejects(
      () => s.checkIntegrity(),
      /layers\/000\.safetensors: SHA-256 differs from manifest\.json/,
    );
  } finally {
    await cleanup();
  }
});

Deno.test("integrity stamps: one checksum never vouches for another; old SHA-256 stamps still count", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    await Deno.writeTextFile(join(dir, "a.bin"), "abc");
    await new Promise((r) => setTimeout(r, 1100)); // not "racily" recent
    const sha = {
      path: "a.bin",
      size: 3,
      sha256:
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    };
    await checkIntegrity(dir, [sha]); // read and stamped under SHA-256
    const record = JSON.parse(
      await Deno.readTextFile(join(dir, VERIFIED_FILE)),
    );
    assert.equal(record.files["a.bin"].checksum, `sha256:${sha.sha256}`);
    // The same unchanged file under a (wrong) CRC-32: read, not trusted.
    const wrongCrc = { path: "a.bin", size: 3, crc32: "00000000" };
    await assert.rejects(
      checkIntegrity(dir, [wrongCrc]),
      /a\.bin: CRC-32 differs/,
    );
    // And the other way round: a CRC-32 stamp does not vouch for a SHA-256.
    await recordVerified(dir, [{ path: "a.bin", size: 3, crc32: "352441c2" }]);
    await assert.rejects(
      checkIntegrity(dir, [{ ...sha, sha256: "0".repeat(64) }]),
      /a\.bin: SHA-256 differs/,
    );
    // A stamp of an older Strata ({..., sha256}, no checksum) still vouches
    // for that SHA-256 (recorded under a wrong one: only a check that does
    // not read the file passes), and for nothing else.
    const st = await Deno.stat(join(dir, "a.bin"));
    const old = {
      size: 3,
      mtimeMs: st.mtime!.getTime(),
      ctimeMs: st.ctime!.getTime(),
      ino: st.ino!,
      sha256: "0".repeat(64),
    };
    const writeOld = () =>
      Deno.writeTextFile(
        join(dir, VERIFIED_FILE),
        JSON.stringify({ version: 1, files: { "a.bin": old } }),
      );
    await writeOld();
    await checkIntegrity(dir, [{ ...sha, sha256: "0".repeat(64) }]);
    await writeOld();
    await assert.rejects(
      checkIntegrity(dir, [wrongCrc]),
      /a\.bin: CRC-32 differs/,
    );
  } finally {
    await cleanup();
  }
});

Deno.test("resume: a progress record of an older run (SHA-256) is never trusted; its files are redone", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const { src, out: ref } = await split(dir);
    const refManifest = await readManifest(ref);
    const out = join(dir, "resumed");
    await Deno.mkdir(join(out, "layers"), { recursive: true });
    const files = refManifest.files as { path: string; size: number }[];
    for (const f of files) {
      await Deno.copyFile(join(ref, f.path), join(out, f.path));
    }
    // A same-size damaged layer whose (old-style) record matches its bytes:
    // trusting the record would keep it.
    await flipByte(join(out, "layers/001.safetensors"), 200);
    const done: Record<string, unknown> = {};
    for (const f of files) {
      done[f.path] = { size: f.size, sha256: await sha256(join(out, f.path)) };
    }
    await Deno.writeTextFile(
      join(out, PROGRESS_FILE),
      JSON.stringify({ plan: refManifest.plan, done }),
    );
    await splitOnce(src, out);
    assert.deepEqual(await listFiles(out), await listFiles(ref));
    for (const f of await listFiles(ref)) {
      assert.equal(await sha256(join(out, f)), await sha256(join(ref, f)), f);
    }
  } finally {
    await cleanup();
  }
});

Deno.test("a malformed or missing checksum is a one-line FormatError naming the manifest", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const { out } = await split(dir);
    const good = await readManifest(out);
    const first = (good.files as Record<string, unknown>[])[0];
    const bad: Record<string, unknown>[] = [
      { ...first, crc32: "CBF43926" }, // upper case
      { ...first, crc32: "cbf4392" }, // 7 digits
      { ...first, crc32: "cbf439260" }, // 9 digits
      { ...first, crc32: 0xcbf43926 }, // a number
      { ...first, crc32: "cbf4392g" },
      { path: first.path, size: first.size }, // neither
      { ...first, sha256: "0".repeat(64) }, // both
      { path: first.path, size: first.size, sha256: "0".repeat(63) },
    ];
    for (const f of bad) {
      const m = structuredClone(good);
      (m.files as unknown[])[0] = f;
      await Deno.writeTextFile(join(out, MANIFEST_FILE), JSON.stringify(m));
      await assert.rejects(() => ShardDir.open(out), (e: Error) => {
        assert.ok(e instanceof FormatError, String(e));
        assert.match(
          e.message,
          /manifest\.json: files\[0\] must be \{path, size, crc32\}/,
        );
        assert.equal(e.message.split("\n").length, 1);
        return true;
      }, JSON.stringify(f));
    }
    // Versions other than 1 and 2 are refused, naming both.
    const m = structuredClone(good);
    m.version = 3;
    await Deno.writeTextFile(join(out, MANIFEST_FILE), JSON.stringify(m));
    await assert.rejects(
      () => ShardDir.open(out),
      /shard format version 3 \(this Strata reads 1 and 2\)/,
    );
  } finally {
    await cleanup();
  }
});
