/**
 * Truncated and corrupted inputs: `split` exits non-zero with one line on
 * stderr naming the file and the problem, never a stack trace, and writes no
 * manifest.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeTinyModel } from "../../lib/testing/tiny_model.ts";
import { copyDir, runCli, tempDir } from "./_helpers.ts";

type Header = Record<
  string,
  { dtype: string; shape: number[]; data_offsets: number[] }
>;

async function readParts(
  file: string,
): Promise<{ header: Header; data: Uint8Array }> {
  const all = await Deno.readFile(file);
  const n = Number(new DataView(all.buffer).getBigUint64(0, true));
  return {
    header: JSON.parse(new TextDecoder().decode(all.subarray(8, 8 + n))),
    data: all.slice(8 + n),
  };
}

async function writeParts(
  file: string,
  header: unknown,
  data: Uint8Array,
): Promise<void> {
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const hb = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + hb.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
  out.set(hb, 8);
  out.set(data, 8 + hb.length);
  await Deno.writeFile(file, out);
}

function tensorNames(h: Header): string[] {
  return Object.keys(h).filter((k) => k !== "__metadata__").sort((a, b) =>
    h[a].data_offsets[0] - h[b].data_offsets[0]
  );
}

interface Case {
  name: string;
  /** Corrupts the copy of the model in `dir`. */
  corrupt: (dir: string) => Promise<void>;
  /** What stderr must contain (file name, problem). */
  expect: RegExp[];
  sharded?: boolean;
}

const ST = "model.safetensors";
const CASES: Case[] = [
  {
    name: "header length past EOF",
    corrupt: async (d) => {
      const f = join(d, ST);
      const b = await Deno.readFile(f);
      new DataView(b.buffer).setBigUint64(0, BigInt(b.length), true);
      await Deno.writeFile(f, b);
    },
    expect: [/model\.safetensors/, /header/i],
  },
  {
    name: "header length 2^60",
    corrupt: async (d) => {
      const f = join(d, ST);
      const b = await Deno.readFile(f);
      new DataView(b.buffer).setBigUint64(0, 1n << 60n, true);
      await Deno.writeFile(f, b);
    },
    expect: [/model\.safetensors/, /header/i],
  },
  {
    name: "bad JSON",
    corrupt: async (d) => {
      const f = join(d, ST);
      const b = await Deno.readFile(f);
      // The first ':' of the header becomes ';'.
      const colon = b.indexOf(":".charCodeAt(0), 8);
      b[colon] = ";".charCodeAt(0);
      await Deno.writeFile(f, b);
    },
    expect: [/model\.safetensors/, /JSON/i],
  },
  {
    name: "offsets outside the file",
    corrupt: async (d) => {
      const f = join(d, ST);
      const { header, data } = await readParts(f);
      const last = tensorNames(header).at(-1)!;
      const [b, e] = header[last].data_offsets;
      header[last].data_offsets = [b + 1024, e + 1024];
      await writeParts(f, header, data);
    },
    expect: [/model\.safetensors/],
  },
  {
    name: "overlapping tensors",
    corrupt: async (d) => {
      const f = join(d, ST);
      const { header, data } = await readParts(f);
      const names = tensorNames(header);
      // Two tensors of equal size (input and post-attention norms) share bytes.
      const a = names.find((n) => n.endsWith("0.input_layernorm.weight"))!;
      const b = names.find((n) =>
        n.endsWith("0.post_attention_layernorm.weight")
      )!;
      header[b].data_offsets = header[a].data_offsets.slice();
      await writeParts(f, header, data);
    },
    expect: [/model\.safetensors/],
  },
  {
    name: "shape/dtype size mismatch",
    corrupt: async (d) => {
      const f = join(d, ST);
      const { header, data } = await readParts(f);
      header["model.norm.weight"].shape = [3];
      await writeParts(f, header, data);
    },
    expect: [/model\.safetensors/, /model\.norm\.weight/],
  },
  {
    name: "unknown dtype",
    corrupt: async (d) => {
      const f = join(d, ST);
      const { header, data } = await readParts(f);
      header["model.norm.weight"].dtype = "F17";
      await writeParts(f, header, data);
    },
    expect: [/model\.safetensors/, /F17/],
  },
  {
    name: "truncated file",
    corrupt: async (d) => {
      const f = join(d, ST);
      const b = await Deno.readFile(f);
      await Deno.writeFile(f, b.subarray(0, b.length - 100));
    },
    expect: [/model\.safetensors/],
  },
  {
    name: "missing shard named in the index",
    sharded: true,
    corrupt: async (d) => {
      await Deno.remove(join(d, "model-00002-of-00002.safetensors"));
    },
    expect: [
      /model\.safetensors\.index\.json/,
      /model-00002-of-00002\.safetensors/,
    ],
  },
  {
    name: "config.json is not JSON",
    corrupt: async (d) => {
      await Deno.writeTextFile(join(d, "config.json"), "{ nope");
    },
    expect: [/config\.json/, /JSON/],
  },
  {
    name: "config.json says more layers than the weights hold",
    corrupt: async (d) => {
      const c = JSON.parse(await Deno.readTextFile(join(d, "config.json")));
      c.num_hidden_layers += 1;
      await Deno.writeTextFile(join(d, "config.json"), JSON.stringify(c));
    },
    expect: [/missing tensor model\.layers\.2\./],
  },
  {
    name: "tensor shape disagrees with config.json",
    corrupt: async (d) => {
      const c = JSON.parse(await Deno.readTextFile(join(d, "config.json")));
      c.intermediate_size += 32;
      await Deno.writeTextFile(join(d, "config.json"), JSON.stringify(c));
    },
    expect: [/model\.safetensors/, /mlp\.\w+_proj\.weight has shape/],
  },
  {
    name: "no weights at all",
    corrupt: async (d) => {
      await Deno.remove(join(d, ST));
    },
    expect: [/no model\.safetensors or model\.safetensors\.index\.json/],
  },
  {
    name: "tokenizer.json is a directory",
    corrupt: async (d) => {
      await Deno.remove(join(d, "tokenizer.json"));
      await Deno.mkdir(join(d, "tokenizer.json"));
    },
    expect: [/tokenizer\.json: not a regular file/],
  },
  {
    name: "config.json is a directory",
    corrupt: async (d) => {
      await Deno.remove(join(d, "config.json"));
      await Deno.mkdir(join(d, "config.json"));
    },
    expect: [/config\.json: not a regular file/],
  },
  // symbolic links and FIFOs: POSIX only
  ...(Deno.build.os === "windows" ? [] : <Case[]> [
    {
      name: "model.safetensors is a broken symbolic link",
      corrupt: async (d) => {
        await Deno.remove(join(d, ST));
        await Deno.symlink(join(d, "blobs", "absent"), join(d, ST));
      },
      expect: [/model\.safetensors: is a broken symbolic link/],
    },
    {
      name: "tokenizer_config.json is a FIFO (reading it would block)",
      corrupt: async (d) => {
        await Deno.remove(join(d, "tokenizer_config.json"));
        const r = await new Deno.Command("mkfifo", {
          args: [join(d, "tokenizer_config.json")],
        }).output();
        if (!r.success) throw new Error("mkfifo failed");
      },
      expect: [/tokenizer_config\.json: not a regular file/],
    },
  ]),
];

Deno.test("split: corrupted and truncated inputs give one-line errors", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const single = await makeTinyModel(join(dir, "single"), {
      arch: "llama",
      dtype: "F16",
    });
    const sharded = await makeTinyModel(join(dir, "sharded"), {
      arch: "llama",
      dtype: "F16",
      sharded: true,
    });
    const results = await Promise.all(CASES.map(async (c, i) => {
      const d = join(dir, `case${i}`);
      await copyDir(c.sharded ? sharded.dir : single.dir, d);
      await c.corrupt(d);
      const out = join(dir, `out${i}`);
      return { c, out, r: await runCli(["split", d, "--out", out]) };
    }));
    for (const { c, out, r } of results) {
      const lines = r.stderr.trim().split("\n");
      assert.equal(r.code, 1, `${c.name}: exit ${r.code}\n${r.stderr}`);
      assert.equal(lines.length, 1, `${c.name}: stderr\n${r.stderr}`);
      assert.match(lines[0], /^strata: error: /, c.name);
      assert.doesNotMatch(r.stderr, /\n\s+at /, c.name);
      for (const re of c.expect) {
        assert.match(lines[0], re, `${c.name}: ${lines[0]}`);
      }
      let manifest = true;
      try {
        await Deno.stat(join(out, "manifest.json"));
      } catch {
        manifest = false;
      }
      assert.equal(manifest, false, `${c.name}: left a manifest`);
    }
  } finally {
    await cleanup();
  }
});

Deno.test("split: bad usage and missing paths give one-line errors", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    await makeTinyModel(join(dir, "m"), { arch: "llama", dtype: "F32" });
    const cases: [string[], RegExp][] = [
      [
        ["split", join(dir, "nope"), "--out", join(dir, "o")],
        /nope: no such file or directory/,
      ],
      [["split", dir], /--out <dir> is required/],
      [
        ["split", dir, "--out", join(dir, "o"), "--quantize", "q3"],
        /--quantize must be none, q8, q4, .*q4k, q5k or q6k \(got q3\)$/,
      ],
      [["split", dir, "--out", join(dir, "o"), "--bogus"], /bogus/],
      [["split", dir, "--out", join(dir, "o")], /no config\.json/],
      [["info", join(dir, "nope")], /no such file or directory/],
      [
        ["split", join(dir, "m"), "--out", join(dir, "m", "config.json")],
        /--out .*config\.json exists and is not a directory/,
      ],
    ];
    const results = await Promise.all(cases.map(([a]) => runCli(a)));
    results.forEach((r, i) => {
      const lines = r.stderr.trim().split("\n");
      assert.notEqual(r.code, 0, cases[i][0].join(" "));
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], cases[i][1]);
    });
  } finally {
    await cleanup();
  }
});

Deno.test("split: not enough disk space says how much is needed", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const m = await makeTinyModel(join(dir, "m"), {
      arch: "qwen3",
      dtype: "F32",
    });
    const out = join(dir, "out");
    const r = await runCli(["split", m.dir, "--out", out], {
      STRATA_SPLIT_FREE_BYTES: "1000",
    });
    assert.equal(r.code, 1);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0],
      /not enough free disk space: the split needs [\d.]+ kB, 1\.00 kB available/,
    );
    // The output directory did not exist before: nothing is left behind.
    await assert.rejects(Deno.stat(out), Deno.errors.NotFound);
  } finally {
    await cleanup();
  }
});

Deno.test("split: --out must be new, empty, a shard directory or an unfinished split", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const m = await makeTinyModel(join(dir, "m"), {
      arch: "llama",
      dtype: "F32",
    });
    const other = await makeTinyModel(join(dir, "other"), {
      arch: "qwen3",
      dtype: "F16",
    });
    const before = await Deno.readTextFile(join(other.dir, "config.json"));
    // Another model's directory (or the source itself): refused, untouched.
    for (const out of [other.dir, m.dir]) {
      const r = await runCli(["split", m.dir, "--out", out]);
      assert.equal(r.code, 1, r.stderr);
      const lines = r.stderr.trim().split("\n");
      assert.equal(lines.length, 1, r.stderr);
      assert.match(
        lines[0],
        /^strata: error: --out .* is a directory that is neither empty nor a Strata shard directory \(it holds [\w.]+\)/,
      );
      await assert.rejects(Deno.stat(join(out, "embed.safetensors")));
      await assert.rejects(Deno.stat(join(out, "layers")));
    }
    assert.equal(
      await Deno.readTextFile(join(other.dir, "config.json")),
      before,
    );
    // An existing empty directory is fine.
    const empty = join(dir, "empty");
    await Deno.mkdir(empty);
    const ok = await runCli(["split", m.dir, "--out", empty]);
    assert.equal(ok.code, 0, ok.stderr);
    // An output path that cannot be created: one line naming it.
    if (Deno.build.os === "linux") {
      const r = await runCli(["split", m.dir, "--out", "/proc/strata-out"]);
      assert.equal(r.code, 1);
      const lines = r.stderr.trim().split("\n");
      assert.equal(lines.length, 1, r.stderr);
      assert.match(
        lines[0],
        /^strata: error: --out \/proc\/strata-out: cannot create the shard directory/,
      );
    }
  } finally {
    await cleanup();
  }
});

Deno.test("info and split name an unfinished split as such", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const m = await makeTinyModel(join(dir, "m"), {
      arch: "llama",
      dtype: "F16",
    });
    const out = join(dir, "out");
    const r = await runCli(["split", m.dir, "--out", out], {
      STRATA_SPLIT_FAIL_AFTER: "5",
    });
    assert.equal(r.code, 1, r.stderr);
    for (
      const args of [
        ["info", out],
        ["split", out, "--out", join(dir, "again")],
      ]
    ) {
      const r2 = await runCli(args);
      assert.equal(r2.code, 1, r2.stderr);
      const lines = r2.stderr.trim().split("\n");
      assert.equal(lines.length, 1, r2.stderr);
      assert.match(
        lines[0],
        /out: an unfinished Strata split \(no manifest\.json yet\): run the same split command again/,
      );
    }
  } finally {
    await cleanup();
  }
});
