import assert from "node:assert/strict";
import { FormatError } from "../../lib/errors.ts";
import {
  dtypeBits,
  dtypeBytes,
  DTYPES,
  isDtype,
  shapeNumel,
  tensorByteLength,
} from "../../lib/format/dtype.ts";
import {
  MAX_HEADER_SIZE,
  SafetensorsFile,
  SafetensorsWriter,
} from "../../lib/format/safetensors.ts";

const enc = new TextEncoder();

/** Builds `u64 N | header | data` exactly as given (no padding added). */
function rawFile(
  header: string | Uint8Array,
  data: Uint8Array = new Uint8Array(0),
  n?: bigint,
): Uint8Array {
  const h = typeof header === "string" ? enc.encode(header) : header;
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, n ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

async function withTemp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "strata_st_" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Writes `bytes` to a temp file, opens it, and expects a FormatError matching `re`. */
async function expectBad(bytes: Uint8Array, re: RegExp): Promise<void> {
  await withTemp(async (dir) => {
    const path = `${dir}/bad.safetensors`;
    await Deno.writeFile(path, bytes);
    let err: unknown = null;
    try {
      const f = await SafetensorsFile.open(path);
      f.close();
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof FormatError, `expected FormatError, got ${err}`);
    assert.equal(err.file, path);
    assert.ok(err.message.startsWith(`${path}: `), err.message);
    assert.ok(
      !err.message.includes("\n"),
      `message is not one line: ${err.message}`,
    );
    assert.match(err.problem, re);
  });
}

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

Deno.test("dtype table: bit widths from the safetensors Dtype enum", () => {
  assert.equal(DTYPES.length, 22);
  assert.equal(dtypeBits("F4"), 4);
  assert.equal(dtypeBits("F6_E2M3"), 6);
  assert.equal(dtypeBits("F6_E3M2"), 6);
  assert.equal(dtypeBits("BOOL"), 8);
  assert.equal(dtypeBits("F8_E8M0"), 8);
  assert.equal(dtypeBytes("BF16"), 2);
  assert.equal(dtypeBytes("C64"), 8);
  assert.equal(dtypeBytes("F4"), 0.5);
  assert.equal(isDtype("F32"), true);
  assert.equal(isDtype("f32"), false);
  assert.equal(isDtype("toString"), false);
  assert.throws(() => dtypeBytes("Q4_0"));
  assert.equal(shapeNumel([]), 1);
  assert.equal(shapeNumel([3, 0, 5]), 0);
  assert.equal(shapeNumel([2 ** 30, 2 ** 30]), null);
  assert.equal(tensorByteLength("F4", [3]), null);
  assert.equal(tensorByteLength("F4", [4]), 2);
  assert.equal(tensorByteLength("F6_E2M3", [4]), 3);
  assert.equal(tensorByteLength("F6_E2M3", [2]), null);
  assert.equal(tensorByteLength("I64", [2, 3]), 48);
});

Deno.test("reference test vector test_serialization parses", async () => {
  // huggingface/safetensors tensor.rs test_serialization (FORMATS.md §1): N = 64.
  const header =
    '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
  assert.equal(header.length, 64);
  const bytes = rawFile(header, f32Bytes([0, 1, 2, 3, 4, 5]));
  assert.deepEqual([...bytes.subarray(0, 8)], [64, 0, 0, 0, 0, 0, 0, 0]);
  await withTemp(async (dir) => {
    const path = `${dir}/t.safetensors`;
    await Deno.writeFile(path, bytes);
    const f = await SafetensorsFile.open(path);
    try {
      assert.deepEqual([...f.tensors.keys()], ["attn.0"]);
      const t = f.info("attn.0");
      assert.deepEqual(t, {
        name: "attn.0",
        dtype: "F32",
        shape: [1, 2, 3],
        offset: 72,
        byteLength: 24,
      });
      assert.deepEqual(f.metadata, {});
      const data = await f.read("attn.0");
      assert.deepEqual([...new Float32Array(data.slice().buffer)], [
        0,
        1,
        2,
        3,
        4,
        5,
      ]);
    } finally {
      f.close();
    }
  });
});

Deno.test("header padded with spaces, scalar and empty tensors, sub-byte dtype", async () => {
  const header = '{"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]},' +
    '"e":{"dtype":"F16","shape":[2,0],"data_offsets":[8,8]},' +
    '"p":{"dtype":"F4","shape":[2,3],"data_offsets":[8,11]}}    ';
  const data = new Uint8Array(11);
  new DataView(data.buffer).setFloat64(0, Math.PI, true);
  data.set([0x12, 0x34, 0x56], 8);
  await withTemp(async (dir) => {
    const path = `${dir}/t.safetensors`;
    await Deno.writeFile(path, rawFile(header, data));
    const f = await SafetensorsFile.open(path);
    try {
      assert.equal(
        new DataView((await f.read("s")).buffer).getFloat64(0, true),
        Math.PI,
      );
      assert.equal((await f.read("e")).length, 0);
      assert.deepEqual([...await f.read("p")], [0x12, 0x34, 0x56]);
      assert.deepEqual(f.info("e").shape, [2, 0]);
    } finally {
      f.close();
    }
  });
});

Deno.test("writer → reader round trip: bytes identical, metadata kept, declared order", async () => {
  await withTemp(async (dir) => {
    const path = `${dir}/rt.safetensors`;
    const decls = [
      {
        name: "model.layers.0.self_attn.q_proj.weight",
        dtype: "BF16" as const,
        shape: [7, 13],
      },
      { name: "0", dtype: "I8" as const, shape: [5] }, // integer-like key: JSON objects reorder these
      { name: "empty", dtype: "F32" as const, shape: [0, 4] },
      { name: "bias", dtype: "F32" as const, shape: [3] },
      { name: "ü/名前", dtype: "U64" as const, shape: [2, 1] },
      { name: "half", dtype: "F16" as const, shape: [1] },
    ];
    const payload = new Map<string, Uint8Array>();
    let seed = 12345;
    for (const d of decls) {
      const n = tensorByteLength(d.dtype, d.shape)!;
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        seed = (seed * 1103515245 + 12345) >>> 0;
        b[i] = seed >>> 24;
      }
      payload.set(d.name, b);
    }
    const meta = {
      format: "pt",
      "strata.quant": '{"x":{"type":"q8"}}',
      empty: "",
    };
    const w = await SafetensorsWriter.create(path, decls, meta);
    for (const d of decls) {
      const b = payload.get(d.name)!;
      // write in uneven chunks
      for (let i = 0; i < b.length; i += 17) {
        await w.write(d.name, b.subarray(i, i + 17));
      }
    }
    await w.close();

    const raw = await Deno.readFile(path);
    const n = Number(new DataView(raw.buffer).getBigUint64(0, true));
    assert.equal(n % 8, 0, "header padded to a multiple of 8");
    const headerText = new TextDecoder().decode(raw.subarray(8, 8 + n));
    assert.match(headerText, /^\{.*\} *$/);
    // independent check of the header with plain JSON.parse
    const json = JSON.parse(headerText);
    assert.deepEqual(json.__metadata__, meta);
    let pos = 0;
    // declared order in the file: offsets contiguous in declaration order
    for (const d of decls) {
      const size = payload.get(d.name)!.length;
      assert.deepEqual(json[d.name], {
        dtype: d.dtype,
        shape: d.shape,
        data_offsets: [pos, pos + size],
      });
      assert.deepEqual(
        raw.subarray(8 + n + pos, 8 + n + pos + size),
        payload.get(d.name),
      );
      pos += size;
    }
    assert.equal(raw.length, 8 + n + pos);
    // the header text keeps declaration order too
    const order = decls.map((d) =>
      headerText.indexOf(JSON.stringify(d.name) + ':{"dtype"')
    );
    assert.deepEqual(order, [...order].sort((a, b) => a - b));

    const f = await SafetensorsFile.open(path);
    try {
      assert.deepEqual(f.metadata, meta);
      assert.deepEqual([...f.tensors.keys()], decls.map((d) => d.name));
      for (const d of decls) {
        const t = f.info(d.name);
        assert.equal(t.dtype, d.dtype);
        assert.deepEqual(t.shape, d.shape);
        assert.deepEqual(await f.read(d.name), payload.get(d.name));
      }
      // read into a caller buffer (larger than needed) returns a view of it
      const buf = new Uint8Array(1000);
      const view = await f.read("bias", buf);
      assert.equal(view.buffer, buf.buffer);
      assert.deepEqual(view, payload.get("bias"));
      // concurrent reads are serialized correctly
      const all = await Promise.all(decls.map((d) => f.read(d.name)));
      all.forEach((b, i) => assert.deepEqual(b, payload.get(decls[i].name)));
      // raw range
      assert.deepEqual(
        await f.readRange(0, new Uint8Array(8)),
        raw.subarray(0, 8),
      );
      await assert.rejects(
        f.readRange(raw.length - 2, new Uint8Array(4)),
        FormatError,
      );
      await assert.rejects(f.read("bias", new Uint8Array(2)), FormatError);
      assert.throws(
        () => f.info("nope"),
        (e) =>
          e instanceof FormatError && /no tensor named "nope"/.test(e.message),
      );
    } finally {
      f.close();
    }
    assert.throws(() => f.info("nope"), FormatError);
    await assert.rejects(f.read("bias"), /read after close/);
  });
});

Deno.test("writer without metadata and with no tensors", async () => {
  await withTemp(async (dir) => {
    const path = `${dir}/e.safetensors`;
    await (await SafetensorsWriter.create(path, [])).close({ sync: true });
    const raw = await Deno.readFile(path);
    assert.equal(new TextDecoder().decode(raw.subarray(8)), "{}      ");
    const f = await SafetensorsFile.open(path);
    assert.equal(f.tensors.size, 0);
    assert.deepEqual(f.metadata, {});
    f.close();
  });
});

Deno.test("writer: bytes written elsewhere at dataOffset and skipped make the same file", async () => {
  await withTemp(async (dir) => {
    const decls = [
      { name: "a", dtype: "U8" as const, shape: [5] },
      { name: "e", dtype: "U8" as const, shape: [0] },
      { name: "b", dtype: "U8" as const, shape: [3] },
    ];
    const ref = `${dir}/ref.safetensors`;
    const w0 = await SafetensorsWriter.create(ref, decls, { k: "v" });
    await w0.write("a", new Uint8Array([1, 2, 3, 4, 5]));
    await w0.write("b", new Uint8Array([6, 7, 8]));
    await w0.close();
    const path = `${dir}/w.safetensors`;
    const w = await SafetensorsWriter.create(path, decls, { k: "v" });
    assert.equal(w.dataOffset("e"), w.dataOffset("b"));
    assert.equal(w.dataOffset("b") - w.dataOffset("a"), 5);
    // bytes 1..3 of a and all of b by another handle, out of order
    const f = await Deno.open(path, { write: true });
    await f.seek(w.dataOffset("b"), Deno.SeekMode.Start);
    await f.write(new Uint8Array([6, 7, 8]));
    await f.seek(w.dataOffset("a") + 1, Deno.SeekMode.Start);
    await f.write(new Uint8Array([2, 3, 4]));
    f.close();
    await w.write("a", new Uint8Array([1]));
    await w.skip("a", 3);
    await w.write("a", new Uint8Array([5]));
    await w.skip("b", 3);
    await w.close();
    assert.deepEqual(await Deno.readFile(path), await Deno.readFile(ref));
    // skip has write's checks
    const check = (re: RegExp) => (e: unknown) =>
      e instanceof FormatError && e.file === path && re.test(e.problem);
    const w2 = await SafetensorsWriter.create(path, decls);
    await assert.rejects(w2.skip("b", 1), check(/out of order/));
    await assert.rejects(w2.skip("a", 6), check(/overflows/));
    await assert.rejects(w2.skip("z", 1), check(/undeclared/));
    assert.throws(() => w2.dataOffset("z"), check(/no tensor "z"/));
    await w2.skip("a", 5);
    await assert.rejects(w2.close(), check(/before all tensor data/));
  });
});

Deno.test("writer rejects misuse with FormatError naming the file", async () => {
  await withTemp(async (dir) => {
    const path = `${dir}/w.safetensors`;
    const decls = [
      { name: "a", dtype: "U8" as const, shape: [4] },
      { name: "b", dtype: "U8" as const, shape: [2] },
    ];
    const check = (re: RegExp) => (e: unknown) =>
      e instanceof FormatError && e.file === path && re.test(e.problem);
    await assert.rejects(
      SafetensorsWriter.create(path, [decls[0], decls[0]]),
      check(/declared twice/),
    );
    await assert.rejects(
      SafetensorsWriter.create(path, [{
        name: "__metadata__",
        dtype: "U8",
        shape: [1],
      }]),
      check(/reserved/),
    );
    await assert.rejects(
      SafetensorsWriter.create(path, [{
        name: "x",
        dtype: "Q4" as "U8",
        shape: [1],
      }]),
      check(/unknown dtype/),
    );
    await assert.rejects(
      SafetensorsWriter.create(path, [{ name: "x", dtype: "U8", shape: [-1] }]),
      check(/invalid shape/),
    );
    await assert.rejects(
      SafetensorsWriter.create(path, [{ name: "x", dtype: "F4", shape: [3] }]),
      check(/whole number of bytes/),
    );
    await assert.rejects(
      SafetensorsWriter.create(path, [], { a: 1 as unknown as string }),
      check(/not a string/),
    );

    let w = await SafetensorsWriter.create(path, decls);
    await assert.rejects(
      w.write("b", new Uint8Array(2)),
      check(/out of order: tensor "a" .* has 0 of 4 bytes/),
    );
    await assert.rejects(
      w.write("zzz", new Uint8Array(2)),
      check(/undeclared tensor "zzz"/),
    );
    await w.write("a", new Uint8Array(3));
    await assert.rejects(
      w.write("a", new Uint8Array(2)),
      check(/overflows its 4 bytes \(3 already written\)/),
    );
    await assert.rejects(
      w.close(),
      check(
        /closed before all tensor data was written: "a" has 3 of 4 bytes, 1 later/,
      ),
    );
    await assert.rejects(w.write("a", new Uint8Array(1)), check(/after close/));

    w = await SafetensorsWriter.create(path, decls);
    await w.write("a", new Uint8Array(4));
    await w.write("b", new Uint8Array(2));
    await assert.rejects(
      w.write("b", new Uint8Array(1)),
      check(/already complete/),
    );
    await w.close();
    await w.close(); // idempotent
    const f = await SafetensorsFile.open(path);
    assert.equal(f.tensors.size, 2);
    f.close();

    w = await SafetensorsWriter.create(path, decls);
    w.abort();
  });
});

const T = (name: string, dtype: string, shape: unknown, offs: unknown) =>
  `${JSON.stringify(name)}:{"dtype":${JSON.stringify(dtype)},"shape":${
    JSON.stringify(shape)
  },"data_offsets":${JSON.stringify(offs)}}`;

Deno.test("corrupt: file too short, header length past EOF, 2^60", async () => {
  await expectBad(new Uint8Array(0), /file is 0 bytes, too short/);
  await expectBad(new Uint8Array(5), /file is 5 bytes, too short/);
  const ok = rawFile(
    `{${T("a", "F32", [6], [0, 24])}}`,
    f32Bytes([0, 1, 2, 3, 4, 5]),
  );
  const past = ok.slice();
  new DataView(past.buffer).setBigUint64(0, BigInt(ok.length), true);
  await expectBad(
    past,
    new RegExp(`^header length ${ok.length} exceeds file size ${ok.length}`),
  );
  const huge = ok.slice();
  new DataView(huge.buffer).setBigUint64(0, 2n ** 60n, true);
  await expectBad(
    huge,
    new RegExp(
      `^header length 1152921504606846976 exceeds file size ${ok.length}`,
    ),
  );
  const max = ok.slice();
  new DataView(max.buffer).setBigUint64(0, 2n ** 64n - 1n, true);
  await expectBad(max, /^header length 18446744073709551615 exceeds file size/);
  // truncated file: header intact, data cut short
  await expectBad(
    ok.subarray(0, ok.length - 4),
    /tensor "a": data_offsets \[0, 24\] lie outside the file/,
  );
  // truncated inside the header
  await expectBad(
    ok.subarray(0, 30),
    /^header length \d+ exceeds file size 30/,
  );
});

Deno.test("corrupt: header larger than 100,000,000 bytes (sparse file)", async () => {
  await withTemp(async (dir) => {
    const path = `${dir}/big.safetensors`;
    const head = new Uint8Array(8);
    new DataView(head.buffer).setBigUint64(
      0,
      BigInt(MAX_HEADER_SIZE + 1),
      true,
    );
    await Deno.writeFile(path, head);
    await Deno.truncate(path, MAX_HEADER_SIZE + 64); // sparse: no real disk use
    await assert.rejects(
      SafetensorsFile.open(path),
      (e) =>
        e instanceof FormatError && e.file === path &&
        e.problem ===
          "header length 100000001 exceeds the maximum of 100000000 bytes",
    );
  });
});

Deno.test("corrupt: header text (empty, not '{', bad UTF-8, bad JSON)", async () => {
  await expectBad(rawFile(""), /header is empty/);
  await expectBad(
    rawFile(" {}     "),
    /does not start with '\{' \(first byte 0x20\)/,
  );
  await expectBad(rawFile("[]      "), /does not start with '\{'/);
  await expectBad(
    rawFile(new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])),
    /not valid UTF-8/,
  );
  await expectBad(
    rawFile('{"a": {"dtype": "F32",'),
    /header is not valid JSON/,
  );
  await expectBad(rawFile("{}\n\n}"), /header is not valid JSON/);
  await expectBad(rawFile("{} x"), /header is not valid JSON/);
  await expectBad(rawFile("{}\0\0\0\0\0\0"), /header is not valid JSON/);
});

Deno.test("corrupt: tensor entries (unknown dtype, shape, keys, offsets)", async () => {
  const d24 = f32Bytes([0, 1, 2, 3, 4, 5]);
  const one = (entry: string, data = d24) => rawFile(`{${entry}}`, data);
  await expectBad(
    one(T("a", "F33", [6], [0, 24])),
    /tensor "a": unknown dtype "F33"/,
  );
  await expectBad(one(T("a", "f32", [6], [0, 24])), /unknown dtype "f32"/);
  await expectBad(
    one(`"a":{"dtype":5,"shape":[6],"data_offsets":[0,24]}`),
    /unknown dtype 5/,
  );
  await expectBad(
    one(T("a", "F32", [2, 3], [0, 20])),
    /needs 24 bytes but data_offsets \[0, 20\] hold 20/,
  );
  await expectBad(
    one(T("a", "F16", [2, 3], [0, 24])),
    /shape \[2,3\] with dtype F16 needs 12 bytes/,
  );
  await expectBad(
    one(T("a", "F32", [-6], [0, 24])),
    /not an integer in 0\.\.2\^48-1/,
  );
  await expectBad(
    one(T("a", "F32", [1.5, 4], [0, 24])),
    /number with a fraction or exponent \(1\.5\)/,
  );
  await expectBad(
    one(`"a":{"dtype":"F32","shape":[6],"data_offsets":[0,24.0]}`),
    /fraction or exponent \(24\.0\)/,
  );
  await expectBad(
    one(`"a":{"dtype":"F32","shape":[6e0],"data_offsets":[0,24]}`),
    /fraction or exponent \(6e0\)/,
  );
  await expectBad(one(T("a", "F32", ["6"], [0, 24])), /not an integer/);
  await expectBad(
    one(T("a", "F32", [2 ** 48, 0], [0, 0]), new Uint8Array(0)),
    /not an integer in 0\.\.2\^48-1/,
  );
  await expectBad(one(T("a", "F32", 6, [0, 24])), /shape is not an array/);
  await expectBad(
    one(T("a", "F32", [2 ** 40, 2 ** 40], [0, 24])),
    /does not give a whole number of bytes within 2\^53/,
  );
  await expectBad(
    one(T("a", "F4", [3], [0, 2]), new Uint8Array(2)),
    /whole number of bytes/,
  );
  await expectBad(
    one(T("a", "F32", [6], [0])),
    /data_offsets \[0\] is not a pair/,
  );
  await expectBad(
    one(T("a", "F32", [6], [-4, 20])),
    /is not a pair of non-negative integers/,
  );
  await expectBad(one(T("a", "F32", [6], "0,24")), /is not a pair/);
  await expectBad(
    one(T("a", "F32", [0], [24, 0]), new Uint8Array(0)),
    /end before they begin/,
  );
  await expectBad(
    one(`"a":{"dtype":"F32","shape":[6],"data_offsets":[0,24],"extra":1}`),
    /unexpected key "extra"/,
  );
  await expectBad(
    one(`"a":{"dtype":"F32","data_offsets":[0,24]}`),
    /tensor "a": missing "shape"/,
  );
  await expectBad(one(`"a":[1,2]`), /tensor "a": entry is not an object/);
  await expectBad(one(`"a":null`), /tensor "a": entry is not an object/);
});

Deno.test("corrupt: offsets outside the file, overlaps, holes, trailing bytes", async () => {
  const d24 = f32Bytes([0, 1, 2, 3, 4, 5]);
  await expectBad(
    rawFile(`{${T("a", "F32", [250], [0, 1000])}}`, d24),
    /tensor "a": data_offsets \[0, 1000\] lie outside the file \(data ends at file offset \d+, file size \d+\)/,
  );
  await expectBad(
    rawFile(
      `{${T("a", "F32", [4], [0, 16])},${T("b", "F32", [4], [8, 24])}}`,
      d24,
    ),
    /tensor "b" \(data_offsets \[8, 24\]\) overlaps tensor "a" \(data_offsets \[0, 16\]\)/,
  );
  await expectBad(
    rawFile(
      `{${T("a", "F32", [6], [0, 24])},${T("b", "F32", [6], [0, 24])}}`,
      d24,
    ),
    /overlaps/,
  );
  await expectBad(
    rawFile(
      `{${T("a", "F32", [2], [0, 8])},${T("b", "F32", [2], [16, 24])}}`,
      d24,
    ),
    /data buffer has a hole: bytes 8\.\.16 belong to no tensor \(before tensor "b"\)/,
  );
  await expectBad(
    rawFile(`{${T("a", "F32", [4], [8, 24])}}`, d24),
    /hole: bytes 0\.\.8/,
  );
  await expectBad(
    rawFile(`{${T("a", "F32", [2], [0, 8])}}`, d24),
    /not fully covered: tensors end at 8 but the buffer holds 24 bytes \(16 trailing bytes\)/,
  );
  await expectBad(rawFile("{}", d24), /not fully covered/);
});

Deno.test("corrupt: __metadata__ must be a string→string map", async () => {
  const d = f32Bytes([1]);
  const t = T("a", "F32", [1], [0, 4]);
  await expectBad(
    rawFile(`{"__metadata__":{"a":1},${t}}`, d),
    /__metadata__ value for key "a" is not a string \(got number\)/,
  );
  await expectBad(
    rawFile(`{"__metadata__":{"a":{"b":"c"}},${t}}`, d),
    /got object/,
  );
  await expectBad(rawFile(`{"__metadata__":{"a":null},${t}}`, d), /got null/);
  await expectBad(
    rawFile(`{"__metadata__":["a"],${t}}`, d),
    /__metadata__ is not an object of strings \(got an array\)/,
  );
  await expectBad(
    rawFile(`{"__metadata__":"x",${t}}`, d),
    /__metadata__ is not an object/,
  );
  // valid metadata
  await withTemp(async (dir) => {
    const path = `${dir}/m.safetensors`;
    await Deno.writeFile(
      path,
      rawFile(`{"__metadata__":{"format":"pt","__proto__":"x"},${t}}`, d),
    );
    const f = await SafetensorsFile.open(path);
    assert.equal(f.metadata.format, "pt");
    assert.equal(
      Object.getOwnPropertyDescriptor(f.metadata, "__proto__")?.value,
      "x",
    );
    f.close();
  });
});

Deno.test("missing file and directory give FormatError", async () => {
  await withTemp(async (dir) => {
    await assert.rejects(
      SafetensorsFile.open(`${dir}/none.safetensors`),
      (e) => e instanceof FormatError && e.problem === "no such file",
    );
    await assert.rejects(SafetensorsFile.open(dir), FormatError);
  });
});

Deno.test("open does not load the data: 4 GiB sparse tensor", async () => {
  await withTemp(async (dir) => {
    const path = `${dir}/sparse.safetensors`;
    const size = 2 ** 32;
    const w = await SafetensorsWriter.create(path, [{
      name: "big",
      dtype: "U8",
      shape: [size],
    }]);
    w.abort();
    const headerLen = (await Deno.stat(path)).size;
    await Deno.truncate(path, headerLen + size);
    const mem0 = Deno.memoryUsage().rss;
    const f = await SafetensorsFile.open(path);
    try {
      assert.equal(f.info("big").byteLength, size);
      const tail = await f.readRange(headerLen + size - 16, new Uint8Array(16));
      assert.deepEqual(tail, new Uint8Array(16));
      assert.ok(Deno.memoryUsage().rss - mem0 < 256 * 2 ** 20);
    } finally {
      f.close();
    }
  });
});

Deno.test("corrupt: duplicate keys are rejected; same key in different objects is fine", async () => {
  const d = f32Bytes([1, 2]);
  const a = T("a", "F32", [1], [0, 4]);
  const b = T("b", "F32", [1], [4, 8]);
  await expectBad(
    rawFile(`{${a},${T("a", "F32", [1], [4, 8])}}`, d),
    /duplicate key "a"/,
  );
  await expectBad(
    rawFile(`{"__metadata__":{"k":"1","k":"2"},${a},${b}}`, d),
    /duplicate key "k"/,
  );
  await expectBad(
    rawFile(
      `{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]},${b}}`,
      d,
    ),
    /duplicate key "dtype"/,
  );
  await expectBad(
    rawFile(`{"x\\"y":1, "x\\u0022y" :2}`),
    /duplicate key "x\\"y"/,
  );
  await withTemp(async (dir) => {
    const path = `${dir}/ok.safetensors`;
    const h = `{"__metadata__":{"a":"b","\\"a\\":":"{\\"b\\":1}"},${a},${
      T('b"', "F32", [1], [4, 8])
    }}`;
    await Deno.writeFile(path, rawFile(h, d));
    const f = await SafetensorsFile.open(path);
    assert.deepEqual([...f.tensors.keys()], ["a", 'b"']);
    assert.deepEqual(f.metadata, { a: "b", '"a":': '{"b":1}' });
    f.close();
  });
});
