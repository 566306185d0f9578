#!/usr/bin/env bash
# Issue 5's restart figure on 8-fish tanks, the way BENCHMARKS.md (rounds 22, 23) measures it:
# for each seed, renders the 8-fish side-view tank of `scripts/identity_seeds.sh` (or reuses it
# from $TANKS), cuts it into frames, runs `finprint run` on the first half and then again (a
# restart) with the same identity state folder, and once on the whole recording with a fresh
# one; `scripts/restart_score.py` scores each tank and the last line sums them.
#   FINPRINT_BIN=target/release/finprint scripts/restart_seeds.sh [SEED ...]
# Env: TANKS (default target/identity-tanks), OUT (default $TANKS/restart), HALF (default 300:
#      the first frame after the restart), FLOW: `resume` (default: one source whose frames
#      after HALF appear only for the second run, as in a recording that grows; the second run
#      resumes it from the output folder's checkpoint), `halves` (round 22: each run its own
#      source of one half, outputs apart: a second recording started with the saved state) or
#      `crash` (round 28: the first run has the whole recording, checkpoints every second, and
#      is killed with SIGKILL once its checkpoint reaches frame HALF; the second run resumes
#      from that checkpoint, whose frame is then the restart frame scored).
#      POPULATION (default 8; empty: an open population, BENCHMARKS.md round 27).
#      Needs gst-launch-1.0 (GStreamer tools).
set -euo pipefail
cd "$(dirname "$0")/.."
export BIN=${FINPRINT_BIN:-target/release/finprint}
TANKS=${TANKS:-target/identity-tanks}
OUT=${OUT:-$TANKS/restart}
HALF=${HALF:-300}
FLOW=${FLOW:-resume}
POPULATION=${POPULATION-8}
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$PWD/.venv/lib/libonnxruntime.so}
mkdir -p "$OUT"
seeds=("$@")
((${#seeds[@]})) || seeds=(3 7 11 21 51)

config() { # NAME START STOP STATE_DIR [FRAMES OUT]: STOP "" reads to the first missing file
  cat > "$dir/$1.toml" <<EOT
[[cameras]]
name = "tank"
${POPULATION:+population = $POPULATION}
[cameras.source]
kind = "image_sequence"
pattern = "$dir/${5:-frames}/frame_%06d.jpg"
start_index = $2
${3:+stop_index = $3}
framerate = 30

[identity]
state_dir = "$4"

[output]
dir = "$dir/${6:-out-$1}"
rotate = "never"
${CHECKPOINT_S:+checkpoint_interval_s = $CHECKPOINT_S}
${CHECKPOINT_S:+flush_interval_s = 0.2}

[http]
enabled = false
EOT
}

echo "# $BIN ($(stat -c %y "$BIN" | cut -d. -f1)), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes'), $FLOW flow, restart at frame $HALF" | tee "$OUT.summary.txt"
for s in "${seeds[@]}"; do
  tank="$TANKS/s$s" dir="$(realpath -m "$OUT/s$s")"
  mkdir -p "$TANKS"
  scripts/render_tank.sh "$s" "$tank"
  rm -rf "$dir"
  mkdir -p "$dir/frames"
  gst-launch-1.0 -q filesrc location="$tank/video.mkv" ! decodebin ! videoconvert ! jpegenc quality=95 \
    ! multifilesink location="$dir/frames/frame_%06d.jpg"
  last=$(( $(find "$dir/frames" -name 'frame_*.jpg' | wc -l) - 1 ))
  config whole 0 "$last" "$dir/state-whole"
  "$BIN" run --log warn --config "$dir/whole.toml" 2>"$dir/whole.log" \
    || { echo "seed $s: whole failed (see $dir/whole.log)"; continue; }
  if [ "$FLOW" = halves ]; then
    config before 0 $((HALF - 1)) "$dir/state"
    config after "$HALF" "$last" "$dir/state"
    for run in before after; do
      "$BIN" run --log warn --config "$dir/$run.toml" 2>"$dir/$run.log" \
        || { echo "seed $s: $run failed (see $dir/$run.log)"; continue 2; }
    done
  elif [ "$FLOW" = crash ]; then
    CHECKPOINT_S=1 config resumed 0 "$last" "$dir/state" frames out-resumed
    cp_frame() { .venv/bin/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["next_frame"])' "$dir/out-resumed/tank/checkpoint.json" 2>/dev/null || echo 0; }
    "$BIN" run --log warn --config "$dir/resumed.toml" 2>"$dir/before.log" &
    pid=$!
    while kill -0 "$pid" 2>/dev/null && (( $(cp_frame) < HALF )); do sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || echo "seed $s: the first run ended before frame $HALF"
    wait "$pid" 2>/dev/null || true
    half=$(cp_frame)
    "$BIN" run --log info --config "$dir/resumed.toml" 2>"$dir/after.log" \
      || { echo "seed $s: resumed run failed (see $dir/after.log)"; continue; }
    grep -qE "continuing after it" "$dir/after.log" || echo "seed $s: the second run did not resume"
  else
    mkdir -p "$dir/growing"
    config resumed 0 "" "$dir/state" growing out-resumed
    grow() { # FROM TO: the frames [FROM, TO] appear
      for ((i = $1; i <= $2; i++)); do
        ln "$dir/frames/$(printf frame_%06d.jpg "$i")" "$dir/growing/"
      done
    }
    grow 0 $((HALF - 1))
    if ! "$BIN" run --log warn --config "$dir/resumed.toml" 2>"$dir/before.log"; then
      echo "seed $s: first run failed (see $dir/before.log)"
      continue
    fi
    grow "$HALF" "$last"
    "$BIN" run --log info --config "$dir/resumed.toml" 2>"$dir/after.log" \
      || { echo "seed $s: resumed run failed (see $dir/after.log)"; continue; }
    grep -qE "continuing after it|continuing where it stopped" "$dir/after.log" || echo "seed $s: the second run did not resume"
    # Split the one output at the restart, as the score reads it.
    for run in before after; do mkdir -p "$dir/out-$run/tank"; done
    awk -F, -v h="$HALF" -v d="$dir" 'NR == 1 {print > (d "/out-before/tank/trajectories.csv");
      print > (d "/out-after/tank/trajectories.csv"); next}
      {print > (d "/out-" ($1 < h ? "before" : "after") "/tank/trajectories.csv")}' \
      "$dir/out-resumed/tank/trajectories.csv"
    rm -rf "$dir/growing"
  fi
  if [ "$FLOW" = crash ]; then
    for run in before after; do mkdir -p "$dir/out-$run/tank"; done
    awk -F, -v h="$half" -v d="$dir" 'NR == 1 {print > (d "/out-before/tank/trajectories.csv");
      print > (d "/out-after/tank/trajectories.csv"); next}
      {print > (d "/out-" ($1 < h ? "before" : "after") "/tank/trajectories.csv")}' \
      "$dir/out-resumed/tank/trajectories.csv"
  fi
  echo "seed $s: $(.venv/bin/python scripts/restart_score.py --truth "$tank/truth.csv" --runs "$dir" --half "${half:-$HALF}")${half:+ (killed; resumed at frame $half)}"
  rm -rf "$dir/frames"
done | tee -a "$OUT.summary.txt"
awk '/^seed .*kept/ {k += $4; kn += $6; a += $8; an += $10; u += $12; un += $14; s += $16; sn += $18}
  END {if (kn) printf "all: kept %d / %d = %.4f; agree %d / %d = %.4f; uninterrupted %d / %d = %.4f; same %d / %d = %.4f\n",
    k, kn, k / kn, a, an, a / an, u, un, u / un, s, sn, s / sn}' "$OUT.summary.txt"
