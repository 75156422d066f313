/**
 * A decoder layer's shard as the forward pass uses it: its steps, its file,
 * the layout of its tensors (whole, and in sub-layer streaming units) and
 * their names by role.
 *
 * @module
 */
import { FormatError, UnsupportedError } from "../errors.ts";
import { SafetensorsFile } from "../format/safetensors.ts";
import {
  type LayerRole,
  type LayerStep,
  layerSteps,
} from "../model/architectures.ts";
import { layerTensors } from "../model/tensors.ts";
import type { ModelConfig } from "../model/config.ts";
import { layoutOf, type TensorLayout } from "./_layout.ts";
import { layerGroups, packUnits } from "./_units.ts";

/** A decoder layer: its steps, and its shard's file, layout and tensor names by role. */
export interface LayerShard {
  steps: readonly LayerStep[];
  file: SafetensorsFile;
  /** The whole layer (several segments when it exceeds maxBufferSize). */
  layout: TensorLayout;
  names: Partial<Record<LayerRole, string>>;
  /** Its sub-layer streaming units (one buffer each), or null: it streams whole only. */
  units: TensorLayout[] | null;
  /** Unit group (lib/engine/_units.ts) → index of its unit. */
  unitOf: Map<string, number>;
}

/**
 * The streaming units of a layer: its groups packed up to the size of its
 * largest group (so a slot holds one or a few matrices), each laid out as
 * one buffer; null when a tensor is in no group or a group needs more than
 * one buffer.
 */
function unitsOf(
  file: SafetensorsFile,
  groups: ReturnType<typeof layerGroups>,
  maxBinding: number,
  maxBuffer: number,
): { units: TensorLayout[]; unitOf: Map<string, number> } | null {
  if (groups === null) return null;
  const layout = (names: string[]) =>
    layoutOf(file, names, maxBinding, maxBuffer);
  const bytes = (names: string[]) => layout(names).bytes;
  const cap = Math.max(...groups.map((g) => bytes(g.names)));
  const packed = packUnits(groups, bytes, cap);
  const units = packed.map((u) => layout(u.names));
  if (units.some((u) => u.segments.length !== 1)) return null;
  const unitOf = new Map<string, number>();
  packed.forEach((u, k) => {
    for (const g of u.groups) unitOf.set(g, k);
  });
  return { units, unitOf };
}

/**
 * Opens layer `i`'s shard and checks it has every tensor of its steps
 * (without its experts when they stream on their own).
 *
 * @example
 * ```ts ignore
 * const layer = await openLayer({ shards, gpu }, 0, opened);
 * ```
 */
export async function openLayer(
  o: {
    shards: { config: ModelConfig; layerPath(i: number): string };
    gpu: {
      limits: { maxStorageBufferBindingSize: number; maxBufferSize: number };
    };
    expertStreaming?: boolean;
  },
  i: number,
  opened: SafetensorsFile[],
): Promise<LayerShard> {
  const ownExperts = o.expertStreaming !== false; // MOE
  const cfg = o.shards.config;
  const { maxStorageBufferBindingSize, maxBufferSize } = o.gpu.limits;
  const file = await SafetensorsFile.open(o.shards.layerPath(i));
  opened.push(file);
  const want = layerTensors(cfg, i);
  const names: Partial<Record<LayerRole, string>> = {};
  for (const t of want) {
    if (!file.tensors.has(t.name)) {
      throw new FormatError(file.path, `missing tensor ${t.name}`);
    }
    names[t.role] = t.name;
  }
  const layout = layoutOf(
    file,
    want.filter((t) => !ownExperts || t.expert === undefined).map((t) =>
      t.name
    ),
    maxStorageBufferBindingSize,
    maxBufferSize,
  );
  const steps = layerSteps(cfg, i);
  // experts that stream on their own are not the layer's to group; held in
  // its image, they are in no group and the layer streams whole
  const own = ownExperts
    ? Object.fromEntries(
      want.filter((t) => t.expert === undefined).map((t) => [t.role, t.name]),
    ) as Partial<Record<LayerRole, string>>
    : names;
  const u = unitsOf(
    file,
    layerGroups(steps, own),
    maxStorageBufferBindingSize,
    maxBufferSize,
  );
  if (!u && layout.segments.length > 1) {
    throw new UnsupportedError(
      file.path,
      `decoder layer ${i} needs ${layout.bytes} bytes, more than one GPU buffer may hold (maxBufferSize ${maxBufferSize}), and cannot stream in parts`,
    );
  }
  return {
    steps,
    file,
    layout,
    names,
    units: u?.units ?? null,
    unitOf: u?.unitOf ?? new Map(),
  };
}
