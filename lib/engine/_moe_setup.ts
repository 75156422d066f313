/**
 * The forward pass's set-up for models with routed experts: the budget split
 * between the residency plan and the expert cache, and the expert runner
 * with its store. Dense models get the plain plan and no runner.
 *
 * @module
 */
import type { SafetensorsFile } from "../format/safetensors.ts";
import type { ModelConfig } from "../model/config.ts";
import { formatBytes } from "../_units.ts";
import {
  type ExpertLayouts,
  expertLayouts,
  type ExpertPlan,
  ExpertStore,
  planExperts,
} from "./_experts.ts";
import { MoeRunner } from "./_moe_step.ts";
import type { UploadTarget } from "./reader.ts";
import { type PlanInput, planResidency, type ResidencyPlan } from "./plan.ts";

/** The plan of a model, with its expert cache when it has experts. */
export interface MoePlan {
  /** The residency plan of everything but the experts. */
  plan: ResidencyPlan;
  /** Expert layouts (null: a dense model, or experts kept in their layers). */
  ex: ExpertLayouts | null;
  /** The expert cache's share of the budget (null as `ex`). */
  exPlan: ExpertPlan | null;
}

/**
 * Plans residency: experts on their own share the budget with the layers
 * (lib/engine/_experts.ts planExperts); otherwise planResidency.
 *
 * @example
 * ```ts ignore
 * const { plan } = planWithExperts({ cfg, files, limits, budget, input });
 * ```
 */
export function planWithExperts(o: {
  cfg: ModelConfig;
  files: SafetensorsFile[];
  limits: Parameters<typeof expertLayouts>[2];
  budget: number;
  input: Omit<PlanInput, "budget">;
  expertStreaming?: boolean;
}): MoePlan {
  const moe = o.cfg.moe;
  const ex = moe && o.expertStreaming !== false
    ? expertLayouts(o.cfg, o.files, o.limits)
    : null;
  const exPlan = ex && moe
    ? planExperts({ budget: o.budget, input: o.input, ex, topK: moe.topK })
    : null;
  const plan = exPlan?.plan ??
    planResidency({ budget: o.budget, ...o.input });
  return { plan, ex, exPlan };
}

/**
 * The expert runner of a model with experts (null for a dense model), its
 * store uploaded when the experts stream on their own; logs the cache line.
 *
 * @example
 * ```ts ignore
 * const moe = await createMoeRunner({ device, cfg, maxT, files, limits, target, budget, planned });
 * ```
 */
export async function createMoeRunner(o: {
  device: GPUDevice;
  cfg: ModelConfig;
  maxT: number;
  files: SafetensorsFile[];
  limits: Parameters<typeof expertLayouts>[2];
  target: UploadTarget<GPUBuffer>;
  budget: number;
  planned: MoePlan;
  log?: (line: string) => void;
}): Promise<MoeRunner | null> {
  if (!o.cfg.moe) return null;
  const { ex, exPlan } = o.planned;
  const store = ex && exPlan
    ? await ExpertStore.create({
      target: o.target,
      files: o.files,
      layouts: ex,
      slots: exPlan.slots,
    })
    : null;
  const names = ex?.names ?? expertLayouts(o.cfg, o.files, o.limits).names;
  const moe = MoeRunner.create(o.device, o.cfg, o.maxT, { store, names });
  if (ex && exPlan && store) {
    o.log?.(
      `experts: ${ex.count} of ${formatBytes(ex.slotBytes)} at most, ${
        store.allResident ? "all resident" : `${store.capacity} cached`
      } (${formatBytes(exPlan.cacheBytes)} of the ${
        formatBytes(o.budget)
      } budget; the plan above has the rest)`,
    );
  }
  return moe;
}
