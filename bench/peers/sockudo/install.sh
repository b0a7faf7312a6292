#!/usr/bin/env bash
# Builds the pinned sockudo release into bench/peers/sockudo/.root (not on PATH,
# ignored by git). Idempotent: does nothing when the binary is there.
#
#   bash bench/peers/sockudo/install.sh
#
# The build compiles about 370 crates (6.5 minutes on a shared 2-CPU machine), so
# it runs at low priority.
set -euo pipefail

VERSION=5.2.0
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$HERE/.root"
BIN="$ROOT/bin/sockudo"

if [[ -x "$BIN" ]]; then
    echo "sockudo: $("$BIN" --version 2>/dev/null || echo "$BIN") already installed at $BIN"
    exit 0
fi

# sockudo-metrics always depends on metrics-exporter-tcp, whose build script
# compiles a .proto file with protoc (no feature turns it off).
if ! command -v protoc >/dev/null && [[ -z "${PROTOC:-}" ]]; then
    if ! command -v apt-get >/dev/null; then
        echo "sockudo: the build needs protoc and the protobuf well-known types, and apt-get is not here to install them" >&2
        exit 1
    fi
    echo "sockudo: installing protobuf-compiler and libprotobuf-dev (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler libprotobuf-dev >/dev/null
fi

args=(install sockudo --version "$VERSION" --locked --root "$ROOT")
echo "sockudo: cargo ${args[*]} (slow; low priority)"
started=$(date +%s)
nice -n 10 cargo "${args[@]}"
echo "sockudo: installed $("$BIN" --version) in $(( $(date +%s) - started ))s"
