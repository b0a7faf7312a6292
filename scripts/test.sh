#!/usr/bin/env bash
# Runs every test: Rust unit and integration tests, then the suites that drive
# Herald with the published client SDKs (Node `centrifuge`, Python
# `centrifuge-python` and `cent`). Installs what those need into project-local
# folders (tests/node/node_modules, .venv) and nothing by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n==> %s\n' "$*"; }

apt_install() {
  # Installs Debian packages only when a needed binary is missing.
  if command -v apt-get >/dev/null 2>&1; then
    step "installing $* (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "error: $* missing and apt-get is not available" >&2
    exit 1
  fi
}

command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || apt_install nodejs npm
command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
# The benchmark smoke run starts its own redis-server for the Django Channels peer.
command -v redis-server >/dev/null 2>&1 || apt_install redis-server

step "building herald"
cargo build --workspace --all-targets --locked
export HERALD_BIN="$root/target/debug/herald"

step "Rust tests"
cargo test --workspace --locked

step "Node suite (published centrifuge SDK)"
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error && npm test)

step "Python suite (published centrifuge-python and cent)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
.venv/bin/python -m pytest tests/python -q

step "Benchmark smoke run (checks the suite runs and reports; no speed threshold)"
cargo run --release --locked -p herald-bench -- suite --scale small --no-doc
