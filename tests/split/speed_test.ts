/**
 * The split's streaming machinery: copy chunks, row chunks, worker or
 * main-thread quantization and the overlapped fsync change nothing in the
 * output (byte-identical files and manifest hashes), and the floor it
 * measures is min(warm read, fdatasync'd write × source/output bytes).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeTinyModel } from "../../lib/testing/tiny_model.ts";
import { crc32, listFiles, runCli, sha256, tempDir } from "./_helpers.ts";

Deno.test("split output does not depend on chunk sizes or on the quantization workers", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const m = await makeTinyModel(join(dir, "m"), {
      arch: "qwen2",
      dtype: "F16",
      sharded: true,
    });
    for (const q of ["none", "q8", "q4", "q4k", "q6k"]) {
      const outs: string[] = [];
      const envs: Record<string, string>[] = [
        {},
        { STRATA_SPLIT_WORKERS: "0" },
        {
          STRATA_SPLIT_WORKERS: "3",
          STRATA_SPLIT_COPY_BYTES: "1000",
          STRATA_SPLIT_CHUNK_BYTES: "700",
        },
        { STRATA_SPLIT_DIRECT: "0", STRATA_SPLIT_CHUNK_BYTES: "700" },
        // pages flushed and dropped 4 KiB behind the writes
        { STRATA_SPLIT_DROP_BEHIND: "4096", STRATA_SPLIT_COPY_BYTES: "5000" },
      ];
      for (const [i, env] of envs.entries()) {
        const out = join(dir, `out-${q}-${i}`);
        const r = await runCli(
          [
            "split",
            m.dir,
            "--out",
            out,
            "--quantize",
            q,
            "--quantize-embedding",
          ],
          env,
        );
        assert.equal(r.code, 0, r.stderr);
        outs.push(out);
      }
      const files = await listFiles(outs[0]);
      assert.ok(files.length > 5);
      for (const o of outs.slice(1)) {
        assert.deepEqual(await listFiles(o), files);
        for (const f of files) {
          assert.equal(
            await sha256(join(o, f)),
            await sha256(join(outs[0], f)),
            `${q} ${o} ${f}`,
          );
        }
      }
      // the manifest's CRC-32s are those of the files (computed while written)
      const man = JSON.parse(
        await Deno.readTextFile(join(outs[2], "manifest.json")),
      );
      for (const e of man.files) {
        assert.equal(e.crc32, await crc32(join(outs[2], e.path)), e.path);
      }
    }
  } finally {
    await cleanup();
  }
});

Deno.test("split --json reports its source rate against the floor it measured", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const m = await makeTinyModel(join(dir, "m"), {
      arch: "llama",
      dtype: "F32",
    });
    for (const q of ["none", "q4"]) {
      const out = join(dir, `out-${q}`);
      const r = await runCli(
        ["split", m.dir, "--out", out, "--quantize", q, "--json"],
        { STRATA_SPLIT_FLOOR: "1", STRATA_SPLIT_FLOOR_BYTES: "1048576" },
      );
      assert.equal(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout);
      const f = j.floor;
      assert.ok(f.read_gbps > 0 && f.write_gbps > 0, r.stdout);
      const min = Math.min(f.read_gbps, f.write_gbps * f.ratio);
      assert.ok(Math.abs(f.gbps - min) < 1e-9 * min, `${f.gbps} ${min}`);
      // source bytes: the model's tensors; output bytes: the shard files
      assert.equal(j.source_bytes_read, m.tensorBytes);
      const ratio = m.tensorBytes / j.bytes;
      assert.ok(
        Math.abs(f.ratio - ratio) < 0.01 * ratio,
        `${f.ratio} ${ratio}`,
      );
      if (q === "q4") assert.ok(f.ratio > 1.5); // F32 projections → q4: 7× fewer bytes
      assert.ok(j.source_gbps > 0);
      assert.ok(j.cpu_s > 0, r.stdout); // the process's CPU time, workers included
      assert.match(r.stderr, /CPU [0-9.]+s/);
      assert.match(r.stderr, /× the floor/);
      assert.match(r.stderr, /fdatasync'd write/);
      // no probe file left behind
      assert.ok(!(await listFiles(out)).some((n) => n.includes("floor")));
    }
  } finally {
    await cleanup();
  }
});
