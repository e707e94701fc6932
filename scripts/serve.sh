#!/usr/bin/env bash
# Set-up command 1: installs what is missing, builds vodtask in release mode
# and starts it on the embedded SQLite store in ./vodtask-data.
# Extra arguments go to `vodtask serve` (see `vodtask serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release -p vodtask-server
exec target/release/vodtask serve "$@"
