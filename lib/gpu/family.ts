/**
 * Kernel families and how one is chosen per adapter.
 *
 * - `"cpu"`: the kernels tuned for CPU adapters (lavapipe, llvmpipe): each
 *   invocation walks whole rows alone, no barriers, no workgroup memory
 *   (there every storage load is a per-lane scalar loop, so loads per byte
 *   bound the speed).
 * - `"gpu"`: the kernels shaped for real GPUs: a workgroup cooperates on a few
 *   rows, neighbouring lanes read neighbouring 16-byte words (coalesced), the
 *   partial sums are reduced in workgroup memory (or with `subgroupAdd`),
 *   prefill uses shared-memory tiles (docs/kernels.md).
 *
 * `STRATA_KERNELS=gpu|cpu|auto` (or `requestGpu({ kernels })`) forces a
 * family; `auto` (the default) picks `cpu` on a fallback or CPU adapter and
 * `gpu` otherwise.
 *
 * @module
 */
import { UsageError } from "../errors.ts";

/** A kernel family. */
export type KernelFamily = "gpu" | "cpu";

/** What `STRATA_KERNELS` accepts. */
export type KernelChoice = KernelFamily | "auto";

/** The environment variable that forces a family. */
export const KERNELS_ENV = "STRATA_KERNELS";

/**
 * Checks a kernel family choice (`undefined` and `""` mean `auto`).
 *
 * @throws {UsageError} (one line, naming `what`) for any other value.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseKernelChoice } from "./family.ts";
 * assert.equal(parseKernelChoice(undefined), "auto");
 * assert.equal(parseKernelChoice("gpu"), "gpu");
 * assert.throws(() => parseKernelChoice("bogus"), /STRATA_KERNELS must be gpu, cpu or auto/);
 * ```
 */
export function parseKernelChoice(
  v: string | undefined,
  what = KERNELS_ENV,
): KernelChoice {
  if (v === undefined || v === "") return "auto";
  if (v === "gpu" || v === "cpu" || v === "auto") return v;
  throw new UsageError(
    `${what} must be gpu, cpu or auto (got ${JSON.stringify(v)})`,
  );
}

/**
 * The family chosen by `STRATA_KERNELS` (`auto` when unset or when the
 * environment cannot be read).
 *
 * @throws {UsageError} when it holds anything but gpu, cpu or auto.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { kernelChoiceFromEnv } from "./family.ts";
 * assert.ok(["gpu", "cpu", "auto"].includes(kernelChoiceFromEnv()));
 * ```
 */
export function kernelChoiceFromEnv(): KernelChoice {
  let v: string | undefined;
  try {
    v = Deno.env.get(KERNELS_ENV);
  } catch {
    return "auto"; // no --allow-env
  }
  return parseKernelChoice(v);
}

/** What {@link isCpuAdapter} looks at (the adapter's `info`). */
export interface AdapterTraits {
  /** `GPUAdapterInfo.description` (e.g. "llvmpipe (LLVM 15.0.6, 256 bits)"). */
  description: string;
  /** `GPUAdapterInfo.vendor` (a name or a PCI/Khronos vendor id). */
  vendor: string;
  /** `GPUAdapterInfo.architecture`. */
  architecture: string;
  /** `isFallbackAdapter`. */
  isFallback: boolean;
}

/** Software rasterizers and CPU device types, by name. */
const CPU_NAMES = /llvmpipe|lavapipe|softpipe|swiftshader|\bwarp\b|\bcpu\b/i;

/**
 * Khronos vendor id of Mesa (0x10005), which only Mesa's software drivers
 * report (hardware drivers report the PCI id of the GPU's vendor).
 */
const MESA_VENDOR = new Set(["65541", "0x10005", "mesa"]);

/**
 * Whether an adapter is a CPU (software) adapter: a fallback adapter, a
 * software rasterizer or CPU device type by name, or Mesa's vendor id.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isCpuAdapter } from "./family.ts";
 * const lavapipe = { description: "llvmpipe (LLVM 15.0.6, 256 bits)", vendor: "65541", architecture: "", isFallback: true };
 * assert.equal(isCpuAdapter(lavapipe), true);
 * assert.equal(isCpuAdapter({ description: "NVIDIA H100", vendor: "nvidia", architecture: "hopper", isFallback: false }), false);
 * ```
 */
export function isCpuAdapter(a: AdapterTraits): boolean {
  return a.isFallback ||
    CPU_NAMES.test(`${a.description} ${a.architecture} ${a.vendor}`) ||
    MESA_VENDOR.has(a.vendor.toLowerCase());
}

/**
 * The family for `choice` on adapter `a`: `auto` → `cpu` on a CPU adapter,
 * `gpu` otherwise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { kernelFamily } from "./family.ts";
 * const gpu = { description: "Apple M2", vendor: "apple", architecture: "", isFallback: false };
 * assert.equal(kernelFamily("auto", gpu), "gpu");
 * assert.equal(kernelFamily("cpu", gpu), "cpu");
 * assert.equal(kernelFamily("auto", { ...gpu, isFallback: true }), "cpu");
 * ```
 */
export function kernelFamily(
  choice: KernelChoice,
  a: AdapterTraits,
): KernelFamily {
  if (choice !== "auto") return choice;
  return isCpuAdapter(a) ? "cpu" : "gpu";
}
