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

# --- fuzz/: every cargo-fuzz target briefly, awaited before the benchmarks ----
# The nightly fuzz build (several minutes) overlaps the suites that wait on
# I/O more than on the CPU; the long runs are `scripts/fuzz.sh SECONDS` by hand.
if cargo +nightly --version >/dev/null 2>&1; then
  step "Fuzz targets, 20 s each, in the background (cargo fuzz on nightly; log: target/test-logs/fuzz.log)"
  ./scripts/fuzz.sh 20 >"$logs/fuzz.log" 2>&1 &
  fuzz_pid=$!
else
  step "Fuzz targets skipped: no nightly toolchain (rustup toolchain install nightly)"
  fuzz_pid=""
fi

step "Node suite (published centrifuge SDK)"
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error && npm test) 2>&1 | tee "$logs/node.log"

# --- clients/js: the TypeScript helpers (herald-client) -------------------
# Installs from its package-lock, builds with tsc and runs its node:test suite
# against the herald binary built above ($HERALD_BIN).
step "clients/js suite (TypeScript helpers on the published centrifuge SDK)"
(cd clients/js && npm ci --no-audit --no-fund --loglevel=error && npm run build && npm test) 2>&1 | tee "$logs/clients-js.log"
clients_js=$(grep -E '^# pass ' "$logs/clients-js.log" | awk '{print $3}')
# --- end clients/js --------------------------------------------------------

# --- tests/browser: the demo (/) and the admin page (/admin) in chromium ------
# Drives Debian's chromium (installed with apt-get when missing) through
# playwright-core, which downloads no browser; every test file starts
# $HERALD_BIN on dev defaults itself. Saves its screenshots under docs/img/.
step "Browser suite (demo and admin pages in chromium, playwright-core)"
[ -x /usr/bin/chromium ] || apt_install chromium
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error && npm test) 2>&1 | tee "$logs/browser.log"
browser=$(grep -E '^# pass ' "$logs/browser.log" | awk '{print $3}')
# --- end tests/browser ---------------------------------------------------------

step "Python suite (published centrifuge-python and cent)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
.venv/bin/python -m pytest tests/python -q 2>&1 | tee "$logs/python.log"

# --- examples/django: the Django example, with Django's test runner ----------
# Installs the example's requirements into the same .venv; its tests start
# $HERALD_BIN (exported above) themselves, one server per test.
step "Django example (examples/django: manage.py test with centrifuge-python, the connect proxy and the outbox on PostgreSQL)"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r examples/django/requirements.txt
(cd examples/django && ../../.venv/bin/python manage.py test) 2>&1 | tee "$logs/django.log"
django=$(grep -Eo '^Ran [0-9]+ tests?' "$logs/django.log" | tail -1 | awk '{print $2}')
grep -Eq '^OK( \(|$)' "$logs/django.log" && [ -n "$django" ] || { echo "error: the Django example's tests did not pass" >&2; exit 1; }
# --- end examples/django -----------------------------------------------------

# --- fuzz/, continued ----------------------------------------------------------
if [ -n "$fuzz_pid" ]; then
  step "Fuzz targets: the background run"
  fuzz_status=0
  wait "$fuzz_pid" || fuzz_status=$?
  cat "$logs/fuzz.log"
  [ "$fuzz_status" -eq 0 ] || { echo "error: fuzzing found a crash or failed to build" >&2; exit 1; }
fi
# --- end fuzz/ -------------------------------------------------------------------

step "Benchmark suite, small scale (checks it runs and reports; no speed threshold)"
cargo run --release --locked -p herald-bench -- suite --scale small --no-doc

step "Scale-out benchmark, smoke scale (1, 2 and 3 nodes on Redis; fails on any lost or reordered delivery)"
cargo run --release --locked -p herald-bench -- nodes --scale smoke --no-doc

step "Inbox and chat benchmark, smoke scale (SQLite, PostgreSQL, plain publish; fails on any failed call, lost or out-of-order delivery)"
cargo run --release --locked -p herald-bench -- apps --scale smoke --no-doc

step "Backend integration benchmark, smoke scale (connect proxy against JWT, outbox rows against API publish; fails on any failed connect, lost, repeated or out-of-order delivery)"
cargo run --release --locked -p herald-bench -- backend --scale smoke --no-doc

step "Transports benchmark, smoke scale (WebSocket, HTTP streaming, SSE; fails on any failed connect or publish, lost, repeated or out-of-order delivery)"
cargo run --release --locked -p herald-bench -- transports --scale smoke --no-doc

# One closing line for all suites (set -e has already stopped on any failure).
rust=$(grep -E '^test result: ok' "$logs/rust.log" | awk '{sum += $4} END {print sum + 0}')
node=$(grep -E '^# pass ' "$logs/node.log" | awk '{print $3}')
python=$(grep -Eo '[0-9]+ passed' "$logs/python.log" | tail -1 | awk '{print $1}')
printf '\nRust %s, Node %s, clients/js %s, browser %s, Python %s, Django example %s\n' "$rust" "$node" "$clients_js" "$browser" "$python" "$django"
echo "tests: $((rust + node + clients_js + browser + python + django)) passed, 0 failed"
