/**
 * Hugging Face repo ids: `org/name` or `org/name@revision`.
 *
 * @module
 */
import { UsageError } from "../errors.ts";

/** A parsed repo reference. */
export interface RepoRef {
  /** `org/name`. */
  repoId: string;
  /** Branch, tag or commit; "main" when not given. */
  revision: string;
}

const PART = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function validPart(p: string): boolean {
  return PART.test(p) && !p.includes("..") && !p.includes("--") &&
    !p.endsWith(".") && p.length <= 96;
}

/**
 * Whether `s` names a revision safely: no `..` segment, no backslash, no
 * leading "/", printable ASCII only.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isValidRevision } from "./repo_id.ts";
 * assert.deepStrictEqual([isValidRevision("refs/pr/1"), isValidRevision("../x")], [true, false]);
 * ```
 */
export function isValidRevision(s: string): boolean {
  if (s.length === 0 || s.length > 256) return false;
  if (!/^[A-Za-z0-9._\/-]+$/.test(s)) return false;
  return s.split("/").every((seg) => seg !== "" && seg !== "." && seg !== "..");
}

/**
 * Parses `org/name` or `org/name@revision`; returns null when `s` does not
 * look like a repo id (so callers can try it as a path first).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseRepoId } from "./repo_id.ts";
 * assert.deepStrictEqual(parseRepoId("Qwen/Qwen3-0.6B@main"), { repoId: "Qwen/Qwen3-0.6B", revision: "main" });
 * assert.deepStrictEqual(parseRepoId("./models/x"), null);
 * ```
 */
export function parseRepoId(s: string): RepoRef | null {
  const at = s.indexOf("@");
  const id = at === -1 ? s : s.slice(0, at);
  const revision = at === -1 ? "main" : s.slice(at + 1);
  const parts = id.split("/");
  if (parts.length !== 2 || !parts.every(validPart)) return null;
  if (!isValidRevision(revision)) return null;
  return { repoId: id, revision };
}

/**
 * Like {@linkcode parseRepoId} but throws a {@linkcode UsageError} saying
 * what is wrong.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { requireRepoId } from "./repo_id.ts";
 * assert.deepStrictEqual(requireRepoId("org/name").revision, "main");
 * ```
 */
export function requireRepoId(s: string): RepoRef {
  const r = parseRepoId(s);
  if (r === null) {
    throw new UsageError(
      `'${s}' is not a Hugging Face repo id (expected org/name or org/name@revision)`,
    );
  }
  return r;
}
