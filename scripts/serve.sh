#!/usr/bin/env bash
# Set-up command 1: installs what serving needs if missing (ffmpeg, and
# grpcurl for the README's session), builds vodtask in release mode and
# starts it on the embedded SQLite store in ./vodtask-data.
# Extra arguments go to `vodtask serve` (see `vodtask serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --serve
# cargo run finds the binary wherever CARGO_TARGET_DIR puts it.
exec cargo run --release -p vodtask-server --bin vodtask -- serve "$@"
