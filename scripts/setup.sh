#!/usr/bin/env bash
# Installs everything finprint needs on a fresh Debian 12 machine, idempotently:
#   1. Debian packages (GStreamer 1.22 runtime + dev, plugins, RTSP server, systemd tools),
#   2. a Python virtual environment `.venv` (ONNX Runtime wheel = the daemon's ORT library,
#      metric cross-check tools, the training package with PyTorch/timm),
#   3. the Rust build (`cargo build --release`).
# Everything comes from the package registries (apt, PyPI, crates.io); nothing else is downloaded.
# Options (env): FINPRINT_SKIP_APT=1, FINPRINT_SKIP_TRAINING=1 (no PyTorch), FINPRINT_PROFILE=debug.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

# --- 0. Disk space -----------------------------------------------------------------------------
# A full disk fails halfway with pip's or cargo's "No space left on device" and leaves a half-made
# .venv behind. Check first what this run still has to write, per file system, and say so plainly.
# Sizes measured on a fresh Debian 12 machine (2026-12-04, README "Disk space"): Debian packages
# ~1 GB; .venv ~7.6 GB (PyPI's PyTorch wheel brings ~4.9 GB of CUDA libraries even to a CPU
# machine; PyPI has no CPU-only build); pip's downloads ~3.6 GB, purged once installed, before the
# Rust build; the Rust build ~6 GB (debug with tests) or ~1.6 GB (release; checked against 2.6 GB) in
# target/, plus ~0.5 GB of crates in ~/.cargo. FINPRINT_SKIP_DISK_CHECK=1 skips the check.
free_mb() { df -Pm "$1" 2>/dev/null | awk 'NR==2 {print $4}'; }
mount_of() { df -P "$1" 2>/dev/null | awk 'NR==2 {print $6}'; }
existing_parent() { local d=$1; while [[ ! -e "$d" ]]; do d=$(dirname "$d"); done; printf '%s' "$d"; }
if [[ "${FINPRINT_SKIP_DISK_CHECK:-0}" != 1 ]]; then
  declare -A during_install=() during_build=() why=()
  want() { # PATH MB WHAT PHASE: this run writes about MB under PATH, kept (all) or only while
    # installing Python packages (install) or from the Rust build on (build)
    local m; m=$(mount_of "$(existing_parent "$1")")
    [[ -z "$m" ]] && return 0
    [[ "$4" != build ]] && during_install[$m]=$(( ${during_install[$m]:-0} + $2 ))
    [[ "$4" != install ]] && during_build[$m]=$(( ${during_build[$m]:-0} + $2 ))
    why[$m]="${why[$m]:+${why[$m]}, }$3 ~$(( ($2 + 511) / 1024 )) GB"
  }
  if [[ "${FINPRINT_SKIP_APT:-0}" != 1 ]] && ! dpkg-query -W -f='${Status}' gstreamer1.0-libav 2>/dev/null | grep -q "install ok installed"; then
    want /usr 1024 "Debian packages" all
  fi
  if [[ ! -f .venv/.finprint-deps ]]; then
    if [[ "${FINPRINT_SKIP_TRAINING:-0}" == 1 ]]; then
      want "$PWD/.venv" 600 "Python .venv without PyTorch" all
    else
      want "$PWD/.venv" 7800 "Python .venv (PyTorch and its CUDA wheels)" all
      want "${PIP_CACHE_DIR:-$HOME/.cache/pip}" 3700 "pip downloads (freed after install)" install
    fi
  fi
  target_dir=${CARGO_TARGET_DIR:-$PWD/target}
  if [[ "${FINPRINT_PROFILE:-release}" == release ]]; then
    [[ -d "$target_dir/release" ]] || want "$target_dir" 2600 "Rust release build" build
  else
    [[ -d "$target_dir/debug" ]] || want "$target_dir" 6500 "Rust debug build with tests" build
  fi
  [[ -d "${CARGO_HOME:-$HOME/.cargo}/registry/src" ]] || want "${CARGO_HOME:-$HOME/.cargo}" 600 "crates from crates.io" build
  for m in "${!why[@]}"; do
    peak=$(( ${during_install[$m]:-0} > ${during_build[$m]:-0} ? ${during_install[$m]:-0} : ${during_build[$m]:-0} ))
    free=$(free_mb "$m")
    if [[ -n "$free" ]] && (( free < peak )); then
      log "error: not enough disk space on $m: ${free} MB free, but this setup still needs about ${peak} MB there at its peak (${why[$m]})."
      log "free space on $m (an old .venv or target/, ~/.cache/pip, unused docker images) and run scripts/setup.sh again;"
      log "FINPRINT_SKIP_TRAINING=1 leaves PyTorch out (no training/ tests); FINPRINT_SKIP_DISK_CHECK=1 skips this check."
      exit 1
    fi
  done
fi

# --- 1. Debian packages -------------------------------------------------------------------------
APT_PACKAGES=(
  build-essential pkg-config ca-certificates python3 python3-venv python3-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools gstreamer1.0-rtsp
  systemd curl
)
if [[ "${FINPRINT_SKIP_APT:-0}" != 1 ]]; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    log "Debian packages present"
  fi
fi

# --- 2. Rust toolchain --------------------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1; then
  [[ -x "$HOME/.cargo/bin/cargo" ]] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  log "error: no Rust toolchain (cargo) found. finprint needs rustc >= 1.92 (edition 2024);"
  log "install it with rustup (https://rustup.rs) and run this script again."
  exit 1
fi

# --- 3. Python environment ----------------------------------------------------------------------
PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv"
  "$PY" -m venv .venv
fi
if [[ ! -f .venv/.finprint-deps ]] || ! cmp -s <(cat requirements-dev.txt training/pyproject.toml 2>/dev/null) .venv/.finprint-deps; then
  log "installing Python packages into .venv (PyPI)"
  # PyTorch's CUDA wheels are large (cuBLAS alone ~600 MB): a dropped connection must not fail a
  # fresh machine's setup. pip resumes an interrupted download (--resume-retries) and the whole
  # install is tried again up to three times; the pip cache keeps what already arrived.
  pip_install() {
    local attempt
    for attempt in 1 2 3; do
      if .venv/bin/pip install -q --retries 10 --timeout 60 --resume-retries 20 "$@"; then
        return 0
      fi
      log "pip install $* failed (attempt $attempt of 3); retrying in 10 s"
      sleep 10
    done
    log "error: pip could not install $* from PyPI after 3 attempts; check the network and run scripts/setup.sh again"
    return 1
  }
  .venv/bin/pip install -q --retries 10 --timeout 60 --upgrade 'pip>=25.1'
  pip_install -r requirements-dev.txt
  if [[ "${FINPRINT_SKIP_TRAINING:-0}" != 1 && -f training/pyproject.toml ]]; then
    pip_install -e 'training[dev]'
  fi
  cat requirements-dev.txt training/pyproject.toml > .venv/.finprint-deps 2>/dev/null || true
  # The downloaded wheels (~3.6 GB, mostly CUDA libraries) are installed now: give the space back
  # to the Rust build.
  .venv/bin/pip cache purge -q >/dev/null 2>&1 || true
else
  log "Python packages present"
fi
ORT_LIB=$(ls .venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -n1 || true)
if [[ -z "$ORT_LIB" ]]; then
  log "error: the onnxruntime wheel did not provide libonnxruntime.so (looked in .venv/lib/python3*/site-packages/onnxruntime/capi)"
  exit 1
fi
ln -sf "$(realpath "$ORT_LIB")" .venv/lib/libonnxruntime.so
log "ONNX Runtime library: $ORT_LIB"

# --- 4. Build -----------------------------------------------------------------------------------
PROFILE=${FINPRINT_PROFILE:-release}
log "building finprint ($PROFILE)"
if [[ "$PROFILE" == release ]]; then
  cargo build --release --locked
else
  # All targets: tests and examples unify dev-dependency features, so `cargo test` reuses this build.
  cargo build --locked --all-targets
fi
log "done: binary at target/$PROFILE/finprint"
