#!/usr/bin/env bash
# Trains the shipped encoder (models/finprint-default.*) from scratch, the way BENCHMARKS.md
# round 14 did: on the daemon's own crops of simulated tanks plus the simulator's clean crops.
#   1. renders 18 side-view tanks of 8 fish (seeds 101-118, never used by tests or benchmarks:
#      those use seeds 1-60), 20 s at 1280x720, as scripts/identity_seeds.sh does;
#   2. replays each with every eligible crop embedded (`budget_per_s = 600`, above 8 fish x
#      30 fps, so the crops do not depend on the encoder in use) and writes the crops
#      (`--crops-out`);
#   3. labels them through the truth (scripts/daemon_crops.py: broadside, >= 0.9 visible, no
#      other fish's box overlapping), tanks 101-116 for training, 117-118 as the open set;
#   4. adds the training individuals of the clean data set of seed 1 (`finprint synth
#      --dataset`, with their stripe masks for the inpainting task);
#   5. trains ResNet-10t with patch inpainting (finprint-train fit, 12 epochs, 2 threads: about
#      22 min on the 2-core reference machine) and, with EXPORT=1, exports it to models/.
# Env: WORK (default target/train-default), FINPRINT_BIN (default target/release/finprint),
#      EXPORT (1: write models/finprint-default.*; default 0).
# A developer tool; the daemon and the tests never run it.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${FINPRINT_BIN:-target/release/finprint}
WORK=${WORK:-target/train-default}
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$PWD/.venv/lib/libonnxruntime.so}
mkdir -p "$WORK/tanks"
printf '[identity]\nbudget_per_s = 600\n' >"$WORK/crops.toml"

one() {
  local s=$1 tank="$WORK/tanks/s$1"
  if [[ ! -f "$tank/truth.csv" ]]; then
    "$BIN" synth --seed "$s" --fish 8 --seconds 20 --width 1280 --height 720 \
      --crops-per-flank 1 --out "$tank" >/dev/null 2>"$tank.log"
  fi
  if [[ ! -f "$tank/out/cam0/trajectories.csv" ]]; then
    rm -rf "$tank/out" "$tank/crops"
    "$BIN" replay --quiet --population 8 --config "$WORK/crops.toml" --input "$tank/video.mkv" \
      --out "$tank/out" --crops-out "$tank/crops" >/dev/null 2>>"$tank.log"
  fi
  echo "tank $s: $(find "$tank/crops" -name '*.png' | wc -l) crops"
}
export -f one
export BIN WORK
seq 101 118 | xargs -P 2 -I{} bash -c 'one {}'

clean="$WORK/data-s1"
[[ -f "$clean/dataset.json" ]] ||
  "$BIN" synth --dataset "$clean" --seed 1 --individuals 40 --dataset-crops-per-flank 40 >/dev/null
data="$WORK/data"
rm -rf "$data"
args=()
for s in $(seq 101 116); do args+=(--tank "$WORK/tanks/s$s"); done
.venv/bin/python scripts/daemon_crops.py --out "$data" "${args[@]}" \
  --test "$WORK/tanks/s117" --test "$WORK/tanks/s118"
for d in "$clean"/train/*; do cp -r "$d" "$data/train/s1-$(basename "$d")"; done
echo "training individuals: $(ls "$data/train" | wc -l), open-set individuals: $(ls "$data/test" | wc -l)"
# What the data set is (copied into the model card by finprint-train fit).
.venv/bin/python - "$data" <<'PY'
import json, pathlib, sys
root = pathlib.Path(sys.argv[1])
splits = {s.name: sorted(d.name for d in s.iterdir() if d.is_dir()) for s in root.iterdir() if s.is_dir()}
json.dump({
    "format": "finprint-daemon-crops/1",
    "sources": "the daemon's encoder crops (finprint replay --crops-out) of finprint synth side-view tanks "
               "of 8 fish, seeds 101-116 (train) and 117-118 (test), 1280x720, 20 s, default difficulty, "
               "labelled through truth.csv by scripts/daemon_crops.py; plus the train individuals of "
               "finprint synth --dataset --seed 1 --individuals 40 (s1-*, with stripe masks)",
    "files": "{split}/{tank}-{individual}/{flank}_{nnnn}.png (daemon crops, no masks: Otsu body) and "
             "{split}/s1-{individual}/{flank}_{nnnn}.png + .mask.png",
    "geometry": "the daemon's crops: body axis horizontal by the smaller rotation (never mirrored), "
                "box length = body length x 1.3, height = length / 3, at the model input size",
    "flanks": ["L", "R"],
    "splits": splits,
}, open(root / "dataset.json", "w"), indent=2)
PY

.venv/bin/finprint-train fit --data "$data" --out "$WORK/run" --backbone resnet10t --lam 1 \
  --mask-recipe patches --mask-ratio 0.3 --img-size 32x96 --batch-size 32 --epochs 12 \
  --max-per-key 48 --threads 2 --seed 0
if [[ "${EXPORT:-0}" == 1 ]]; then
  .venv/bin/finprint-train export "$WORK/run" --out models --name finprint-default
fi
