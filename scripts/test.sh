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
# The task-type, task and media suites once more with every server's media
# in a real S3-compatible server (moto), instead of its data dir (selected
# from the workspace build above, so that nothing is built again).
VODTASK_TEST_STORAGE=s3 cargo nextest run --workspace --no-fail-fast \
  -E 'package(vodtask-e2e) & (binary(task_types) | binary(tasks) | binary(media))'
# The task, event, callback and media suites once more with every
# server's state in a PostgreSQL database of its own (on the local server,
# or the one VODTASK_TEST_POSTGRES names) instead of SQLite; `--sync
# normal` is SQLite's only. (The store conformance suite ran on both above.)
VODTASK_TEST_DATABASE=postgres cargo nextest run --workspace --no-fail-fast \
  -E 'package(vodtask-e2e) & (binary(tasks) | binary(events) | binary(callbacks) | binary(media)) & not test(/sync_normal/)'

# Fuzz smoke run: every cargo-fuzz target (fuzz/) for 15 s, built with the
# dev profile to keep CI short (fuzz/run.sh installs cargo-fuzz if missing;
# it needs the nightly toolchain). Strict: an INTERNAL answer or a number
# that does not read back exactly is a finding too.
VODTASK_FUZZ_DEV=1 VODTASK_FUZZ_STRICT=1 VODTASK_FUZZ_EXACT_FLOATS=1 bash fuzz/run.sh 15

# The Node package, installed the way an app installs it (`npm install
# <checkout>/bindings/node`, whose install script builds the addon) into a
# temporary project, then its tests (node --test) run there against that
# install. Debug profile, to keep CI short (napi builds with an explicit
# --target, into target/<triple>/debug, beside the workspace build above).
repo=$PWD
node_app=$(mktemp -d)
trap 'rm -rf "$node_app"' EXIT
(
  cd "$node_app"
  npm init -y >/dev/null
  VODTASK_NODE_PROFILE=debug npm install --no-audit --no-fund "$repo/bindings/node"
  node --test "$repo"/bindings/node/test/*.test.mjs
)

# The Python package, installed the way an app installs it (`pip install
# ./bindings/python`, maturin as the build backend) into a virtualenv under
# target/ that also sees the test tools of install-deps.sh; then its tests
# (pytest, against the binary built above and in process) and mypy --strict
# on them. Debug profile: reuses the workspace build above.
python_venv=target/python-venv
if [ ! -x "$python_venv/bin/python" ]; then
  python3 -m venv --system-site-packages "$python_venv"
fi
MATURIN_PEP517_ARGS="--profile dev" "$python_venv/bin/python" -m pip install -q \
  --disable-pip-version-check --force-reinstall --no-deps ./bindings/python
(
  cd bindings/python
  "../../$python_venv/bin/python" -m pytest -q
  "../../$python_venv/bin/python" -m mypy --strict tests ../../examples/python/quickstart.py ../../examples/python/transcode_app.py
)

# The wheel is abi3 (one binary for CPython 3.9+): the same wheel, installed
# into the oldest and the newest CPython this machine has beside 3.11 (pyenv
# keeps them under ~/.pyenv/versions), passes the same tests.
wheel_dir=target/python-wheel
rm -rf "$wheel_dir"
MATURIN_PEP517_ARGS="--profile dev" "$python_venv/bin/python" -m pip wheel -q \
  --disable-pip-version-check --no-deps -w "$wheel_dir" ./bindings/python
for minor in 3.9 3.13; do
  interpreter=$(ls -d "$HOME"/.pyenv/versions/"$minor".*/bin/python"$minor" 2>/dev/null | tail -1)
  if [ -z "$interpreter" ]; then
    echo "CPython $minor is not installed here: the abi3 wheel is tested on 3.11 only" >&2
    continue
  fi
  venv=target/python-venv-$minor
  [ -x "$venv/bin/python" ] || "$interpreter" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    pytest pytest-asyncio standardwebhooks
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps \
    "$wheel_dir"/vodtask-*-abi3-*.whl
  (cd bindings/python && "../../$venv/bin/python" -m pytest -q)
done
