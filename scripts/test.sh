#!/usr/bin/env bash
# Set-up command 2: installs what is missing and runs every check and test:
# formatting, clippy with warnings denied, unit and end-to-end tests (the
# end-to-end tests start the real vodtask binary and run real ffmpeg).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# Builds every binary first, so the end-to-end tests find target/debug/vodtask.
cargo build --workspace
cargo nextest run --workspace --no-fail-fast
