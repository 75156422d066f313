/**
 * Download a model from the Hugging Face Hub into the standard cache (see
 * `cache.ts` for the layout): config, tokenizer files, generation config,
 * `*.safetensors` and `model.safetensors.index.json`.
 *
 * - Listing: `GET {endpoint}/api/models/{repo}/revision/{rev}?blobs=true`
 *   (commit `sha`, `siblings` with sizes and LFS sha256).
 * - Files: `GET {endpoint}/{repo}/resolve/{commit}/{file}`, following
 *   redirects by hand so `Authorization` never goes to another origin.
 * - Partial files (`blobs/<etag>.incomplete`) are resumed with `Range`, also
 *   within one run when the connection drops (a few retries).
 * - Sizes are checked (listing, `Content-Length`, `X-Linked-Size`); LFS files
 *   are checked against their sha256.
 * - Offline (`HF_HUB_OFFLINE=1`, `offline: true`, or the hub unreachable): the
 *   cached snapshot of the revision is used when complete.
 * - `HF_ENDPOINT` and `HF_TOKEN` are honoured; the token is never printed.
 *
 * @module
 */
import { dirname, join } from "node:path";
import {
  FormatError,
  StrataError,
  UnsupportedError,
  UsageError,
} from "../errors.ts";
import {
  blobLinkTarget,
  cachedSnapshot,
  checkRepoFileName,
  hubCacheDir,
  isCommitHash,
  normalizeEtag,
  repoCachePaths,
} from "./cache.ts";
import { isValidRevision, parseRepoId } from "./repo_id.ts";
import { sha256File } from "../_fs.ts";

/** Progress of one file. */
export interface DownloadProgress {
  /** File name in the repo. */
  file: string;
  /** Bytes of this file on disk so far. */
  bytesDone: number;
  /** Size of this file. */
  bytesTotal: number;
  /** 1-based index of this file among those to fetch. */
  index: number;
  /** Number of files to fetch. */
  count: number;
}

/** Options of {@linkcode downloadSnapshot}. */
export interface DownloadOptions {
  /** Branch, tag or commit (default: the `@rev` of the id, else "main"). */
  revision?: string;
  /** Cache directory (default: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub). */
  cacheDir?: string;
  /** Hub URL (default: HF_ENDPOINT, else https://huggingface.co). */
  endpoint?: string;
  /**
   * Access token (default: HF_TOKEN, HUGGING_FACE_HUB_TOKEN, else the file
   * HF_TOKEN_PATH or $HF_HOME/token that `huggingface-cli login` writes);
   * `null` sends none.
   */
  token?: string | null;
  /** Use only the cache (default: HF_HUB_OFFLINE is 1/true/yes/on). */
  offline?: boolean;
  /** Called as bytes arrive; default: a progress line on stderr. */
  onProgress?: (p: DownloadProgress) => void;
  /** Attempts per file when the connection drops (default 5). */
  retries?: number;
  /** Fetch only these top-level files (e.g. `["config.json"]` for `plan`). */
  only?: string[];
}

/** Files a model needs, by exact name at the top of the repo. */
const WANTED = new Set([
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "chat_template.jinja",
  "model.safetensors.index.json",
]);
const wanted = (base: string) =>
  WANTED.has(base) || base.endsWith(".safetensors");

interface Sibling {
  rfilename: string;
  size?: number;
  blobId?: string;
  lfs?: { sha256?: string; size?: number };
}

interface FileJob {
  name: string;
  etag: string;
  size: number;
  sha256: string | null;
}

function envFlag(name: string): boolean {
  const v = (Deno.env.get(name) ?? "").toLowerCase();
  return v === "1" || v === "true" || v === "yes" || v === "on";
}

function defaultProgress(): (p: DownloadProgress) => void {
  const tty = Deno.stderr.isTerminal();
  const enc = new TextEncoder();
  let last = 0;
  let lastFile = "";
  const mb = (n: number) => (n / 1e6).toFixed(1);
  return (p) => {
    const done = p.bytesDone >= p.bytesTotal;
    const now = Date.now();
    if (tty) {
      if (!done && p.file === lastFile && now - last < 200) return;
      last = now;
      lastFile = p.file;
      const pct = p.bytesTotal
        ? Math.floor((100 * p.bytesDone) / p.bytesTotal)
        : 100;
      const line = `\r[${p.index}/${p.count}] ${p.file} ${mb(p.bytesDone)}/${
        mb(p.bytesTotal)
      } MB ${pct}%\x1b[K`;
      Deno.stderr.writeSync(enc.encode(done ? line + "\n" : line));
    } else if (done) {
      Deno.stderr.writeSync(
        enc.encode(
          `[${p.index}/${p.count}] ${p.file} ${mb(p.bytesTotal)} MB\n`,
        ),
      );
    }
  };
}

/**
 * A token as sent in `Authorization: Bearer …`: surrounding whitespace is
 * dropped; anything but visible ASCII inside is refused without showing the
 * token (`Headers` would otherwise throw an error that quotes it).
 */
function checkToken(token: string | null, from: string): string | null {
  if (token === null) return null;
  const t = token.trim();
  if (t === "") return null;
  if (!/^[\x21-\x7e]+$/.test(t)) {
    throw new UsageError(
      `${from} contains spaces, control or non-ASCII characters, so it cannot be sent in an HTTP header; check its value (not shown here)`,
    );
  }
  return t;
}

/**
 * The token when none is given, as `huggingface_hub` finds it: `HF_TOKEN`,
 * else `HUGGING_FACE_HUB_TOKEN`, else the file `huggingface-cli login`
 * writes (`HF_TOKEN_PATH`, else `$HF_HOME/token`, else
 * `~/.cache/huggingface/token`).
 */
async function defaultToken(): Promise<string | null> {
  for (const name of ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"]) {
    const v = Deno.env.get(name);
    if (v && v.trim() !== "") return checkToken(v, name);
  }
  const env = (k: string) => Deno.env.get(k) || undefined;
  const path = env("HF_TOKEN_PATH") ?? join(
    env("HF_HOME") ??
      join(
        env("XDG_CACHE_HOME") ??
          join(env("HOME") ?? env("USERPROFILE") ?? ".", ".cache"),
        "huggingface",
      ),
    "token",
  );
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return null; // no saved token (or unreadable): anonymous access
  }
  return checkToken(text, `the token file ${path}`);
}

/** An error from the network layer (not an HTTP status). */
class NetworkError extends StrataError {}

class Hub {
  #endpoint: string;
  #origin: string;
  #token: string | null;
  constructor(endpoint: string, token: string | null) {
    this.#endpoint = endpoint.replace(/\/+$/, "");
    this.#origin = new URL(this.#endpoint).origin;
    this.#token = token;
  }
  get endpoint(): string {
    return this.#endpoint;
  }
  url(path: string): string {
    return this.#endpoint + path;
  }
  /** fetch with redirects followed by hand; the token only goes to the hub's origin. */
  async fetch(
    url: string,
    init: {
      method?: string;
      headers?: Record<string, string>;
      follow?: boolean;
    } = {},
  ): Promise<Response> {
    let current = url;
    for (let hop = 0; hop < 10; hop++) {
      const headers = new Headers(init.headers ?? {});
      if (this.#token && new URL(current).origin === this.#origin) {
        headers.set("Authorization", `Bearer ${this.#token}`);
      }
      headers.set("User-Agent", "strata/0.1");
      let res: Response;
      try {
        res = await fetch(current, {
          method: init.method ?? "GET",
          headers,
          redirect: "manual",
        });
      } catch (e) {
        const origin = new URL(current).origin;
        throw new NetworkError(
          `cannot reach ${origin}${
            origin === this.#origin && Deno.env.get("HF_ENDPOINT")
              ? " (HF_ENDPOINT)"
              : ""
          }: ${(e as Error).message}`,
          {
            cause: e,
          },
        );
      }
      const loc = res.headers.get("location");
      if (
        res.status >= 300 && res.status < 400 && loc && init.follow !== false
      ) {
        await res.body?.cancel();
        current = new URL(loc, current).href;
        continue;
      }
      return res;
    }
    throw new NetworkError(`too many redirects from ${url.split("?")[0]}`);
  }
}

function httpError(repo: string, what: string, res: Response): StrataError {
  if (res.status === 401 || res.status === 403) {
    return new StrataError(
      `${repo}: access denied to ${what} (HTTP ${res.status}); the repo may be gated or private: set HF_TOKEN`,
    );
  }
  if (res.status === 404) {
    return new StrataError(`${repo}: ${what} not found (HTTP 404)`);
  }
  return new StrataError(
    `${repo}: ${what}: HTTP ${res.status} ${res.statusText}`,
  );
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return -1;
    throw e;
  }
}

/**
 * Downloads `repo` ("org/name" or "org/name@revision") into the Hugging Face
 * cache and returns the snapshot folder (`.../snapshots/<commit>`), which
 * holds config.json, the tokenizer files and the safetensors weights.
 *
 * @example
 * ```ts ignore
 * import { downloadSnapshot } from "./download.ts";
 * const dir = await downloadSnapshot("Qwen/Qwen3-0.6B");
 * // dir = ~/.cache/huggingface/hub/models--Qwen--Qwen3-0.6B/snapshots/<commit>
 * ```
 */
export async function downloadSnapshot(
  repo: string,
  opts: DownloadOptions = {},
): Promise<string> {
  const ref = parseRepoId(repo);
  if (ref === null) {
    throw new UsageError(
      `'${repo}' is not a Hugging Face repo id (expected org/name or org/name@revision)`,
    );
  }
  const repoId = ref.repoId;
  if (
    opts.revision !== undefined && repo.includes("@") &&
    opts.revision !== ref.revision
  ) {
    throw new UsageError(
      `${repo}: revision given twice (@${ref.revision} and ${opts.revision})`,
    );
  }
  const revision = opts.revision ?? ref.revision;
  if (!isValidRevision(revision)) {
    throw new UsageError(`${repoId}: invalid revision '${revision}'`);
  }
  const cacheDir = opts.cacheDir ?? hubCacheDir();
  const offline = opts.offline ?? envFlag("HF_HUB_OFFLINE");
  const endpoint = opts.endpoint ??
    (Deno.env.get("HF_ENDPOINT") || "https://huggingface.co");
  if (!/^https?:\/\/[^/]/.test(endpoint) || !URL.canParse(endpoint)) {
    throw new UsageError(
      `${
        opts.endpoint === undefined ? "HF_ENDPOINT" : "endpoint"
      } '${endpoint}' is not an http(s) URL (e.g. https://huggingface.co)`,
    );
  }
  const label = `${repoId}@${revision}`;

  const fromCache = async (why: string): Promise<string> => {
    const dir = await cachedSnapshot(cacheDir, repoId, revision);
    if (dir !== null) return dir;
    throw new StrataError(
      `${label}: ${why}, and the cache (${cacheDir}) has no complete snapshot of it`,
    );
  };
  if (offline) return await fromCache("offline mode (HF_HUB_OFFLINE)");
  const token = opts.token === undefined
    ? await defaultToken()
    : checkToken(opts.token, "the token");

  const hub = new Hub(endpoint, token);
  // 1. The listing: commit hash and files.
  const listUrl = hub.url(
    `/api/models/${repoId}/revision/${encodeURIComponent(revision)}?blobs=true`,
  );
  let res: Response;
  try {
    res = await hub.fetch(listUrl);
  } catch (e) {
    if (e instanceof NetworkError) return await fromCache(e.message);
    throw e;
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw httpError(repoId, `revision '${revision}'`, res);
  }
  let info: { sha?: unknown; siblings?: unknown };
  try {
    info = await res.json();
  } catch (e) {
    throw new FormatError(
      listUrl.split("?")[0],
      `invalid JSON: ${(e as Error).message}`,
    );
  }
  const commit = typeof info.sha === "string" ? info.sha : "";
  if (!isCommitHash(commit)) {
    throw new FormatError(
      listUrl.split("?")[0],
      "the listing has no 40-hex commit 'sha'",
    );
  }
  if (!Array.isArray(info.siblings)) {
    throw new FormatError(
      listUrl.split("?")[0],
      "the listing has no 'siblings' list",
    );
  }
  const siblings = (info.siblings as Sibling[]).filter((s) =>
    typeof s?.rfilename === "string"
  );
  // 2. Which files: every name whose last part we want is checked, then the
  //    top-level ones are taken.
  const picked: Sibling[] = [];
  for (const s of siblings) {
    const base = s.rfilename.split(/[\\/]/).pop() ?? "";
    if (!wanted(base) && !wanted(s.rfilename)) continue;
    if (opts.only && !opts.only.includes(s.rfilename)) continue;
    checkRepoFileName(repoId, s.rfilename);
    if (!s.rfilename.includes("/")) picked.push(s);
  }
  if (!picked.some((s) => s.rfilename === "config.json")) {
    throw new UnsupportedError(
      repoId,
      "the repo has no config.json (not a transformers model)",
    );
  }
  if (!opts.only && !picked.some((s) => s.rfilename.endsWith(".safetensors"))) {
    throw new UnsupportedError(
      repoId,
      "the repo has no *.safetensors weights (download a .gguf or convert the checkpoint first)",
    );
  }

  const paths = repoCachePaths(cacheDir, repoId);
  await Deno.mkdir(paths.blobs, { recursive: true });
  const snapshot = join(paths.snapshots, commit);
  await Deno.mkdir(snapshot, { recursive: true });
  const onProgress = opts.onProgress ?? defaultProgress();
  const retries = opts.retries ?? 5;

  // 3. Size and blob name of each file (from the listing, else a HEAD).
  const jobs: FileJob[] = [];
  for (const s of picked) {
    const fileUrl = hub.url(
      `/${repoId}/resolve/${commit}/${encodePath(s.rfilename)}`,
    );
    let etag = normalizeEtag(s.lfs?.sha256 ?? s.blobId ?? null);
    let size = s.lfs?.size ?? s.size;
    if (etag === null || typeof size !== "number") {
      const head = await headFile(hub, fileUrl, repoId, s.rfilename);
      etag ??= head.etag;
      size ??= head.size;
    }
    if (!Number.isSafeInteger(size) || (size as number) < 0) {
      throw new FormatError(
        repoId,
        `${s.rfilename}: the hub gives no valid size`,
      );
    }
    const sha = s.lfs?.sha256 && /^[0-9a-f]{64}$/.test(s.lfs.sha256)
      ? s.lfs.sha256
      : null;
    jobs.push({ name: s.rfilename, etag, size: size as number, sha256: sha });
  }

  // 4. Fetch each blob (resuming), then link it into the snapshot.
  for (let i = 0; i < jobs.length; i++) {
    const job = jobs[i];
    const progress = (bytesDone: number) =>
      onProgress({
        file: job.name,
        bytesDone,
        bytesTotal: job.size,
        index: i + 1,
        count: jobs.length,
      });
    const blob = join(paths.blobs, job.etag);
    if ((await fileSize(blob)) !== job.size) {
      const url = hub.url(
        `/${repoId}/resolve/${commit}/${encodePath(job.name)}`,
      );
      await fetchBlob(hub, url, blob, job, { repoId, retries, progress });
    } else {
      progress(job.size);
    }
    await linkIntoSnapshot(snapshot, job.name, job.etag, blob);
  }
  // 5. The ref, written last: a snapshot is reachable by name only when done.
  if (revision !== commit) {
    const refFile = join(paths.refs, revision);
    await Deno.mkdir(dirname(refFile), { recursive: true });
    await Deno.writeTextFile(refFile, commit);
  }
  return snapshot;
}

function encodePath(name: string): string {
  return name.split("/").map(encodeURIComponent).join("/");
}

async function headFile(
  hub: Hub,
  url: string,
  repoId: string,
  name: string,
): Promise<{ etag: string; size: number }> {
  // HEAD without following redirects: the hub's own answer carries the
  // X-Linked-* headers of LFS files.
  const res = await hub.fetch(url, {
    method: "HEAD",
    headers: { "Accept-Encoding": "identity" },
    follow: false,
  });
  await res.body?.cancel();
  if (res.status >= 400) throw httpError(repoId, name, res);
  const etag = normalizeEtag(
    res.headers.get("x-linked-etag") ?? res.headers.get("etag"),
  );
  const size = Number(
    res.headers.get("x-linked-size") ?? res.headers.get("content-length") ??
      NaN,
  );
  if (etag === null) {
    throw new FormatError(repoId, `${name}: the hub gives no ETag`);
  }
  return { etag, size };
}

async function fetchBlob(
  hub: Hub,
  url: string,
  blob: string,
  job: FileJob,
  ctx: { repoId: string; retries: number; progress: (n: number) => void },
): Promise<void> {
  const part = `${blob}.incomplete`;
  let lastError: unknown = null;
  for (let attempt = 0; attempt <= ctx.retries; attempt++) {
    let have = Math.max(0, await fileSize(part));
    if (have > job.size) {
      await Deno.truncate(part, 0);
      have = 0;
    }
    if (have === job.size) break;
    if (attempt > 0) {
      await new Promise((r) =>
        setTimeout(r, Math.min(2000, 100 * 2 ** attempt))
      );
    }
    const headers: Record<string, string> = { "Accept-Encoding": "identity" };
    if (have > 0) headers.Range = `bytes=${have}-`;
    let res: Response;
    try {
      res = await hub.fetch(url, { headers });
    } catch (e) {
      if (e instanceof NetworkError) {
        lastError = e;
        continue;
      }
      throw e;
    }
    if (res.status === 416) {
      await res.body?.cancel();
      await Deno.truncate(part, 0);
      continue;
    }
    if (res.status !== 200 && res.status !== 206) {
      await res.body?.cancel();
      throw httpError(ctx.repoId, job.name, res);
    }
    const linked = res.headers.get("x-linked-size");
    if (linked !== null && Number(linked) !== job.size) {
      await res.body?.cancel();
      throw new FormatError(
        ctx.repoId,
        `${job.name}: size ${linked} (X-Linked-Size) but the listing says ${job.size}`,
      );
    }
    let start = 0;
    if (res.status === 206) {
      const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(
        res.headers.get("content-range") ?? "",
      );
      if (!m || Number(m[1]) !== have) {
        await res.body?.cancel();
        await Deno.truncate(part, 0);
        lastError = new FormatError(
          ctx.repoId,
          `${job.name}: unexpected Content-Range`,
        );
        continue;
      }
      if (m[3] !== "*" && Number(m[3]) !== job.size) {
        await res.body?.cancel();
        throw new FormatError(
          ctx.repoId,
          `${job.name}: size ${
            m[3]
          } (Content-Range) but the listing says ${job.size}`,
        );
      }
      start = have;
    }
    const len = res.headers.get("content-length");
    if (len !== null && Number(len) !== job.size - start) {
      await res.body?.cancel();
      throw new FormatError(
        ctx.repoId,
        `${job.name}: Content-Length ${len} but ${
          job.size - start
        } bytes were expected`,
      );
    }
    const file = await Deno.open(part, { write: true, create: true });
    let written = start;
    try {
      await file.truncate(start);
      await file.seek(start, Deno.SeekMode.Start);
      ctx.progress(written);
      if (res.body) {
        for await (const chunk of res.body) {
          if (written + chunk.length > job.size) {
            throw new FormatError(
              ctx.repoId,
              `${job.name}: the hub sent more than ${job.size} bytes`,
            );
          }
          let off = 0;
          while (off < chunk.length) {
            off += await file.write(chunk.subarray(off));
          }
          written += chunk.length;
          ctx.progress(written);
        }
      }
    } catch (e) {
      if (e instanceof StrataError) throw e;
      lastError = e; // connection dropped: resume from what is on disk
      continue;
    } finally {
      file.close();
    }
    if (written === job.size) break;
    lastError = new NetworkError(
      `${job.name}: the connection closed after ${written} of ${job.size} bytes`,
    );
  }
  const got = await fileSize(part);
  if (got !== job.size) {
    const why = lastError instanceof Error ? `: ${lastError.message}` : "";
    throw new StrataError(
      `${ctx.repoId}: ${job.name}: download incomplete (${
        Math.max(got, 0)
      } of ${job.size} bytes) after ${
        ctx.retries + 1
      } attempts${why}; run again to resume`,
    );
  }
  if (job.sha256 !== null) {
    const sum = await sha256File(part);
    if (sum !== job.sha256) {
      await Deno.remove(part);
      throw new FormatError(
        ctx.repoId,
        `${job.name}: sha256 ${sum} does not match the hub's ${job.sha256}`,
      );
    }
  }
  await Deno.rename(part, blob);
}

async function linkIntoSnapshot(
  snapshot: string,
  name: string,
  etag: string,
  blob: string,
): Promise<void> {
  const link = join(snapshot, name);
  await Deno.mkdir(dirname(link), { recursive: true });
  try {
    await Deno.remove(link);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  try {
    await Deno.symlink(blobLinkTarget(name, etag), link);
  } catch {
    await Deno.copyFile(blob, link); // no symlinks (some Windows setups): a copy
  }
}
