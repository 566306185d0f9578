#!/usr/bin/env bash
# Issue 5's identity figure on many seeds, the way BENCHMARKS.md measures it: renders each seed's
# 8-fish side-view tank once (kept in $TANKS), replays it with built-in defaults and the known
# population, scores the `individual` column with `finprint eval`, prints one line per seed and
# the mean. Renders are reused between runs, so two builds are compared on the same videos.
#   FINPRINT_BIN=target/release/finprint scripts/identity_seeds.sh [SEED ...]
# Env: TANKS (default target/identity-tanks), OUT (default $TANKS/out), JOBS (default 2),
#      EXTRA (more `finprint replay` arguments, e.g. "--view side" for the side-view setting),
#      POPULATION (default 8; empty: an open population, each line then also giving
#      `scripts/open_population.py`'s rows and live count against the fish in view).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${FINPRINT_BIN:-target/release/finprint}
TANKS=${TANKS:-target/identity-tanks}
OUT=${OUT:-$TANKS/out}
JOBS=${JOBS:-2}
POPULATION=${POPULATION-8}
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$PWD/.venv/lib/libonnxruntime.so}
seeds=("$@")
((${#seeds[@]})) || seeds=(11 3 12 7 21 31 32 33 34 35)
mkdir -p "$TANKS" "$OUT"

one() {
  local s=$1 tank="$TANKS/s$1" out="$OUT/s$1"
  scripts/render_tank.sh "$s" "$tank" || { echo "seed $s: synth failed"; return; }
  rm -rf "$out"
  # shellcheck disable=SC2086
  "$BIN" replay --quiet ${POPULATION:+--population "$POPULATION"} --input "$tank/video.mkv" --out "$out" \
    ${EXTRA:-} 2>"$out.log" \
    || { echo "seed $s: replay failed (see $out.log)"; return; }
  local idf1 track
  idf1=$("$BIN" eval --gt "$tank/truth.csv" --pred "$out/cam0/trajectories.csv" --gate 20 \
    --id-column individual | awk '/^IDF1/ {print $2}')
  track=$("$BIN" eval --gt "$tank/truth.csv" --pred "$out/cam0/trajectories.csv" --gate 20 \
    --id-column track | awk '/^IDF1/ {print $2}')
  echo "seed $s: IDF1 individual $idf1 % track $track %$([ -n "$POPULATION" ] \
    || echo " | $(.venv/bin/python scripts/open_population.py --truth "$tank/truth.csv" --out "$out/cam0")")"
}
export -f one
export BIN TANKS OUT POPULATION
# Say which binary, built when and from which commit, made the figures: round 6 of BENCHMARKS
# compared a release binary older than the code it was taken for (round 7).
{
  echo "# $BIN ($(stat -c %y "$BIN" | cut -d. -f1)), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes'), ${EXTRA:-built-in defaults}, population ${POPULATION:-open}"
  printf '%s\n' "${seeds[@]}" | xargs -P "$JOBS" -I{} bash -c 'one {}' | sort -t' ' -k2n
} | tee "$OUT/summary.txt"
awk '/IDF1 individual/ {s += $5; t += $8; n++}
  /unmatched/ {r += $12; u += $14; e += $17; b += $19; o++}
  END {if (n) printf "mean IDF1 individual over %d seeds: %.2f %% (track %.2f %%)\n", n, s / n, t / n
    if (o) printf "mean per frame over %d seeds: rows %.3f, unmatched %.3f, count error %.3f, bias %+.3f\n",
      o, r / o, u / o, e / o, b / o}' "$OUT/summary.txt"
