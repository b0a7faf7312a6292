#!/usr/bin/env bash
# Django Channels 4 + daphne + channels-redis peer for the Herald benchmark.
#
#   bench/peers/django/run.sh PORT REDIS_URL
#
# Ensures a project-local venv (.venv, pinned requirements.txt), then execs
# daphne on 127.0.0.1:PORT in the foreground (this script's PID becomes
# daphne's PID). Exactly one line goes to stdout, once the port accepts TCP
# connections:
#
#   listening on http://127.0.0.1:PORT
#
# Everything else (pip, daphne logs) goes to stderr. Env: PYTHON (interpreter
# used to create the venv, default python3), REDIS_MAX_CONNECTIONS (channel
# layer's redis pool cap, default 1000, see README), READY_TIMEOUT (seconds to wait
# for the port, default 60), DAPHNE_VERBOSITY (default 0: no per-request
# access log; 1 = daphne's default access log, sent to stderr).
set -euo pipefail

if [[ $# -ne 2 || ! $1 =~ ^[0-9]+$ || -z $2 ]]; then
  echo "usage: $0 PORT REDIS_URL   (e.g. $0 8101 redis://127.0.0.1:6379/0)" >&2
  exit 2
fi
PORT=$1
REDIS_URL=$2
PYTHON=${PYTHON:-python3}
READY_TIMEOUT=${READY_TIMEOUT:-60}
DAPHNE_VERBOSITY=${DAPHNE_VERBOSITY:-0}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VENV=$HERE/.venv
REQS=$HERE/requirements.txt
STAMP=$VENV/.requirements.sha256

# --- venv: install only when missing or requirements.txt changed -----------
venv_ok() {
  [[ -x $VENV/bin/python && -x $VENV/bin/daphne && -f $STAMP ]] &&
    [[ $(cat "$STAMP") == "$(sha256sum "$REQS" | cut -d' ' -f1)" ]] &&
    "$VENV/bin/python" -c '' 2>/dev/null
}

if ! venv_ok; then
  # Serialise concurrent first runs; the lock is on requirements.txt itself
  # and is released (fd closed) before daphne starts.
  exec 9<"$REQS"
  flock 9
  if ! venv_ok; then
    echo "run.sh: installing pinned requirements into $VENV" >&2
    rm -rf "$VENV"  # rebuild from scratch so the venv matches the pins exactly
    "$PYTHON" -m venv "$VENV" >&2
    if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-input -r "$REQS" >&2; then
      echo "run.sh: pip install failed" >&2
      exit 1
    fi
    sha256sum "$REQS" | cut -d' ' -f1 >"$STAMP"
  fi
  exec 9<&-
fi

# --- fail fast if redis is unreachable (otherwise every request would 500) --
if ! "$VENV/bin/python" - "$REDIS_URL" <<'PY'
import sys
import redis
url = sys.argv[1]
try:
    redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
except Exception as e:
    sys.exit(f"run.sh: cannot reach redis at {url}: {e}")
PY
then
  exit 1
fi

# --- refuse a port that is already taken (the poll below would lie) ------
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
if port_open; then
  echo "run.sh: 127.0.0.1:$PORT is already in use" >&2
  exit 1
fi

# --- readiness announcer ---------------------------------------------------
# Double-forked so it is reparented away from daphne (no zombie), but it stays
# in this process group. It polls the port every 50 ms and gives up if daphne
# exits ($$ is this script's PID, which daphne inherits through exec).
MAIN=$$
( (
  deadline=$((SECONDS + READY_TIMEOUT))
  while :; do
    if port_open; then
      echo "listening on http://127.0.0.1:$PORT"
      exit 0
    fi
    kill -0 "$MAIN" 2>/dev/null || exit 1
    if ((SECONDS >= deadline)); then
      echo "run.sh: daphne did not open 127.0.0.1:$PORT within ${READY_TIMEOUT}s" >&2
      exit 1
    fi
    sleep 0.05
  done
) & )

# --- daphne in the foreground ----------------------------------------------
# Every WebSocket is a file descriptor: use the hard limit, as a systemd unit
# with LimitNOFILE would (best effort, no error if not permitted).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cd "$HERE"
export REDIS_URL DJANGO_SETTINGS_MODULE=peer.settings
exec "$VENV/bin/daphne" -v "$DAPHNE_VERBOSITY" -b 127.0.0.1 -p "$PORT" \
  peer.asgi:application >&2
