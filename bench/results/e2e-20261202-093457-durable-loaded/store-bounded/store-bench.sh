#!/usr/bin/env bash
# store-bench.sh - bounded store: size of quell's storage.path (total, spool/, the rest = sled
# files) before, during and after relaying 4 KB messages for DURATION seconds with the shared
# harness's load generator (load.sh -> smtp-source, K=0, C=20, 0 % suppressed) into smtp-sink.
# Same binary and config template as bench/e2e.sh (100,000 suppressions loaded first).
# Usage: RELAY_BINARY=... ROOT=<quell checkout> OUTDIR=... store-bench.sh
set -euo pipefail
HARNESS=${HARNESS:-/work/shared/bench}
export PFB_DIR=${PFB_DIR:-/tmp/pfbench}
DURATION=${DURATION:-600} BATCH=${BATCH:-50000} SAMPLE=${SAMPLE:-3} SETTLE=${SETTLE:-120}
OUT=${OUTDIR:?}; mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/quell-store.XXXXXX)
QPID= DUPID=
log() { echo "[$(date +%H:%M:%S)] store: $*" | tee -a "$OUT/store-bench.log" >&2; }
cleanup() {
    [[ -n $DUPID ]] && kill "$DUPID" 2>/dev/null || true
    if [[ -n $QPID && -d /proc/$QPID ]]; then kill -TERM "$QPID"; for _ in $(seq 1 300); do [[ -d /proc/$QPID ]] || break; sleep 0.1; done; fi
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
sed "s|$API_KEY|<random>|" "$WORK/quell.toml" >"$OUT/quell.toml"
"$HARNESS/sink.sh" start >&2
SINK_PID=$(<"$PFB_DIR/sink.pid")
RUST_LOG=warn "$WORK/quell" serve -c "$WORK/quell.toml" >"$WORK/quell.log" 2>&1 </dev/null &
QPID=$!
BASE=http://127.0.0.1:$HTTP_PORT
for _ in $(seq 1 1200); do curl -fs "$BASE/readyz" >/dev/null 2>&1 && break; [[ -d /proc/$QPID ]] || { tail -20 "$WORK/quell.log" >&2; exit 1; }; sleep 0.1; done
curl -fs "$BASE/readyz" >/dev/null || { tail -20 "$WORK/quell.log" >&2; log "quell not ready"; exit 1; }
log "quell ready"
LIST=$(SUPPRESS_N=100000 "$HARNESS/postfix-relay.sh" map | tail -1)
python3 "$ROOT/bench/load_suppressions.py" --url "$BASE" --key "$API_KEY" --domain bench.test "$LIST" | tee "$OUT/suppression-load.json" >&2
D=$WORK/data
sizes() { # epoch total spool rest spool_files queue_depth rss_kib
    local t s q r
    t=$(du -sb "$D" 2>/dev/null | cut -f1); s=$(du -sb "$D/spool" 2>/dev/null | cut -f1)
    q=$(curl -fs "$BASE/metrics" 2>/dev/null | awk '$1=="quell_queue_depth"{print $2}')
    r=$(awk '/^VmRSS/{print $2}' /proc/$QPID/status 2>/dev/null)
    echo "$(date +%s) $t $s $((t - s)) $(find "$D/spool" -type f 2>/dev/null | wc -l) ${q:-?} ${r:-?}"
}
echo "# epoch total_bytes spool_bytes other_bytes(sled etc.) spool_files queue_depth quell_rss_kib phase" >"$OUT/store-size.tsv"
sleep 5
sizes | sed 's/$/ before/' >>"$OUT/store-size.tsv"
(find "$D" -type f -printf '%s %p\n' | sed "s|$WORK/||" | sort -k2) >"$OUT/files-before.txt"
( while :; do sizes | sed 's/$/ during/'; sleep "$SAMPLE"; done ) >>"$OUT/store-size.tsv" &
DUPID=$!
log "quell pid $QPID, store $D; relaying for ${DURATION}s in runs of $BATCH"
t_end=$(( $(date +%s) + DURATION )); n=0
while (( $(date +%s) < t_end )); do
    left=$(( t_end - $(date +%s) ))
    RELAY_PORT=2526 M=$BATCH C=20 K=0 SIZE=4096 SUPPRESS_PCT=0 TIMEOUT=$(( left + 120 )) LABEL=store-$n \
        CPU_PIDS="relay=$QPID sink=$SINK_PID" OUT="$OUT/store-load.jsonl" "$HARNESS/load.sh" --quiet-wait 0 >/dev/null \
        || log "run $n not ok (see store-load.jsonl)"
    tail -n1 "$OUT/store-load.jsonl" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("run", r["label"], "ok", r["ok"], "accepted", r["accepted"], "sink", r["sink_delta"], "e2e/s", r["e2e_per_s"], "cpu", r["cpu_s"])' | tee -a "$OUT/store-bench.log" >&2
    n=$((n+1))
done
log "load done; waiting for the queue to drain, then ${SETTLE}s"
for _ in $(seq 1 600); do
    q=$(curl -fs "$BASE/metrics" | awk '$1=="quell_queue_depth"{print $2}'); [[ $q == 0 ]] && break; sleep 1
done
log "queue depth $q"
kill "$DUPID"; DUPID=
sizes | sed 's/$/ drained/' >>"$OUT/store-size.tsv"
( for _ in $(seq 1 $((SETTLE / 10))); do sleep 10; sizes | sed 's/$/ after/'; done ) >>"$OUT/store-size.tsv"
(find "$D" -type f -printf '%s %p\n' | sed "s|$WORK/||" | sort -k2) >"$OUT/files-after.txt"
curl -fs "$BASE/metrics" >"$OUT/quell-metrics-after.txt"
log "sink total: $("$HARNESS/sink.sh" count)"
kill -TERM "$QPID"; for _ in $(seq 1 300); do [[ -d /proc/$QPID ]] || break; sleep 0.1; done; QPID=
echo "$(date +%s) $(du -sb "$D" | cut -f1) $(du -sb "$D/spool" | cut -f1) - - - - stopped" >>"$OUT/store-size.tsv"
(find "$D" -type f -printf '%s %p\n' | sed "s|$WORK/||" | sort -k2) >"$OUT/files-stopped.txt"
grep -E ' (WARN|ERROR) ' "$WORK/quell.log" | head -20 >"$OUT/quell-warn-error.txt" || true
log "done"
