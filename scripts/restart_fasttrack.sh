#!/usr/bin/env bash
# Issue 5's restart figure on the real top-view recording ../shared/data/fasttrack-zebrafish14
# (BENCHMARKS.md round 24): `finprint run` (population 14) on its frames once without a restart
# and once restarted at frame HALF (the frames after it appear only for the second run, which
# resumes the first's output folder), scored by `scripts/restart_score.py` against the
# recording's ground truth, plus `finprint eval`'s identity IDF1 of both outputs.
#   FINPRINT_BIN=target/release/finprint scripts/restart_fasttrack.sh [HALF ...]   (default 60 100 140;
#   BENCHMARKS.md round 25 uses 50 60 … 160); the last line sums the restart frames.
# Env: OUT (default target/restart-fasttrack), DATA (default ../shared/data/fasttrack-zebrafish14).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${FINPRINT_BIN:-target/release/finprint}
DATA=$(realpath "${DATA:-../shared/data/fasttrack-zebrafish14}")
OUT=$(realpath -m "${OUT:-target/restart-fasttrack}")
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$PWD/.venv/lib/libonnxruntime.so}
halves=("$@")
((${#halves[@]})) || halves=(60 100 140)
mkdir -p "$OUT"
# Ground truth in the simulator's truth.csv columns, which restart_score.py reads.
.venv/bin/python - "$DATA/tracking.txt" "$OUT/truth.csv" <<'PY'
import sys
import pandas as pd
t = pd.read_csv(sys.argv[1], sep="\t")
pd.DataFrame({"frame": t.imageNumber, "individual": "f" + t.id.astype(str), "x": t.xBody, "y": t.yBody,
              "x0": t.xBody - 5, "y0": t.yBody - 5, "x1": t.xBody + 5, "y1": t.yBody + 5,
              "visible_fraction": 1.0}).to_csv(sys.argv[2], index=False)
PY
config() { # NAME FRAMES_DIR [STOP]
  cat > "$dir/$1.toml" <<EOT
[[cameras]]
name = "tank"
population = 14
[cameras.source]
kind = "image_sequence"
pattern = "$2/frame_%06d.pgm"
start_index = 1
${3:+stop_index = $3}
framerate = 25

[identity]
state_dir = "$dir/state-$1"

[output]
dir = "$dir/out-$1"
rotate = "never"

[http]
enabled = false
EOT
}
idf1() { "$BIN" eval --gt "$DATA/tracking.txt" --pred "$1" --gate 10 --id-column individual | awk '/^IDF1/ {print $2}'; }
echo "# $BIN ($(stat -c %y "$BIN" | cut -d. -f1)), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes')"
rm -f "$OUT/scores.txt"
for half in "${halves[@]}"; do
  dir="$OUT/h$half"
  rm -rf "$dir"
  mkdir -p "$dir/growing"
  config whole "$DATA/frames" 200
  "$BIN" run --log warn --config "$dir/whole.toml" 2>"$dir/whole.log" || { echo "whole run failed (see $dir/whole.log)"; exit 1; }
  config resumed "$dir/growing"
  for ((i = 1; i <= 200; i++)); do
    ((i == half + 1)) && { "$BIN" run --log warn --config "$dir/resumed.toml" 2>"$dir/before.log" \
      || { echo "first run failed (see $dir/before.log)"; exit 1; }; }
    ln -s "$DATA/frames/$(printf frame_%06d.pgm "$i")" "$dir/growing/"
  done
  "$BIN" run --log info --config "$dir/resumed.toml" 2>"$dir/after.log" || { echo "resumed run failed (see $dir/after.log)"; exit 1; }
  grep -qE "continuing after it|continuing where it stopped" "$dir/after.log" || echo "restart at $half: the second run did not resume"
  for run in before after; do mkdir -p "$dir/out-$run/tank"; done
  awk -F, -v h="$half" -v d="$dir" 'NR == 1 {print > (d "/out-before/tank/trajectories.csv");
    print > (d "/out-after/tank/trajectories.csv"); next}
    {print > (d "/out-" ($1 < h ? "before" : "after") "/tank/trajectories.csv")}' \
    "$dir/out-resumed/tank/trajectories.csv"
  score=$(.venv/bin/python scripts/restart_score.py --truth "$OUT/truth.csv" --runs "$dir" --half "$half")
  echo "restart at frame $half: $score; identity IDF1 restarted $(idf1 "$dir/out-resumed/tank/trajectories.csv") %, uninterrupted $(idf1 "$dir/out-whole/tank/trajectories.csv") %"
  echo "$score" >>"$OUT/scores.txt"
done
# Sum over the restart frames ("kept K / N; agree A / M; uninterrupted U / V; same S / T" per line).
tr -d ';' <"$OUT/scores.txt" | awk '{k += $2; n += $4; a += $6; m += $8; u += $10; v += $12; s += $14; w += $16}
  END {printf "all: kept %d / %d = %.4f; agree %d / %d = %.4f; uninterrupted %d / %d = %.4f; same %d / %d = %.4f\n",
       k, n, k / n, a, m, a / m, u, v, u / v, s, w, s / w}'
rm -f "$OUT/scores.txt"
