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
