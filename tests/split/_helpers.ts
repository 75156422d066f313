/**
 * Shared helpers of the split tests: temp dirs, the CLI as a subprocess,
 * independent SHA-256 and CRC-32, and file listing.
 *
 * @module
 */
import { join, relative } from "node:path";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** The result of running the CLI in a subprocess. */
export interface CliResult {
  code: number;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** Runs `deno run -A cli.ts ...args` with extra environment variables. */
export async function runCli(
  args: string[],
  env: Record<string, string> = {},
): Promise<CliResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    signal: out.signal,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

/** SHA-256 (hex) of a whole file via WebCrypto (independent of lib/). */
export async function sha256(path: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

/** The CRC-32 table (IEEE polynomial 0xedb88320, reflected, as zip). */
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/**
 * CRC-32 (8 lower-case hex digits) of `bytes`, table-driven, one byte at a
 * time: independent of node:zlib and of lib/.
 */
export function crc32Bytes(bytes: Uint8Array): string {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) {
    c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  }
  return ((c ^ 0xffffffff) >>> 0).toString(16).padStart(8, "0");
}

/** CRC-32 (hex) of a whole file, by {@link crc32Bytes}. */
export async function crc32(path: string): Promise<string> {
  return crc32Bytes(await Deno.readFile(path));
}

/**
 * Every file under `dir` (relative paths, sorted), except the integrity
 * sidecar `.strata-verified.json`: machine-local state (inodes, times), not
 * output.
 */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = join(d, e.name);
      if (e.isDirectory) await walk(p);
      else if (e.name !== ".strata-verified.json") out.push(relative(dir, p));
    }
  };
  await walk(dir);
  return out.sort();
}

/** Copies a directory tree (files only). */
export async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for (const f of await listFiles(from)) {
    const dst = join(to, f);
    await Deno.mkdir(join(dst, ".."), { recursive: true });
    await Deno.copyFile(join(from, f), dst);
  }
}

/** A fresh temporary directory, removed by the returned function. */
export async function tempDir(
  prefix = "strata-split-test-",
): Promise<[string, () => Promise<void>]> {
  const d = await Deno.makeTempDir({ prefix });
  return [d, () => Deno.remove(d, { recursive: true })];
}
