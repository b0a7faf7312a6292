#!/usr/bin/env bash
# Self-check for the Django Channels peer: starts a throwaway redis-server and
# the peer (via run.sh) on free 127.0.0.1 ports, runs selfcheck.py against it
# with a timeout, checks that killing the peer's process group closes the
# port, and cleans everything up. Exit 0 on success.
#
# Env: STARTUP_TIMEOUT (s to wait for "listening on", default 300 so a first
# run can install the venv), CHECK_TIMEOUT (s for selfcheck.py, default 30).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-300}
CHECK_TIMEOUT=${CHECK_TIMEOUT:-30}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/django-peer-selfcheck.XXXXXX")
REDIS_PORT=$(free_port)
PEER_PORT=$(free_port)
while [[ $PEER_PORT == "$REDIS_PORT" ]]; do PEER_PORT=$(free_port); done
PEER_PID=
REDIS_STARTED=

cleanup() {
  local rc=$?
  if [[ -n $PEER_PID ]] && kill -0 "$PEER_PID" 2>/dev/null; then
    kill -- "-$PEER_PID" 2>/dev/null || true
    wait "$PEER_PID" 2>/dev/null || true
  fi
  if [[ -n $REDIS_STARTED ]]; then
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 ||
      { [[ -f $WORK/redis.pid ]] && kill "$(cat "$WORK/redis.pid")" 2>/dev/null; } || true
  fi
  if ((rc != 0)); then
    echo "selfcheck: FAIL (exit $rc)" >&2
    [[ -s $WORK/peer.err ]] && { echo "--- peer stderr (tail) ---" >&2; tail -n 40 "$WORK/peer.err" >&2; }
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- redis -----------------------------------------------------------------
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --daemonize yes --dir "$WORK" --pidfile "$WORK/redis.pid" --logfile "$WORK/redis.log"
REDIS_STARTED=1
for _ in $(seq 100); do
  [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]] && break
  sleep 0.1
done
[[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]] ||
  { echo "selfcheck: redis did not come up on $REDIS_PORT" >&2; exit 1; }
echo "redis-server up on 127.0.0.1:$REDIS_PORT"

# --- peer (own session/process group, like the load generator runs it) ----
EXPECTED="listening on http://127.0.0.1:$PEER_PORT"
setsid "$HERE/run.sh" "$PEER_PORT" "redis://127.0.0.1:$REDIS_PORT/0" \
  >"$WORK/peer.out" 2>"$WORK/peer.err" &
PEER_PID=$!
deadline=$((SECONDS + STARTUP_TIMEOUT))
until grep -q '^listening on ' "$WORK/peer.out" 2>/dev/null; do
  kill -0 "$PEER_PID" 2>/dev/null || { echo "selfcheck: run.sh exited before listening" >&2; exit 1; }
  ((SECONDS < deadline)) || { echo "selfcheck: no readiness line within ${STARTUP_TIMEOUT}s" >&2; exit 1; }
  sleep 0.05
done
sleep 0.2  # let any stray extra stdout show up before checking it
[[ $(cat "$WORK/peer.out") == "$EXPECTED" ]] ||
  { echo "selfcheck: stdout was not exactly '$EXPECTED':" >&2; cat "$WORK/peer.out" >&2; exit 1; }
port_open "$PEER_PORT" || { echo "selfcheck: announced port is not open" >&2; exit 1; }
echo "run.sh stdout: $(cat "$WORK/peer.out")"

# --- the actual check --------------------------------------------------------
timeout "$CHECK_TIMEOUT" "$HERE/.venv/bin/python" "$HERE/selfcheck.py" "$PEER_PORT"

# --- killing the process group must stop the server -------------------------
kill -- "-$PEER_PID"
wait "$PEER_PID" 2>/dev/null || true
for _ in $(seq 50); do port_open "$PEER_PORT" || break; sleep 0.1; done
if port_open "$PEER_PORT"; then
  echo "selfcheck: port $PEER_PORT still open after killing the process group" >&2
  exit 1
fi
PEER_PID=
echo "peer process group killed; port $PEER_PORT closed"
echo "selfcheck: PASS"
