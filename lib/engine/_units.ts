/**
 * Streaming units: the pieces of a decoder layer the reader's ring streams
 * when a whole layer is too big for the slots the budget allows (q/k/v/o,
 * gate, up, down: one or a few matrices each, with the norms and biases
 * they use).
 *
 * A layer's tensors fall into named groups, in the order the layer steps
 * (`_steps.ts`) use them; the steps call `rec.unit(group)` before the first
 * command that reads a group's tensors, so the forward pass can submit the
 * commands of each unit as soon as its weights have arrived. Units are runs
 * of consecutive groups packed up to a byte cap ({@link packUnits}): the
 * cap of a whole layer gives one unit (whole-layer streaming), the cap of
 * the largest matrix gives the smallest slots. New kinds of steps add their
 * groups to {@link UNIT_GROUPS}; a layer with a tensor in no group streams
 * whole.
 *
 * @module
 */
import type { LayerRole, LayerStep } from "../model/architectures.ts";

/** A group of a step's tensors, by role, used together by the steps. */
export interface UnitGroup {
  /** The name the steps mark (`rec.unit(name)`). */
  group: string;
  /** Its roles (those the layer has). */
  roles: readonly LayerRole[];
}

/**
 * The groups of each kind of step, in the order the step records its
 * commands. A fused `[q; k; v]` lands in `attn.q` (its k and v groups are
 * then empty), a fused `[gate; up]` in `mlp.gate`.
 */
export const UNIT_GROUPS: Readonly<
  Record<LayerStep["step"], readonly UnitGroup[]>
> = {
  attention: [
    {
      group: "attn.q",
      roles: ["attnNorm", "qProj", "qBias", "qkvProj", "qkvBias"],
    },
    { group: "attn.k", roles: ["kProj", "kBias"] },
    { group: "attn.v", roles: ["vProj", "vBias", "qNorm", "kNorm"] },
    { group: "attn.o", roles: ["oProj", "oBias", "attnPostNorm"] },
  ],
  mlp: [
    { group: "mlp.gate", roles: ["mlpNorm", "gateProj", "gateUpProj"] },
    { group: "mlp.up", roles: ["upProj"] },
    { group: "mlp.down", roles: ["downProj", "mlpPostNorm"] },
  ],
  // a moe step's routed experts are in no group: they stream on their own
  // (_experts.ts), and a layer holding them in its image streams whole
  moe: [
    { group: "moe.router", roles: ["mlpNorm", "router"] },
    { group: "moe.shared.gate", roles: ["sharedGate"] },
    { group: "moe.shared.up", roles: ["sharedUp"] },
    { group: "moe.shared.down", roles: ["sharedDown", "sharedExpertGate"] },
  ],
};

/** A layer's non-empty groups, in order: the group's name and its tensor names. */
export interface NamedGroup {
  /** Group name (unique within the layer). */
  group: string;
  /** Tensor names of the layer file. */
  names: string[];
}

/**
 * The non-empty groups of a layer with steps `steps` and tensor names by
 * role `names`, in the order of use; null when a tensor is in no group
 * (the layer then streams whole).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { layerGroups } from "./_units.ts";
 * import { ARCHITECTURES } from "../model/architectures.ts";
 * const g = layerGroups(ARCHITECTURES.llama.steps, {
 *   attnNorm: "n1", qProj: "q", kProj: "k", vProj: "v", oProj: "o",
 *   mlpNorm: "n2", gateProj: "g", upProj: "u", downProj: "d" });
 * assert.deepEqual(g?.map((x) => x.names), [["n1", "q"], ["k"], ["v"], ["o"], ["n2", "g"], ["u"], ["d"]]);
 * ```
 */
export function layerGroups(
  steps: readonly LayerStep[],
  names: Partial<Record<LayerRole, string>>,
): NamedGroup[] | null {
  const out: NamedGroup[] = [];
  const placed = new Set<LayerRole>();
  for (const s of steps) {
    for (const g of UNIT_GROUPS[s.step]) {
      const got: string[] = [];
      for (const role of g.roles) {
        const name = names[role];
        if (name === undefined || placed.has(role)) continue;
        placed.add(role);
        got.push(name);
      }
      if (got.length > 0) out.push({ group: g.group, names: got });
    }
  }
  const all = Object.keys(names) as LayerRole[];
  return all.every((r) => placed.has(r)) ? out : null;
}

/** A streaming unit: consecutive groups of one layer. */
export interface Unit {
  /** Its groups' names. */
  groups: string[];
  /** Its tensor names. */
  names: string[];
}

/**
 * Packs consecutive groups into units of at most `cap` bytes as measured by
 * `bytesOf` (a group bigger than `cap` is a unit of its own).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { packUnits } from "./_units.ts";
 * const sizes: Record<string, number> = { a: 10, b: 20, c: 40, d: 5 };
 * const groups = ["a", "b", "c", "d"].map((n) => ({ group: n, names: [n] }));
 * const units = packUnits(groups, (names) => names.reduce((s, n) => s + sizes[n], 0), 40);
 * assert.deepEqual(units.map((u) => u.groups), [["a", "b"], ["c"], ["d"]]);
 * ```
 */
export function packUnits(
  groups: readonly NamedGroup[],
  bytesOf: (names: string[]) => number,
  cap: number,
): Unit[] {
  const out: Unit[] = [];
  for (const g of groups) {
    const last = out.at(-1);
    if (last && bytesOf([...last.names, ...g.names]) <= cap) {
      last.groups.push(g.group);
      last.names.push(...g.names);
    } else out.push({ groups: [g.group], names: [...g.names] });
  }
  return out;
}
