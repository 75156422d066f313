/**
 * Byte counts for humans: one formatter for every message and table.
 *
 * @module
 */

const DECIMAL = ["B", "kB", "MB", "GB", "TB"];
const BINARY = ["B", "KiB", "MiB", "GiB", "TiB"];

/**
 * Formats a byte count for humans. `base` 1024 (the default) gives binary
 * units with two decimals (`1.50 MiB`), as the engine's plans and budgets
 * use; 1000 gives decimal units with three significant digits (`1.61 GB`,
 * `12.0 MB`), as `split` and `info` report file sizes. Counts below one unit
 * print as bytes (`512 B`); non-finite numbers print as they are.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatBytes } from "./_units.ts";
 * assert.deepStrictEqual(formatBytes(1536 * 1024), "1.50 MiB");
 * assert.deepStrictEqual(formatBytes(1536 * 1024 * 1024, 1000), "1.61 GB");
 * ```
 */
export function formatBytes(n: number, base: 1000 | 1024 = 1024): string {
  if (!Number.isFinite(n)) return String(n);
  const units = base === 1000 ? DECIMAL : BINARY;
  let v = n;
  let u = 0;
  while (v >= base && u < units.length - 1) {
    v /= base;
    u++;
  }
  if (u === 0) return `${n} B`;
  const digits = base === 1000 && v >= 10 ? 1 : 2;
  return `${v.toFixed(digits)} ${units[u]}`;
}
