#!/usr/bin/env bash
# Runs every cargo-fuzz target under fuzz/ for SECONDS each and prints a row
# per target: seconds, executions, crashes. Needs a nightly toolchain;
# installs cargo-fuzz into target/tools when it is missing.
#
#   scripts/fuzz.sh SECONDS [TARGET...]
#   FUZZ_DOC=1 scripts/fuzz.sh 900   # also writes the table into docs/reliability.md
#   FUZZ_KEEP=1 ...                  # keeps new inputs in the committed corpus (then minimizes it)
#   FUZZ_JOBS=2 ...                  # runs two targets at once
#
# Inputs that fuzzing finds go to a scratch corpus unless FUZZ_KEEP=1; a crash
# leaves its input under fuzz/artifacts/TARGET/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}
shift
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "error: cargo fuzz needs a nightly toolchain (rustup toolchain install nightly)" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  export PATH="$root/target/tools/bin:$PATH"
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz into target/tools"
    cargo install --locked --quiet --root "$root/target/tools" cargo-fuzz
  fi
fi
cd fuzz
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
echo "==> building ${#targets[@]} fuzz targets (nightly, coverage instrumentation, no sanitizer)"
# The code is safe Rust (unsafe is forbidden), so a sanitizer would add cost
# and find nothing; what fuzzing hunts here is panics and broken invariants.
cargo +nightly fuzz build -s none
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# One target: its log, then its row in $scratch/TARGET.row; exits non-zero on a crash.
fuzz_one() {
  local target=$1 corpus="corpus/$1" log="$scratch/$1.log" status=0 runs crashes=0
  mkdir -p "$corpus" "$scratch/$target"
  local dirs=("$scratch/$target" "$corpus")
  [ "${FUZZ_KEEP:-0}" = 1 ] && dirs=("$corpus")
  echo "==> fuzzing $target for ${seconds}s"
  cargo +nightly fuzz run -s none "$target" "${dirs[@]}" -- \
    -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=4096 -timeout=10 >"$log" 2>&1 || status=$?
  runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)
  if [ "$status" -ne 0 ]; then
    crashes=1
    echo "error: $target failed (exit $status); its log ends:" >&2
    tail -40 "$log" >&2
  fi
  printf '%-16s %6ss %14s executions %3s crashes\n' "$target" "$seconds" "${runs:-?}" "$crashes"
  echo "| \`$target\` | $seconds | ${runs:-?} | $crashes |" >"$scratch/$target.row"
  if [ "${FUZZ_KEEP:-0}" = 1 ] && [ "$status" -eq 0 ]; then
    cargo +nightly fuzz cmin -s none "$target" "$corpus" >/dev/null 2>&1
  fi
  return "$status"
}
# FUZZ_JOBS=N runs N targets at once (each still for SECONDS).
jobs_max=${FUZZ_JOBS:-1}
failed=0
pids=()
for target in "${targets[@]}"; do
  fuzz_one "$target" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$jobs_max" ]; then
    wait "${pids[0]}" || failed=1
    pids=("${pids[@]:1}")
  fi
done
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
rows=$(for target in "${targets[@]}"; do cat "$scratch/$target.row"; done)
if [ "${FUZZ_DOC:-0}" = 1 ]; then
  command="FUZZ_DOC=1"
  [ "${FUZZ_KEEP:-0}" = 1 ] && command+=" FUZZ_KEEP=1"
  [ "$jobs_max" -gt 1 ] && command+=" FUZZ_JOBS=$jobs_max"
  command+=" scripts/fuzz.sh $seconds"
  COMMAND="$command" ROWS="$rows" SECONDS_EACH="$seconds" JOBS="$jobs_max" python3 - "$root/docs/reliability.md" <<'PY'
import os, re, sys, datetime
path = sys.argv[1]
text = open(path).read()
section = f"""## Fuzzing

`{os.environ['COMMAND']}` on {datetime.date.today()}: each target ran
{os.environ['SECONDS_EACH']} s ({os.environ['JOBS']} at a time), starting from its committed corpus under `fuzz/corpus/`. A crash is a panic or a
broken invariant (each target's doc comment names its own); 0 means none in that run.
Crashes found in earlier runs and fixed, each with a regression test, are listed under
"Fuzz targets".

| target | seconds | executions | crashes |
|---|---:|---:|---:|
{os.environ['ROWS'].rstrip()}
"""
pattern = re.compile(r"^## Fuzzing\n.*?(?=^## |\Z)", re.S | re.M)
if pattern.search(text):
    text = pattern.sub(lambda _: section.rstrip() + "\n\n", text).rstrip() + "\n"
else:
    text = text.rstrip() + "\n\n" + section
open(path, "w").write(text)
print(f"wrote {path}")
PY
fi
exit $failed
