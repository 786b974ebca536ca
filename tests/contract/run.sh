#!/usr/bin/env bash
# The contract check: the server binary, started on 127.0.0.1 over a fresh data
# directory, against its own /openapi.json, with schemathesis (pinned in
# requirements.txt, installed into tests/contract/.venv when missing) running every
# check with a bearer token of every scope. Any failure or schema error fails the run.
#
#   bash tests/contract/run.sh                  # the run .ci/test makes
#   MAX_EXAMPLES=100 SEED=7 bash tests/contract/run.sh
#   PROFILE=release bash tests/contract/run.sh  # against the release binary
#
# The default is the debug binary `cargo nextest run` has just built, so the check adds
# no build of its own to the test command; the contract is the same in either profile.
#
# The seed is fixed so that a run means the same from one commit to the next; change it
# (or MAX_EXAMPLES) to explore further.
set -euo pipefail
cd "$(dirname "$0")/../.."

here=tests/contract
venv=$here/.venv
seed=${SEED:-20261202}
max_examples=${MAX_EXAMPLES:-50}
workers=${WORKERS:-2}
version=$(sed -n 's/^schemathesis==//p' "$here/requirements.txt")

if [ "$("$venv/bin/schemathesis" --version 2>/dev/null || true)" != "schemathesis, version $version" ]; then
  echo "installing schemathesis $version into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi

case "${PROFILE:-dev}" in
  release) cargo build --release --bin challenge-server; bin=target/release/challenge-server ;;
  # The binary the integration tests run (built with the test targets' features), so
  # that after `cargo nextest run` nothing is built again.
  dev) cargo test --no-run --quiet --test api; bin=target/debug/challenge-server ;;
  *) echo "PROFILE is release or dev" >&2; exit 2 ;;
esac

work=$(mktemp -d)
log=target/contract-server.log
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
"$bin" serve --config "$here/server.toml" --listen "127.0.0.1:$port" --data-dir "$work/data" \
  >"$log" 2>&1 &
server_pid=$!

ready() {
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
    "$base/readyz" >/dev/null 2>&1
}
for _ in $(seq 1 300); do
  if ready; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "the server exited before it was ready:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.1
done
ready || { echo "the server did not become ready:" >&2; cat "$log" >&2; exit 1; }

scopes=$(sed -n 's/^ *Scope::[A-Za-z]* => "\(challenge:[a-z:]*\)",$/\1/p' src/auth/scopes.rs | tr '\n' ' ')
token=$("$bin" token --config "$here/server.toml" --tenant contract --subject contract --scope "$scopes")

status=0
"$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" run "$base/openapi.json" \
  --checks all \
  --header "Authorization: Bearer $token" \
  --seed "$seed" \
  --max-examples "$max_examples" \
  --workers "$workers" \
  --generation-database none \
  --no-color || status=$?

if [ "$status" != 0 ]; then
  echo "contract check failed; the server's log is $log" >&2
fi
exit "$status"
