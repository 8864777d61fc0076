#!/usr/bin/env bash
# latency-rerun.sh - the "latency" phase of run-baseline.sh again (shared latency.sh, unmodified),
# for Postfix (100k map) and quell (same binary/config template as e2e.sh, 100k list loaded),
# WITHOUT latency.py's wait for an idle machine (--quiet-threshold 2.1: never waits): in the
# e2e run the per-message wait (up to 60 s each) made quell's series exceed latency.sh's
# `timeout 900` and no record was written.
set -euo pipefail
HARNESS=${HARNESS:-/work/shared/bench}
export PFB_DIR=${PFB_DIR:-/tmp/pfbench}
OUT=${OUTDIR:?}; mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/quell-lat.XXXXXX)
QPID=
cleanup() {
    if [[ -n $QPID && -d /proc/$QPID ]]; then kill -TERM "$QPID"; for _ in $(seq 1 300); do [[ -d /proc/$QPID ]] || break; sleep 0.1; done; fi
    "$HARNESS/postfix-relay.sh" stop >&2 || true
    "$HARNESS/sink.sh" stop >&2 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
cp "$RELAY_BINARY" "$WORK/quell"
HTTP_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
API_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
sed -e "s|@SMTP_PORT@|2526|; s|@UPSTREAM_PORT@|2600|; s|@UPSTREAM_CONNECTIONS@|20|" \
    -e "s|@HTTP_PORT@|$HTTP_PORT|; s|@API_KEY@|$API_KEY|; s|@DATA_DIR@|$WORK/data|" \
    "$ROOT/bench/quell-bench.toml.in" >"$WORK/quell.toml"
"$HARNESS/sink.sh" start >&2
RUST_LOG=warn "$WORK/quell" serve -c "$WORK/quell.toml" >"$WORK/quell.log" 2>&1 </dev/null &
QPID=$!
BASE=http://127.0.0.1:$HTTP_PORT
for _ in $(seq 1 1200); do curl -fs "$BASE/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "$BASE/readyz" >/dev/null
LIST=$(SUPPRESS_N=100000 "$HARNESS/postfix-relay.sh" map | tail -1)
python3 "$ROOT/bench/load_suppressions.py" --url "$BASE" --key "$API_KEY" --domain bench.test "$LIST" >&2
NQ="--quiet-threshold 2.1"
"$HARNESS/postfix-relay.sh" stop >/dev/null
SUPPRESS_N=100000 PF_QUEUE_DIR=$PFB_DIR/spool "$HARNESS/postfix-relay.sh" start >&2
sync; sleep 5
COUNT=3 GAP=0.2 RELAY_PORT=2525 "$HARNESS/latency.sh" $NQ >/dev/null || true
COUNT=3 GAP=0.2 RELAY_PORT=2600 "$HARNESS/latency.sh" $NQ >/dev/null || true
LABEL=latency-pf100k OUT="$OUT/latency.jsonl" RELAY_PORT=2525 "$HARNESS/latency.sh" $NQ >/dev/null || echo "latency pf FAILED" >&2
LABEL=latency-sink-direct OUT="$OUT/latency.jsonl" RELAY_PORT=2600 "$HARNESS/latency.sh" $NQ >/dev/null || echo "latency sink FAILED" >&2
"$HARNESS/postfix-relay.sh" stop >/dev/null
COUNT=3 GAP=0.2 RELAY_PORT=2526 "$HARNESS/latency.sh" $NQ >/dev/null || true
LABEL=latency-quell OUT="$OUT/latency.jsonl" RELAY_PORT=2526 "$HARNESS/latency.sh" $NQ >/dev/null || echo "latency quell FAILED" >&2
echo done >&2
