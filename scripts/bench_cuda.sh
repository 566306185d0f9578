#!/usr/bin/env bash
# Embedding throughput on a CUDA GPU host (issue 5), run there by the device tool after
# ../shared/gpu/README.md's parts are assembled (ORT_DYLIB_PATH and LD_LIBRARY_PATH set).
#
# The GPU host has no GStreamer, so this runs the `bench_embed` example built here, not the
# daemon: the same `Embedder` (card, preprocessing, session, EP registration) the daemon uses.
#   here:  (with /.gpu/ in .git/info/exclude) cargo build --release --example bench_embed
#          strip -o .gpu/bench/bench_embed target/release/examples/bench_embed && xz -6 .gpu/bench/bench_embed
#   there: bash scripts/bench_cuda.sh .gpu/bench/bench_embed.xz
# Prints the GPU, ONNX Runtime's node assignment per run, and raw ORT against finprint's full
# path (preprocessing on the CPU) at batch 1, 32 and 128; then the host's CPU for comparison.
# A run whose assignment is not CUDAExecutionProvider is reported as a fallback, not a CUDA figure.
set -uo pipefail
cd "$(dirname "$0")/.."
packed=${1:?usage: bench_cuda.sh BENCH_EMBED[.xz]}
bin=$packed
if [[ "$packed" == *.xz ]]; then
  bin=$(mktemp -d)/bench_embed
  xz -dc "$packed" > "$bin" && chmod +x "$bin"
fi
model=${MODEL:-models/finprint-default.onnx}
out=${OUT:-/tmp}
echo "== host"
date -u
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo "nvidia-smi failed"
echo "cpus: $(nproc); ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-unset}"
missing=$(ldd "$bin" | grep 'not found' || true)
[[ -n "$missing" ]] && { echo "error: $bin misses libraries: $missing"; exit 1; }

run() {
  local name=$1; shift
  echo "== $name: $*"
  timeout 120 "$bin" --model "$model" "$@" 2>&1 | tee "$out/$name.txt"
  local rc=${PIPESTATUS[0]}
  if [[ $rc -ne 0 ]]; then echo "$name: exit $rc"; return; fi
  if [[ "$*" == *"--provider cuda"* ]] && ! grep -q '("CUDAExecutionProvider", [1-9]' "$out/$name.txt"; then
    echo "$name: FALLBACK (not on CUDA) - not a CUDA figure"
  fi
}
run cuda_b128 --provider cuda --batch 128 --crops 16384 --rounds 5
run cuda_b32 --provider cuda --batch 32 --crops 8192 --rounds 5
run cuda_b1 --provider cuda --batch 1 --crops 2048 --rounds 3
run cuda_b128_crop --provider cuda --batch 128 --crops 16384 --rounds 3 --crop 160x56
run cpu_all_b32 --provider cpu --threads "$(nproc)" --batch 32 --crops 4096 --rounds 3
run cpu_1t_b32 --provider cpu --threads 1 --batch 32 --crops 1024 --rounds 3
echo "== summary"
grep -H RESULT "$out"/*.txt
