#!/usr/bin/env bash
# Measures both kernel families (lib/gpu/family.ts) on this machine's WebGPU adapter and writes one JSON result.
# Meant for a real GPU (NVIDIA, AMD, Intel, Apple); on lavapipe it runs too, slowly (a correctness device, not a
# speed proxy). What to compare: docs/kernels.md, "Measuring on a real GPU".
#
#   tools/gpu_bench.sh [OUT.json] [--quick]
#
# Steps (each step's exit code and wall time go into the JSON; a failed step does not stop the others):
#   1. tests:   deno test -A tests/gpu/ under STRATA_KERNELS=gpu (proves the GPU family on this device, including
#               the subgroupAdd variant where the adapter has `subgroups`);
#   2. kernels: bench --kernels --json --families gpu,cpu (one copy roofline, every matvec / prefill config in
#               both families, each entry with its family and variant);
#   3. engine:  deno task bench under STRATA_KERNELS=gpu and STRATA_KERNELS=cpu (decode tokens/s, streaming floor;
#               the engine bench prints text, kept verbatim).
# --quick: bench --kernels --quick and 4 engine tokens. Environment: STEPS (default "tests kernels engine_gpu
# engine_cpu") picks steps; DTYPES (e.g. f16,q4) limits bench --kernels to those encodings.
set -uo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
OUT="${1:-gpu_bench.json}"
QUICK=()
ENGINE=()
if [[ "${2:-}" == "--quick" || "${1:-}" == "--quick" ]]; then
  [[ "${1:-}" == "--quick" ]] && OUT="gpu_bench.json"
  QUICK=(--quick)
  ENGINE=(--tokens 4)
fi
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

step() { # name, command...
  local name="$1"; shift
  local t0=$SECONDS
  "$@" >"$TMP/$name.out" 2>"$TMP/$name.err"
  echo $? >"$TMP/$name.rc"
  echo $((SECONDS - t0)) >"$TMP/$name.s"
  echo "gpu_bench: $name rc=$(cat "$TMP/$name.rc") in $(cat "$TMP/$name.s")s" >&2
}

STEPS="${STEPS:-tests kernels engine_gpu engine_cpu}"
DT=()
[[ -n "${DTYPES:-}" ]] && DT=(--dtypes "$DTYPES")
for s in $STEPS; do
  case "$s" in
    tests) step tests env STRATA_KERNELS=gpu deno test -A tests/gpu/ ;;
    kernels) step kernels deno run -A cli.ts bench --kernels --json --families gpu,cpu "${QUICK[@]}" "${DT[@]}" ;;
    engine_gpu) step engine_gpu env STRATA_KERNELS=gpu deno task bench "${ENGINE[@]}" ;;
    engine_cpu) step engine_cpu env STRATA_KERNELS=cpu deno task bench "${ENGINE[@]}" ;;
    *) echo "gpu_bench: unknown step $s (tests, kernels, engine_gpu, engine_cpu)" >&2; exit 2 ;;
  esac
done

deno eval --ext=ts "
const dir = '$TMP';
const read = (f: string) => { try { return Deno.readTextFileSync(dir + '/' + f); } catch { return ''; } };
const step = (n: string) => read(n + '.rc') === '' ? { ran: false } : { ran: true, rc: Number(read(n + '.rc')), seconds: Number(read(n + '.s')) };
let kernels: unknown = null;
try { kernels = JSON.parse(read('kernels.out')); } catch { kernels = { error: read('kernels.err').slice(-4000) }; }
const result = {
  date: new Date().toISOString(),
  deno: Deno.version.deno,
  tests: { ...step('tests'), tail: (read('tests.out') + read('tests.err')).slice(-3000) },
  kernels: { ...step('kernels'), report: kernels },
  engine: {
    gpu: { ...step('engine_gpu'), output: read('engine_gpu.out'), stderr_tail: read('engine_gpu.err').slice(-2000) },
    cpu: { ...step('engine_cpu'), output: read('engine_cpu.out'), stderr_tail: read('engine_cpu.err').slice(-2000) },
  },
};
Deno.writeTextFileSync('$OUT', JSON.stringify(result, null, 2) + '\n');
console.error('gpu_bench: wrote $OUT');
"
