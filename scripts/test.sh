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
# The Redis broker suites and the Django Channels benchmark peer start their
# own redis-server processes; the Cluster fixture builds with redis-cli.
{ command -v redis-server && command -v redis-cli; } >/dev/null 2>&1 || apt_install redis-server redis-tools

# The PostgreSQL suites use the local server (a fresh database per run). Start
# it when it is installed but stopped; if none answers, those suites fail under
# CI=true and skip otherwise.
if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    step "starting the local PostgreSQL server"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
fi

step "building herald"
cargo build --workspace --all-targets --locked
export HERALD_BIN="$root/target/debug/herald"

logs="$root/target/test-logs"
mkdir -p "$logs"

step "Rust tests"
cargo test --workspace --locked 2>&1 | tee "$logs/rust.log"

step "Node suite (published centrifuge SDK)"
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error && npm test) 2>&1 | tee "$logs/node.log"

step "Python suite (published centrifuge-python and cent)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
.venv/bin/python -m pytest tests/python -q 2>&1 | tee "$logs/python.log"

step "Benchmark suite, small scale (checks it runs and reports; no speed threshold)"
cargo run --release --locked -p herald-bench -- suite --scale small --no-doc

step "Scale-out benchmark, smoke scale (1, 2 and 3 nodes on Redis; fails on any lost or reordered delivery)"
cargo run --release --locked -p herald-bench -- nodes --scale smoke --no-doc

# One closing line for all suites (set -e has already stopped on any failure).
rust=$(grep -E '^test result: ok' "$logs/rust.log" | awk '{sum += $4} END {print sum + 0}')
node=$(grep -E '^# pass ' "$logs/node.log" | awk '{print $3}')
python=$(grep -Eo '[0-9]+ passed' "$logs/python.log" | tail -1 | awk '{print $1}')
printf '\nRust %s, Node %s, Python %s\n' "$rust" "$node" "$python"
echo "tests: $((rust + node + python)) passed, 0 failed"
