#!/usr/bin/env bash
# Soak: builds the release herald and herald-bench, then runs herald under
# paced mixed traffic for MINUTES minutes (default 30), one line per minute on
# stderr, and writes the `## Soak` section of docs/reliability.md with its plot
# docs/img/soak.svg. Exits non-zero when the run saw an error or a leak.
#
#   scripts/soak.sh 30                 # the documented run
#   scripts/soak.sh 3 --no-doc         # a quick check; extra args go to `herald-bench soak`
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=${1:-30}
if [[ $# -gt 0 ]]; then shift; fi
if ! [[ $minutes =~ ^[0-9]+$ ]] || (( minutes < 1 )); then
  echo "usage: scripts/soak.sh MINUTES [herald-bench soak options]" >&2
  exit 2
fi

echo "==> building the release herald and herald-bench" >&2
cargo build --release --locked -p herald-server --bin herald -p herald-bench --bin herald-bench

echo "==> soak: ${minutes} minutes (started $(date -u '+%H:%M:%S UTC'))" >&2
exec "${CARGO_TARGET_DIR:-target}/release/herald-bench" soak --minutes "$minutes" "$@"
