#!/usr/bin/env bash
# Renders issue 5's 8-fish side-view tank of one seed into DIR (video.mkv, truth.csv, ...)
# unless DIR already holds one; the log goes to DIR.log. Shared by `scripts/identity_seeds.sh`
# and `scripts/restart_seeds.sh`, which reuse each other's renders from one $TANKS folder.
#   scripts/render_tank.sh SEED DIR   (Env: BIN, the finprint binary; default target/release/finprint)
set -euo pipefail
seed=$1 dir=$2
[[ -f "$dir/truth.csv" ]] && exit 0
"${BIN:-target/release/finprint}" synth --seed "$seed" --fish 8 --seconds 20 --width 1280 --height 720 \
  --crops-per-flank 1 --out "$dir" >/dev/null 2>"$dir.log"
