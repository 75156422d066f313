/**
 * Composing WGSL from shared pieces. An encoding's decode file
 * (`kernels/_decode_<name>.wgsl`) holds sections, each opened by a line
 * `// @section <name>: <comment>`; {@link section} picks one (the text before
 * the first marker is the file's header comment and is dropped).
 *
 * @module
 */

const MARKER = /^\/\/ @section ([a-z0-9_]+)\b.*$/;

/**
 * The lines of section `name` of `src` ("" when it has none).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { section } from "./_wgsl.ts";
 * const src = "// header\n// @section a: one\nfn a() {}\n// @section b\nfn b() {}\n";
 * assert.equal(section(src, "a"), "fn a() {}\n");
 * assert.equal(section(src, "c"), "");
 * ```
 */
export function section(src: string, name: string): string {
  const out: string[] = [];
  let on = false;
  for (const line of src.split("\n")) {
    const m = MARKER.exec(line);
    if (m) {
      on = m[1] === name;
      continue;
    }
    if (on) out.push(line);
  }
  return out.length ? out.join("\n").replace(/\n*$/, "\n") : "";
}
