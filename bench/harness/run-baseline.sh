#!/usr/bin/env bash
# run-baseline.sh - the whole peer baseline, bounded, on loopback only:
#   (a) physical limit: smtp-source straight into smtp-sink (127.0.0.1:2600)
#   (b) Postfix relay (127.0.0.1:2525), 100k suppressions, 0% suppressed rcpts
#   (c) same, 10% suppressed recipients
#   (b1) same as (b) with one connection per message (K=1)
#   (d) Postfix with 1M suppressions, 0% and 10%
#   (e) what-if: (b) with the queue on tmpfs (/dev/shm), i.e. fsync ~free
#   latency: 20 single messages with swaks, relay and sink-direct (runs first)
#   (x) phase "ext" (not in the default PHASES): another relay under test,
#       e.g. the Rust relay: PHASES="latency phys pf100k ext" EXT_NAME=rust
#       EXT_PORT=2526 EXT_PID=<pid> [EXT_QUEUE_DIR=] [EXT_SUPPRESS_N=100000]
#       runs 0pct-K0, 10pct-K0, 0pct-K1 against it, interleaved with Postfix;
#       the relay must load $PFB_DIR/suppressed-$EXT_SUPPRESS_N.txt and
#       forward to 127.0.0.1:2600.
# Each load scenario runs R times (default 5); the Postfix scenarios are
# interleaved (100k and 1M instances alternate every repetition, each start
# followed by a discarded 2000-message warm-up).
# Starts the sink and the private Postfix instance itself and stops both at
# the end (trap), by their recorded pids.
#
# Environment: R=5 RETRIES=2 M=20000 C=20 SIZE=4096 PFB_DIR=/tmp/pfbench
#   RESULTS=<bench>/results/<timestamp>   (load.jsonl, latency.jsonl, summary.md)
#   PHASES="latency phys pf100k pf1m pftmpfs"     subset to run (+ "ext")
#
# COPY for quell's bench/e2e.sh of /work/shared/bench/run-baseline.sh (the shared copy is
# read-only). Differences, nothing else:
#   - HERE is the shared harness ($HARNESS, default /work/shared/bench): load.sh, sink.sh,
#     postfix-relay.sh, latency.sh and summarize.py are used from there, unmodified;
#   - run(): `[[ $clean == True ]] && break` was the loop's last command, so a last attempt
#     that was not clean (another process busy on the machine) returned 1 and `set -e`
#     aborted the whole suite; now an unclean run is kept (marked clean=false) and the suite
#     goes on;
#   - RESULTS has no default under the (read-only) harness directory: it must be given;
#   - LOAD_ARGS (default empty) is appended to every load.sh call (load.sh hands its arguments
#     to loadgen.py), e.g. LOAD_ARGS="--quiet-wait 60" to bound the wait for an idle machine
#     (loadgen.py's default is 180 s per run) on a box shared with other people's builds.
set -euo pipefail
HERE=${HARNESS:-/work/shared/bench}
export PFB_DIR=${PFB_DIR:-/tmp/pfbench}
R=${R:-5}
RETRIES=${RETRIES:-2}
export M=${M:-20000} C=${C:-20} SIZE=${SIZE:-4096}
RESULTS=${RESULTS:?RESULTS must name the results directory}
PHASES=${PHASES:-"latency phys pf100k pf1m pftmpfs"}
PF_PID= PF_SPOOL=
# Phase "ext": another relay under test (e.g. the Rust relay), same scenarios.
EXT_NAME=${EXT_NAME:-ext} EXT_PORT=${EXT_PORT:-2526} EXT_PID=${EXT_PID:-}
EXT_QUEUE_DIR=${EXT_QUEUE_DIR:-} EXT_SUPPRESS_N=${EXT_SUPPRESS_N:-100000}
mkdir -p "$RESULTS"
LOAD_OUT=$RESULTS/load.jsonl
LAT_OUT=$RESULTS/latency.jsonl

cleanup() {
    "$HERE/postfix-relay.sh" stop || true
    "$HERE/sink.sh" stop || true
}
trap cleanup EXIT

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
has() { [[ " $PHASES " == *" $1 "* ]]; }

{
    echo "date: $(date -Is)"; uname -a; nproc; free -m | sed -n 2p
    dpkg-query -W postfix swaks
    echo "R=$R M=$M C=$C SIZE=$SIZE"
} >"$RESULTS/env.txt"

"$HERE/sink.sh" start
SINK_PID=$(<"$PFB_DIR/sink.pid")
if has ext; then
    # the list the external relay should load: $PFB_DIR/suppressed-$EXT_SUPPRESS_N.txt
    SUPPRESS_N=$EXT_SUPPRESS_N "$HERE/postfix-relay.sh" map
    ss -Hltn "sport = :$EXT_PORT" | grep -q . || { log "nothing listens on $EXT_PORT (phase ext)"; exit 1; }
fi

run() { # label, then env assignments for load.sh
    # A run during which something else used the CPU (foreign_cores >= 0.2,
    # "clean": false) is kept in load.jsonl but repeated, up to RETRIES times.
    local label=$1 attempt clean; shift
    for attempt in $(seq 0 "$RETRIES"); do
        env "$@" LABEL="$label" OUT="$LOAD_OUT" "$HERE/load.sh" ${LOAD_ARGS:-} >/dev/null || log "run $label FAILED (see $LOAD_OUT)"
        tail -n1 "$LOAD_OUT" | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print("   {label}: ok={ok} clean={clean} (foreign {foreign_cores} cores) client={client_s}s e2e={e2e_s}s e2e/s={e2e_per_s} client tx/s={client_tps} rejected={rejected} cpu={cpu_s}".format(**r))' >&2
        clean=$(tail -n1 "$LOAD_OUT" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read()).get("clean"))')
        sleep 2
        if [[ $clean == True ]]; then break; fi
    done
}

# Latency first, on a settled machine (right after the load phases the disk is
# still writing back and Postfix's DATA->250 was seen higher).
if has latency; then
    "$HERE/postfix-relay.sh" stop >/dev/null
    SUPPRESS_N=100000 PF_QUEUE_DIR=$PFB_DIR/spool "$HERE/postfix-relay.sh" start >&2
    sync; sleep 5
    log "latency: postfix relay (100k) and sink direct"
    # warm-up: 3 messages each (process start-up, page cache), not recorded
    COUNT=3 GAP=0.2 RELAY_PORT=2525 "$HERE/latency.sh" >/dev/null || true
    COUNT=3 GAP=0.2 RELAY_PORT=2600 "$HERE/latency.sh" >/dev/null || true
    LABEL=latency-pf100k OUT="$LAT_OUT" RELAY_PORT=2525 "$HERE/latency.sh" >/dev/null || log "latency pf FAILED"
    LABEL=latency-sink-direct OUT="$LAT_OUT" RELAY_PORT=2600 "$HERE/latency.sh" >/dev/null || log "latency sink FAILED"
    "$HERE/postfix-relay.sh" stop >/dev/null
    if has ext; then
        log "latency: external relay $EXT_NAME on port $EXT_PORT"
        COUNT=3 GAP=0.2 RELAY_PORT=$EXT_PORT "$HERE/latency.sh" >/dev/null || true
        LABEL=latency-$EXT_NAME OUT="$LAT_OUT" RELAY_PORT=$EXT_PORT "$HERE/latency.sh" >/dev/null || log "latency $EXT_NAME FAILED"
    fi
fi

if has phys; then
    log "(a) physical limit: smtp-source -> smtp-sink"
    env RELAY_PORT=2600 M=2000 "$HERE/load.sh" ${LOAD_ARGS:-} >/dev/null  # warm-up
    for i in $(seq 1 "$R"); do
        run phys-K0 RELAY_PORT=2600 K=0 CPU_PIDS="sink=$SINK_PID" META="relay=none"
        run phys-K1 RELAY_PORT=2600 K=1 CPU_PIDS="sink=$SINK_PID" META="relay=none"
        run phys-K0-M200k RELAY_PORT=2600 K=0 M=200000 CPU_PIDS="sink=$SINK_PID" META="relay=none"
    done
fi

pf_start() { # N [queue_dir]: (re)start the Postfix instance with an N-entry suppression map
    "$HERE/postfix-relay.sh" stop >/dev/null
    SUPPRESS_N=$1 PF_QUEUE_DIR=${2:-$PFB_DIR/spool} "$HERE/postfix-relay.sh" start >&2
    PF_PID=$("$HERE/postfix-relay.sh" pid)
    PF_SPOOL=$("$HERE/postfix-relay.sh" spool)
    : >"$PFB_DIR/maillog"
    env QUEUE_DIR="$PF_SPOOL" M=2000 "$HERE/load.sh" ${LOAD_ARGS:-} >/dev/null  # warm-up, not recorded
    sleep 2
}

pf_run() { # N tag scenario
    local n=$1 tag=$2 sc=$3 k pct
    case $sc in
    0pct-K0) k=0 pct=0 ;;
    10pct-K0) k=0 pct=10 ;;
    0pct-K1) k=1 pct=0 ;;
    10pct-K1) k=1 pct=10 ;;
    esac
    : >"$PFB_DIR/maillog"
    run "$tag-$sc" QUEUE_DIR="$PF_SPOOL" K=$k SUPPRESS_PCT=$pct \
        CPU_PIDS="postfix=$PF_PID sink=$SINK_PID" META="relay=postfix suppress_n=$n queue_dir=$PF_SPOOL"
}

ext_run() { # scenario, against the external relay (EXT_PORT, optional EXT_PID / EXT_QUEUE_DIR)
    local sc=$1 k pct
    case $sc in
    0pct-K0) k=0 pct=0 ;;
    10pct-K0) k=0 pct=10 ;;
    0pct-K1) k=1 pct=0 ;;
    esac
    run "$EXT_NAME-$sc" RELAY_PORT="$EXT_PORT" QUEUE_DIR="$EXT_QUEUE_DIR" K=$k SUPPRESS_PCT=$pct \
        CPU_PIDS="${EXT_PID:+relay=$EXT_PID }sink=$SINK_PID" META="relay=$EXT_NAME suppress_n=$EXT_SUPPRESS_N"
}

# Postfix scenarios, interleaved: every repetition runs each scenario once,
# so slow drift of the VM spreads evenly over all of them.
if has pf100k || has pf1m || has pftmpfs || has ext; then
    generated=
    for i in $(seq 1 "$R"); do
        if has pf100k; then
            log "(b)(c) postfix relay, 100k suppressions, repetition $i/$R"
            pf_start 100000
            pf_run 100000 pf100k 0pct-K0
            pf_run 100000 pf100k 10pct-K0
            pf_run 100000 pf100k 0pct-K1
        fi
        if has pf1m; then
            log "(d) postfix relay, 1M suppressions, repetition $i/$R"
            pf_start 1000000
            pf_run 1000000 pf1M 0pct-K0
            pf_run 1000000 pf1M 10pct-K0
        fi
        if has ext; then
            log "(x) external relay $EXT_NAME on 127.0.0.1:$EXT_PORT, repetition $i/$R"
            "$HERE/postfix-relay.sh" stop >/dev/null
            ext_run 0pct-K0; ext_run 10pct-K0; ext_run 0pct-K1
        fi
        if has pftmpfs; then
            log "(e) what-if: postfix relay, 100k, queue on tmpfs (fsync ~free), repetition $i/$R"
            pf_start 100000 /dev/shm/pfbench-spool
            pf_run 100000 pf100k-tmpfsq 0pct-K0
        fi
    done
    "$HERE/postfix-relay.sh" queue | tail -1 >&2
fi

"$HERE/postfix-relay.sh" stop
"$HERE/sink.sh" stop
trap - EXIT
rm -rf /dev/shm/pfbench-spool  # the tmpfs queue of phase (e), if any
files=()
[[ -f $LOAD_OUT ]] && files+=("$LOAD_OUT")
[[ -f $LAT_OUT ]] && files+=("$LAT_OUT")
python3 "$HERE/summarize.py" "${files[@]}" | tee "$RESULTS/summary.md"
log "results in $RESULTS"
