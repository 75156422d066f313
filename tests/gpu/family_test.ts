/**
 * Kernel family selection (lib/gpu/family.ts, requestGpu): `STRATA_KERNELS`
 * parsing (anything but gpu, cpu or auto is a one-line UsageError, and the CLI
 * exits non-zero before touching the GPU), the CPU-adapter test on adapter
 * traits, `auto` on this machine's adapter, and the plan each family gives.
 */
import assert from "node:assert/strict";
import { gpu, gpuTest } from "../_gpu.ts";
import { requestGpu } from "../../lib/gpu/device.ts";
import {
  isCpuAdapter,
  kernelFamily,
  parseKernelChoice,
} from "../../lib/gpu/family.ts";
import { planMatmul } from "../../lib/gpu/ops/matmul.ts";

const LAVAPIPE = {
  description: "llvmpipe (LLVM 15.0.6, 256 bits)",
  vendor: "65541",
  architecture: "",
  isFallback: false, // even without the flag, the name and Mesa's vendor id say CPU
};
const NVIDIA = {
  description: "NVIDIA GeForce RTX 4090",
  vendor: "nvidia",
  architecture: "ada-lovelace",
  isFallback: false,
};

Deno.test("kernel family: STRATA_KERNELS values", () => {
  assert.equal(parseKernelChoice(undefined), "auto");
  assert.equal(parseKernelChoice(""), "auto");
  for (const v of ["gpu", "cpu", "auto"]) assert.equal(parseKernelChoice(v), v);
  for (const v of ["bogus", "GPU", " gpu", "1"]) {
    assert.throws(
      () => parseKernelChoice(v),
      (e: Error) =>
        e.name === "UsageError" && !e.message.includes("\n") &&
        /STRATA_KERNELS must be gpu, cpu or auto/.test(e.message),
    );
  }
});

Deno.test("kernel family: auto picks cpu on CPU adapters, gpu elsewhere", () => {
  assert.equal(isCpuAdapter(LAVAPIPE), true);
  assert.equal(isCpuAdapter({ ...NVIDIA, isFallback: true }), true);
  assert.equal(
    isCpuAdapter({ ...NVIDIA, description: "SwiftShader Device" }),
    true,
  );
  assert.equal(isCpuAdapter({ ...NVIDIA, architecture: "cpu" }), true);
  for (
    const a of [
      NVIDIA,
      { ...NVIDIA, description: "AMD Radeon RX 7900", vendor: "amd" },
      { ...NVIDIA, description: "Apple M3 Max", vendor: "apple" },
      { ...NVIDIA, description: "Intel(R) Arc(tm) A770", vendor: "intel" },
      { ...NVIDIA, description: "", vendor: "", architecture: "" },
    ]
  ) {
    assert.equal(isCpuAdapter(a), false, a.description);
    assert.equal(kernelFamily("auto", a), "gpu");
    assert.equal(kernelFamily("cpu", a), "cpu");
  }
  assert.equal(kernelFamily("auto", LAVAPIPE), "cpu");
  assert.equal(kernelFamily("gpu", LAVAPIPE), "gpu");
});

Deno.test("kernel family: each family's matmul plan names its kernel and variant", () => {
  const cpu = planMatmul("q4", 4096, 1, { kernels: "cpu" });
  assert.deepEqual([cpu.kernel, cpu.family], ["matvec_q4", "cpu"]);
  const mv = planMatmul("f16", 4096, 1, { kernels: "gpu" });
  assert.deepEqual([mv.kernel, mv.variant, mv.rowsPerWorkgroup], [
    "matvec_coop_f16",
    "wg+unpack",
    4,
  ]);
  const sg = planMatmul("q8", 4096, 1, { kernels: "gpu", subgroups: true });
  assert.equal(sg.variant, "sg");
  const mm = planMatmul("q4k", 4096, 128, { kernels: "gpu" });
  assert.deepEqual([mm.kernel, mm.variant, mm.tokensPerWorkgroup], [
    "matmul_tiled_q4k",
    "tile32x32",
    32,
  ]);
  // K not a multiple of the encoding's alignment: the generic kernel in both families
  assert.equal(
    planMatmul("f32", 37, 1, { kernels: "gpu" }).kernel,
    "matmul_generic",
  );
});

gpuTest("kernel family: requestGpu follows { kernels } and auto", async (g) => {
  const forced = await requestGpu({ kernels: "gpu" });
  try {
    assert.equal(forced.kernels, "gpu");
  } finally {
    forced.device.destroy();
  }
  const env = Deno.env.get("STRATA_KERNELS");
  if (!env || env === "auto") {
    assert.equal(g.kernels, isCpuAdapter(g.adapter) ? "cpu" : "gpu");
  } else {
    assert.equal(g.kernels, env);
  }
  await assert.rejects(
    // deno-lint-ignore no-explicit-any
    () => requestGpu({ kernels: "fast" as any }),
    /kernels must be gpu, cpu or auto/,
  );
});

Deno.test({
  name: "kernel family: STRATA_KERNELS=bogus is refused by the CLI in one line",
  ignore: gpu === null,
  fn: async () => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("../../cli.ts", import.meta.url).pathname,
        "bench",
        "--kernels",
        "--quick",
      ],
      env: { STRATA_KERNELS: "bogus", XDG_RUNTIME_DIR: "/tmp" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(out.stderr).trim();
    assert.notEqual(out.code, 0);
    assert.equal(err.split("\n").length, 1, err);
    assert.match(
      err,
      /STRATA_KERNELS must be gpu, cpu or auto \(got "bogus"\)/,
    );
  },
});

gpuTest(
  "kernel family: bench --kernels entries name their family and variant",
  async (g) => {
    const { benchKernels } = await import("../../lib/gpu/bench.ts");
    const r = await benchKernels(g, {
      dtypes: ["q4", "f16"],
      shapes: [[64, 256]],
      prefillT: 0, // the prefill entries are 4096 x 4096: too slow for a test on lavapipe
      rounds: 1,
      roundMs: 5,
      idleWaitMs: 0,
      copyBytes: 1 << 20,
      families: ["cpu", "gpu"],
    });
    assert.deepEqual(r.families, ["cpu", "gpu"]);
    const seen = r.kernels.map((k) =>
      `${k.name} ${k.family} ${k.variant} ${k.shape}`
    );
    assert.deepEqual(
      seen,
      [
        "matvec_q4 cpu 16x1 64x256",
        "matvec_coop_q4 gpu wg 64x256",
        "matvec_f16 cpu 8x1 64x256",
        "matvec_coop_f16 gpu wg+unpack 64x256",
      ].map((l) => g.subgroups ? l.replace(" wg", " sg") : l),
    );
  },
);

Deno.test("kernel family: the subgroup variant's WGSL (compiled only where the adapter has `subgroups`)", async () => {
  const { gpuKernelSpec } = await import("../../lib/gpu/ops/_matmul_gpu.ts");
  const { kernelSource, fields } = await import("../../lib/gpu/_wgsl.ts");
  const params = fields("n k t rowOff outStride hasBias nb");
  for (const dtype of ["f16", "q4", "q6k"]) {
    const sg = kernelSource(
      gpuKernelSpec(dtype, 1, { subgroups: true }, params),
    );
    const wg = kernelSource(gpuKernelSpec(dtype, 1, {}, params));
    assert.ok(sg.startsWith("enable subgroups;\n"), dtype);
    assert.match(
      sg,
      /@builtin\(subgroup_invocation_id\) sgi: u32, @builtin\(subgroup_size\) sgs: u32,\n\) \{/,
    );
    for (let r = 0; r < 4; r++) {
      assert.ok(sg.includes(`subgroupAdd(a${r})`), dtype);
    }
    assert.ok(
      !/enable subgroups|subgroupAdd\(|@builtin\(subgroup/.test(wg) &&
        wg.includes("workgroupBarrier"),
      dtype,
    );
    // every repeat marker was expanded
    assert.ok(!/#[a-z]|\{\{|\{%|@insert/.test(sg + wg), dtype);
  }
});
