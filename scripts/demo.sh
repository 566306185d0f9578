#!/usr/bin/env bash
# The demo: installs everything (scripts/setup.sh), renders a simulated side-view tank with 8
# striped zebrafish and full ground truth, runs the daemon on it as if it were a camera while
# printing the live counts, then scores the daemon's trajectories against the truth.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -n "${FINPRINT_BIN:-}" ]] || scripts/setup.sh
export ORT_DYLIB_PATH="$PWD/.venv/lib/libonnxruntime.so"
BIN=${FINPRINT_BIN:-target/release/finprint}
rm -rf demo-out && mkdir -p demo-out

echo "== rendering the demo tank (finprint synth)"
$BIN synth --out demo-out/tank --seed 7 --fish 8 --seconds 20 --fps 25 --width 1280 --height 720

echo "== running the daemon on it (finprint run --config configs/demo.toml)"
$BIN run --config configs/demo.toml &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do
  sleep 1
  kill -0 $pid 2>/dev/null || break
  counts=$(curl -s http://127.0.0.1:9464/api/v1/counts || true)
  [[ -n "$counts" ]] && echo "live counts: $counts"
done
wait $pid
trap - EXIT

echo "== outputs"
ls -l demo-out/run/demo/
echo "== score against the simulator's ground truth (finprint eval): tracks"
$BIN eval --gt demo-out/tank/truth.csv --pred demo-out/run/demo/trajectories.csv --gate 20
echo "== identities (the individual column; issue 5's figure)"
$BIN eval --gt demo-out/tank/truth.csv --pred demo-out/run/demo/trajectories.csv --gate 20 \
  --id-column individual | grep -E '^(IDF1|IDP|IDR|pred objects)'
echo "== interaction events found: $(($(wc -l < demo-out/run/demo/interactions.csv) - 1)) (truth: $(($(wc -l < demo-out/tank/interactions.csv) - 1)))"
