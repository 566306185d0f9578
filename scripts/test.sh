#!/usr/bin/env bash
# Sets up a fresh machine (scripts/setup.sh, debug build) and runs every test:
# Python lint + tests of the training package, then the Rust unit and integration tests.
# Integration tests use the real recording in ../shared/data (read-only) and loopback-only servers.
set -euo pipefail
cd "$(dirname "$0")/.."
FINPRINT_PROFILE=debug scripts/setup.sh
export ORT_DYLIB_PATH="$PWD/.venv/lib/libonnxruntime.so"
export PATH="$HOME/.cargo/bin:$PATH"

echo "== ruff (training/, scripts/)"
.venv/bin/ruff check training
.venv/bin/ruff check --config training/pyproject.toml scripts
echo "== pytest (training/)"
.venv/bin/pytest -q training/tests
echo "== cargo test"
cargo test --locked -- --test-threads=2
