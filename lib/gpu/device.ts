/**
 * WebGPU adapter and device acquisition.
 *
 * {@link requestGpu} asks for a high-performance adapter, requests the
 * adapter's own limits (not the WebGPU defaults, which cap storage bindings at
 * 128 MiB and 8 storage buffers) and the `shader-f16` feature where it exists.
 * A lost device is reported as a {@link GpuError} on {@link Gpu.lost}.
 *
 * @module
 */
import { GpuError } from "../errors.ts";
import {
  type KernelChoice,
  kernelChoiceFromEnv,
  type KernelFamily,
  kernelFamily,
  parseKernelChoice,
} from "./family.ts";

export type { KernelChoice, KernelFamily } from "./family.ts";

/** Limits of the device that kernels and weight placement depend on. */
export interface GpuLimits {
  /** Largest GPUBuffer in bytes. */
  maxBufferSize: number;
  /** Largest range bound to one storage binding, in bytes. */
  maxStorageBufferBindingSize: number;
  /** Storage buffers a compute shader may bind. */
  maxStorageBuffersPerShaderStage: number;
  /** Workgroup (shared) memory in bytes. */
  maxComputeWorkgroupStorageSize: number;
  /** Workgroups per dispatch dimension (65,535 on most adapters). */
  maxComputeWorkgroupsPerDimension: number;
  /** Alignment of a storage binding offset in bytes. */
  minStorageBufferOffsetAlignment: number;
  /** Alignment of a uniform binding offset in bytes. */
  minUniformBufferOffsetAlignment: number;
  /** Invocations per workgroup. */
  maxComputeInvocationsPerWorkgroup: number;
}

/** An acquired WebGPU device and what it can do. */
export interface Gpu {
  /** The device every buffer and pipeline is created on. */
  device: GPUDevice;
  /** What the adapter says about itself. */
  adapter: {
    description: string;
    vendor: string;
    architecture: string;
    isFallback: boolean;
  };
  /** True when `shader-f16` is enabled on the device (`enable f16;` allowed). */
  f16: boolean;
  /** True when the `subgroups` feature is enabled on the device. */
  subgroups: boolean;
  /** The limits the device was created with (the adapter's own). */
  limits: GpuLimits;
  /**
   * The kernel family the launchers use (lib/gpu/family.ts): `STRATA_KERNELS`
   * or `requestGpu({ kernels })`, `auto` → `cpu` on a fallback/CPU adapter.
   */
  kernels: KernelFamily;
  /** Resolves with a GpuError if the device is lost (never rejects). */
  lost: Promise<GpuError>;
}

/** Options of {@link requestGpu}. */
export interface RequestGpuOptions {
  /** `false` forces the f32 path even when `shader-f16` exists. Default: use it when present. */
  f16?: boolean;
  /** `false` leaves `subgroups` disabled. Default: enable when present. */
  subgroups?: boolean;
  /**
   * Kernel family: `"gpu"`, `"cpu"` or `"auto"`. Default: `STRATA_KERNELS`,
   * else `"auto"`.
   */
  kernels?: KernelChoice;
  /** Adapter power preference. Default `"high-performance"`. */
  powerPreference?: GPUPowerPreference;
}

const NO_ADAPTER =
  "no WebGPU adapter found: install a GPU driver with Vulkan support, or Mesa's CPU rasterizer lavapipe " +
  "(`apt-get install mesa-vulkan-drivers`); on Linux also set XDG_RUNTIME_DIR (e.g. `export XDG_RUNTIME_DIR=/tmp`)";

/**
 * Linux: the Vulkan/GL loaders print "error: XDG_RUNTIME_DIR is invalid or not
 * set" on every start when it is unset; any value silences them (it is read
 * when the first adapter is requested), so set one for this process.
 */
function quietXdgRuntimeDir(): void {
  try {
    if (Deno.build.os === "linux" && !Deno.env.get("XDG_RUNTIME_DIR")) {
      Deno.env.set("XDG_RUNTIME_DIR", Deno.env.get("TMPDIR") || "/tmp");
    }
  } catch {
    // no --allow-env: the warning stays, nothing else changes
  }
}

const LIMIT_NAMES: (keyof GpuLimits)[] = [
  "maxBufferSize",
  "maxStorageBufferBindingSize",
  "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupStorageSize",
  "maxComputeWorkgroupsPerDimension",
  "minStorageBufferOffsetAlignment",
  "minUniformBufferOffsetAlignment",
  "maxComputeInvocationsPerWorkgroup",
];

/** Extra limits requested at the adapter's values when present (not part of {@link GpuLimits}). */
const EXTRA_LIMITS = [
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxUniformBufferBindingSize",
  "maxBindingsPerBindGroup",
];

/**
 * Acquires a WebGPU adapter and device with the adapter's own limits.
 *
 * The kernel family (`gpu.kernels`) comes from `opts.kernels`, else
 * `STRATA_KERNELS`, else `auto` (lib/gpu/family.ts); any other value is a
 * `UsageError` thrown before an adapter is requested.
 *
 * Throws {@link GpuError} when WebGPU or an adapter is missing, saying how to
 * get one (a GPU driver, or lavapipe via `apt-get install mesa-vulkan-drivers`).
 *
 * @example
 * ```ts ignore
 * import { requestGpu } from "./device.ts";
 * const gpu = await requestGpu();
 * console.log(gpu.adapter.description, gpu.f16, gpu.limits.maxStorageBufferBindingSize);
 * const gpu32 = await requestGpu({ f16: false }); // forces the f32 kernels
 * console.log(gpu32.f16); // false
 * const g = await requestGpu({ kernels: "gpu" }); // the GPU kernel family, even on lavapipe
 * console.log(g.kernels); // "gpu"
 * ```
 */
export async function requestGpu(opts: RequestGpuOptions = {}): Promise<Gpu> {
  // a bad STRATA_KERNELS is refused before any adapter is requested
  const choice = opts.kernels !== undefined
    ? parseKernelChoice(opts.kernels, "kernels")
    : kernelChoiceFromEnv();
  quietXdgRuntimeDir();
  const nav = globalThis.navigator as Navigator | undefined;
  if (!nav?.gpu) {
    throw new GpuError(
      `WebGPU is not available in this runtime; ${NO_ADAPTER}`,
    );
  }
  let adapter: GPUAdapter | null;
  try {
    adapter = await nav.gpu.requestAdapter({
      powerPreference: opts.powerPreference ?? "high-performance",
    });
  } catch (e) {
    throw new GpuError(`${NO_ADAPTER} (${(e as Error).message})`, { cause: e });
  }
  if (!adapter) throw new GpuError(NO_ADAPTER);

  const requiredLimits: Record<string, number> = {};
  const al = adapter.limits as unknown as Record<string, number>;
  for (const name of [...LIMIT_NAMES, ...EXTRA_LIMITS]) {
    const v = al[name];
    if (typeof v === "number") requiredLimits[name] = v;
  }
  const features: GPUFeatureName[] = [];
  const f16 = opts.f16 !== false && adapter.features.has("shader-f16");
  if (f16) features.push("shader-f16");
  const subgroups = opts.subgroups !== false &&
    adapter.features.has("subgroups" as GPUFeatureName);
  if (subgroups) features.push("subgroups" as GPUFeatureName);
  // timestamp queries time GPU compute per layer when tracing (lib/engine/trace.ts)
  if (adapter.features.has("timestamp-query")) features.push("timestamp-query");

  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({
      requiredFeatures: features,
      requiredLimits,
    });
  } catch (e) {
    throw new GpuError(
      `requesting a WebGPU device failed: ${(e as Error).message}`,
      { cause: e },
    );
  }
  const dl = device.limits as unknown as Record<string, number>;
  const limits = {} as GpuLimits;
  for (const name of LIMIT_NAMES) limits[name] = dl[name] ?? al[name];

  const info = adapter.info ?? ({} as GPUAdapterInfo);
  const lost = device.lost.then((l) =>
    new GpuError(
      `WebGPU device lost (${l.reason ?? "unknown"}): ${
        l.message || "no message"
      }; restart the process`,
    )
  );
  const traits = {
    description: info.description ?? "",
    vendor: info.vendor ?? "",
    architecture: info.architecture ?? "",
    isFallback: Boolean(
      (info as unknown as { isFallbackAdapter?: boolean })
        .isFallbackAdapter ??
        (adapter as unknown as { isFallbackAdapter?: boolean })
          .isFallbackAdapter,
    ),
  };
  return {
    device,
    adapter: traits,
    f16,
    subgroups,
    limits,
    kernels: kernelFamily(choice, traits),
    lost,
  };
}
