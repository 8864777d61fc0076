#!/usr/bin/env bash
# Property-based API test: schemathesis generates requests from /openapi.json and checks that
# quell never answers 5xx and that every answer matches the document (status code, content type,
# schema). quell runs from its binary with a temp config: a key, a temp store, SMTP and HTTP on
# free loopback ports, the upstream a closed port (nothing here needs delivery).
#
#   scripts/schemathesis.sh                 # builds and runs target/debug/quell
#   QUELL_BIN=target/release/quell scripts/schemathesis.sh   # an already built binary
#   MAX_EXAMPLES=200 SEED=7 scripts/schemathesis.sh
#
# Needs schemathesis on PATH: pip install schemathesis==4.32.5 (the version this was run with).
# Exits non-zero when schemathesis finds a failure or quell does not start; always stops quell.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${QUELL_BIN:-}
MAX_EXAMPLES=${MAX_EXAMPLES:-50}
# A fixed seed by default, so that a CI failure reproduces; override to explore.
SEED=${SEED:-20261127}
KEY=schemathesis-key-0123456789abcdef

command -v schemathesis >/dev/null || {
  echo "schemathesis not found: pip install schemathesis==4.32.5" >&2
  exit 2
}
if [ -z "$BIN" ]; then
  # The document is compiled in: build, so that the run tests this tree's document.
  cargo build --bin quell
  BIN=target/debug/quell
fi

work=$(mktemp -d)
pid=
stop() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap stop EXIT

# Port 9 (discard) on loopback is closed: queued mail just waits. Port 0: the kernel picks.
cat >"$work/quell.toml" <<EOF
[smtp]
listen = "127.0.0.1:0"
[upstream]
host = "127.0.0.1"
port = 9
[http]
listen = "127.0.0.1:0"
api_keys = ["$KEY"]
[storage]
path = "$work/data"
[log]
format = "json"
EOF

"$BIN" serve -c "$work/quell.toml" 2>"$work/quell.log" &
pid=$!

# The HTTP address quell logged, then /readyz.
addr=
for _ in $(seq 1 300); do
  kill -0 "$pid" 2>/dev/null || { cat "$work/quell.log" >&2; echo "quell exited" >&2; exit 1; }
  addr=$(grep -o '"message":"http listening","addr":"[^"]*"' "$work/quell.log" | head -n1 |
    sed 's/.*"addr":"\([^"]*\)"/\1/') || true
  if [ -n "$addr" ] && curl -fsS "http://$addr/readyz" >/dev/null 2>&1; then
    break
  fi
  sleep 0.1
done
curl -fsS "http://$addr/readyz" >/dev/null || { cat "$work/quell.log" >&2; echo "quell not ready" >&2; exit 1; }
echo "quell ready at http://$addr (pid $pid)"

# Operations left out because of server bugs found by this run (reported, not yet fixed):
# none at the moment. Add `--exclude-operation-id ID` lines here, each with a comment naming
# the finding.
excluded=()

status=0
(cd "$work" && timeout 600 schemathesis run "http://$addr/openapi.json" \
  -H "Authorization: Bearer $KEY" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "$MAX_EXAMPLES" \
  --seed "$SEED" \
  --request-timeout 15 \
  --generation-database none \
  --no-color \
  "${excluded[@]}") || status=$?

if grep -q '"level":"ERROR"' "$work/quell.log"; then
  echo "quell logged errors during the run:" >&2
  grep '"level":"ERROR"' "$work/quell.log" | head -n 20 >&2
  [ "$status" -ne 0 ] || status=1
fi
exit "$status"
