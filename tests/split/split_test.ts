/**
 * `split --quantize none` on every tiny-model variant: shards hold the
 * source tensors byte for byte, under the same names, in the files the shard
 * format names; `info` reports them. Checked with the fixture's own
 * safetensors parser and WebCrypto hashes, independent of lib/.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  makeTinyModel,
  readTinyHeader,
  readTinyTensor,
  type TinyModel,
  tinyVariants,
} from "../../lib/testing/tiny_model.ts";
import { openSource } from "../../lib/split/open_source.ts";
import { splitModel } from "../../lib/split/split.ts";
import { ShardDir } from "../../lib/format/shards.ts";
import { SafetensorsFile } from "../../lib/format/safetensors.ts";
import { formatInfo, modelInfo } from "../../lib/cli/info.ts";
import { crc32, listFiles, runCli, sha256, tempDir } from "./_helpers.ts";

/** Where each HF tensor must land, from the shard-format rules (issue 2, item 5). */
function expectedFile(name: string): string {
  if (name === "model.embed_tokens.weight") return "embed.safetensors";
  const m = /^model\.layers\.(\d+)\./.exec(name);
  if (m) return `layers/${m[1].padStart(3, "0")}.safetensors`;
  if (name === "model.norm.weight" || name === "lm_head.weight") {
    return "head.safetensors";
  }
  throw new Error(`unexpected tensor ${name}`);
}

async function checkSplit(model: TinyModel, out: string): Promise<void> {
  const layers = model.config.num_hidden_layers as number;
  const tied = model.config.tie_word_embeddings as boolean;
  // Files: exactly the ones the format names.
  const want = [
    "config.json",
    "embed.safetensors",
    "generation_config.json",
    "head.safetensors",
    "manifest.json",
    "tokenizer.json",
    "tokenizer_config.json",
    ...Array.from(
      { length: layers },
      (_, i) => `layers/${String(i).padStart(3, "0")}.safetensors`,
    ),
  ].sort();
  assert.deepEqual(await listFiles(out), want);
  // Copied text files are identical.
  for (
    const f of [
      "config.json",
      "tokenizer.json",
      "tokenizer_config.json",
      "generation_config.json",
    ]
  ) {
    assert.equal(
      await Deno.readTextFile(join(out, f)),
      await Deno.readTextFile(join(model.dir, f)),
      f,
    );
  }
  // Every source tensor, byte-identical, same name, in its file; nothing else.
  const byFile = new Map<string, string[]>();
  for (const t of model.tensors) {
    const f = expectedFile(t.name);
    byFile.set(f, [...(byFile.get(f) ?? []), t.name]);
    const src = await readTinyTensor(join(model.dir, t.file), t.name);
    const dst = await readTinyTensor(join(out, f), t.name);
    assert.equal(dst.dtype, src.dtype, t.name);
    assert.deepEqual(dst.shape, src.shape, t.name);
    assert.ok(
      dst.bytes.length === src.bytes.length &&
        dst.bytes.every((b, i) => b === src.bytes[i]),
      `${t.name}: bytes differ`,
    );
  }
  for (const f of want.filter((f) => f.endsWith(".safetensors"))) {
    const h = await readTinyHeader(join(out, f));
    assert.deepEqual(h.names.slice().sort(), (byFile.get(f) ?? []).sort(), f);
    // The library reader validates it too.
    (await SafetensorsFile.open(join(out, f))).close();
  }
  assert.equal(
    model.tensors.some((t) => t.name === "lm_head.weight"),
    !tied,
  );
  // Manifest: every file but itself, sizes and CRC-32s right (an independent
  // table-driven CRC-32, tests/split/_helpers.ts).
  const manifest = JSON.parse(
    await Deno.readTextFile(join(out, "manifest.json")),
  );
  assert.equal(manifest.format, "strata-shards");
  assert.equal(manifest.version, 2);
  assert.equal(manifest.quantization, "none");
  assert.equal(manifest.embed, "embed.safetensors");
  assert.equal(manifest.head, "head.safetensors");
  assert.deepEqual(
    manifest.layers,
    want.filter((f) => f.startsWith("layers/")),
  );
  assert.deepEqual(
    manifest.files.map((f: { path: string }) => f.path).sort(),
    want.filter((f) => f !== "manifest.json"),
  );
  for (const f of manifest.files) {
    assert.equal(f.size, (await Deno.stat(join(out, f.path))).size, f.path);
    assert.equal(f.crc32, await crc32(join(out, f.path)), f.path);
    assert.equal(f.sha256, undefined, f.path);
  }
  assert.equal(manifest.config.numLayers, layers);
  assert.equal(manifest.config.architecture, model.config.model_type);
  assert.equal(manifest.config.tieWordEmbeddings, tied);
  await (await ShardDir.open(out)).verify();
}

for (const v of tinyVariants()) {
  Deno.test(`split --quantize none: ${v.name}`, async () => {
    const [dir, cleanup] = await tempDir();
    try {
      const model = await makeTinyModel(join(dir, "src"), v);
      const out = join(dir, "out");
      const src = await openSource(model.dir);
      try {
        assert.equal(src.kind, "hf");
        assert.equal(src.tensors.length, model.tensors.length);
        await splitModel(src, { out });
      } finally {
        src.close();
      }
      await checkSplit(model, out);

      // info on the shards and on the checkpoint agree with the fixture.
      const params = model.tensors.reduce(
        (a, t) => a + t.shape.reduce((x, y) => x * y, 1),
        0,
      );
      const si = await modelInfo(out, { verify: true });
      const hi = await modelInfo(model.dir);
      for (const i of [si, hi]) {
        assert.equal(i.architecture, v.arch);
        assert.equal(i.parameters, params);
        assert.equal(i.layers, model.config.num_hidden_layers);
        assert.deepEqual(i.dtypes, [v.dtype]);
        assert.equal(i.quantization, "none");
        assert.equal(i.tokenizer?.vocabSize, 300);
        assert.equal(i.tokenizer?.chatTemplate, true);
      }
      assert.equal(si.verified, true);
      for (let l = 0; l < si.layers; l++) {
        const f = join(out, `layers/${String(l).padStart(3, "0")}.safetensors`);
        assert.equal(si.bytesPerLayer[l], (await Deno.stat(f)).size);
        const layerBytes = model.tensors
          .filter((t) => t.name.startsWith(`model.layers.${l}.`))
          .reduce(
            (a, t) =>
              a +
              t.shape.reduce((x, y) => x * y, 1) * (v.dtype === "F32" ? 4 : 2),
            0,
          );
        assert.equal(hi.bytesPerLayer[l], layerBytes);
      }
      const text = formatInfo(si).join("\n");
      assert.match(text, new RegExp(`architecture: +${v.arch}`));
      assert.match(
        text,
        new RegExp(`parameters: .*${params.toLocaleString("en-US")}`),
      );
    } finally {
      await cleanup();
    }
  });
}

Deno.test("split and info CLI: text, --json, re-run is a verified no-op", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const v = tinyVariants().find((v) => v.sharded && v.tied)!;
    const model = await makeTinyModel(join(dir, "src"), v);
    const out = join(dir, "out");
    const r = await runCli(["split", model.dir, "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "");
    // stderr is not a terminal here: one summary line.
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /split: .*layers/);
    await checkSplit(model, out);
    const before = await sha256(join(out, "manifest.json"));
    const again = await runCli(["split", model.dir, "--out", out]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /already done/);
    assert.equal(await sha256(join(out, "manifest.json")), before);

    const info = await runCli(["info", out]);
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, /architecture: +llama/);
    assert.match(info.stdout, /layers: +2 × /);
    const js = await runCli(["info", out, "--json"]);
    assert.equal(js.code, 0, js.stderr);
    const obj = JSON.parse(js.stdout);
    assert.equal(obj.kind, "shards");
    assert.equal(obj.layers, 2);
    const hf = JSON.parse((await runCli(["info", model.dir, "--json"])).stdout);
    assert.equal(hf.kind, "hf");
    assert.equal(hf.parameters, obj.parameters);
    for (const cmd of ["split", "info"]) {
      const h = await runCli([cmd, "--help"]);
      assert.equal(h.code, 0);
      assert.match(h.stdout, /^Usage: /);
    }
  } finally {
    await cleanup();
  }
});

Deno.test("split into a directory holding a different split is refused", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const [a, b] = tinyVariants();
    const ma = await makeTinyModel(join(dir, "a"), a);
    const mb = await makeTinyModel(join(dir, "b"), b);
    const out = join(dir, "out");
    assert.equal((await runCli(["split", ma.dir, "--out", out])).code, 0);
    const r = await runCli(["split", mb.dir, "--out", out]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /already holds shards of a different model/);
    const q = await runCli(["split", ma.dir, "--out", out, "--quantize", "q8"]);
    assert.equal(q.code, 1);
  } finally {
    await cleanup();
  }
});

Deno.test("split copies chat_template.jinja, and the shard dir's tokenizer uses it", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const model = await makeTinyModel(join(dir, "hf"), tinyVariants()[0]);
    // transformers >= 4.50 saves the template beside tokenizer_config.json
    const template = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n" +
      "{% endfor %}";
    await Deno.writeTextFile(join(model.dir, "chat_template.jinja"), template);
    const out = join(dir, "shards");
    const src = await openSource(model.dir);
    try {
      await splitModel(src, { out });
    } finally {
      src.close();
    }
    assert.equal(
      await Deno.readTextFile(join(out, "chat_template.jinja")),
      template,
    );
    const manifest = (await ShardDir.open(out)).manifest;
    assert.ok(manifest.files.some((f) => f.path === "chat_template.jinja"));
    const { Tokenizer } = await import("../../lib/text/tokenizer.ts");
    const tok = await Tokenizer.fromDir(out);
    assert.equal(tok.chatTemplate, template);
  } finally {
    await cleanup();
  }
});
