#!/usr/bin/env bash
# e2e.sh - quell vs Postfix end to end, measured in one run of the shared harness
# (/work/shared/bench, used read-only): smtp-source -> relay -> smtp-sink on loopback,
# 4 KB messages, 20 sessions, 100,000 suppression entries.
#
# 1. builds quell in release (the working tree, or BUILD_REV from git) and copies the binary;
# 2. SUPPRESS_N=100000 postfix-relay.sh map -> $PFB_DIR/suppressed-100000.txt
#    ("<10*j>user@example.com", the list the Postfix instance rejects);
# 3. starts quell with bench/quell-bench.toml.in (SMTP 127.0.0.1:2526, HTTP on a free loopback
#    port, upstream 127.0.0.1:2600, sled store in a temp dir, a random API key);
# 4. loads the list through quell's Mailgun API (POST /v3/bench.test/unsubscribes, 1000 per
#    request): scope domain:bench.test applies to the harness's envelope sender
#    bench-sender@bench.test (loadgen.py --sender default), so every 10th message of the
#    SUPPRESS_PCT=10 runs is refused, as with Postfix's check_recipient_access map;
# 5. checks with swaks that a listed recipient gets 550 and an unlisted one 250, and that the
#    entry does not apply to a sender of another domain;
# 6. runs bench/harness/run-baseline.sh (the shared one with a set -e fix, see its header) with PHASES (default "latency phys pf100k ext"), EXT_PORT=2526,
#    EXT_PID=<quell pid>: Postfix and quell scenarios interleaved, R repetitions;
#    samples quell's RSS every second meanwhile;
# 7. checks quell's /metrics against the harness's counts, stops quell (SIGTERM, by pid) and
#    writes report.md (bench/e2e_report.py) next to the harness's load.jsonl/latency.jsonl.
#
# Stops only what it started: the quell pid and its RSS sampler (run-baseline.sh stops the sink
# and the Postfix instance it started, by their recorded pids). Refuses to run when a sink or
# the private Postfix instance is already up (someone else's run would be stopped).
#
# Environment (defaults): R=3 RETRIES=1 M=20000 C=20 SIZE=4096
#   PHASES="latency phys pf100k ext"  SMTP_PORT=2526  UPSTREAM_CONNECTIONS=20
#   SUPPRESS_N=100000  SUPPRESS_DOMAIN=bench.test
#   RELAY_LOG=info  RUST_LOG for quell (no QUELL_* names here: quell reads those as config)
#   BUILD_REV=      build this git revision (git archive into the temp dir) instead of the
#                   working tree (useful while others have uncompilable edits in src/)
#   BUILD_PATCHES=  space-separated patch files (-p1) applied to that archive before building
#                   (experiments, e.g. bench/patches/*.patch; the archive builds in
#                   REV_TARGET_DIR=target/e2e-rev so target/release/quell is left alone)
#   RELAY_BIN=      use this binary, build nothing
#   EXTRA_LISTS=    experiments: "domain=file ..." more lists loaded into scope domain:<domain>
#   RELAY_ENV=      extra VAR=value words for quell's environment only (e.g. MALLOC_ARENA_MAX=2)
#   KEEP_LOG=      1: keep quell's log (stderr, incl. an allocator's exit-time stats) as
#                   quell.log in RESULTS, copied after quell has stopped, without the INFO
#                   lines of each session, delivery and API batch
#   SMAPS=         seconds: also sample /proc/<quell>/smaps_rollup at this interval into
#                   quell-smaps.tsv (Rss, Anonymous, Private_Dirty, Swap; kB)
#   TIMEOUT=300     per load run (load.sh), e.g. 90 when quell is expected to stall
#   QUIET_WAIT=60   longest wait for an idle machine before each load run (loadgen.py
#                   --quiet-wait; its default 180 s makes a busy box's suite very long)
#   HARNESS=/work/shared/bench  PFB_DIR=/tmp/pfbench
#   RESULTS=bench/results/e2e-<timestamp>
# Bounded: every load run has the harness's 300 s timeout; R=3 takes ~10-15 min on an idle
# 2-core machine (the harness waits up to 180 s per run for other work to stop).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HARNESS=${HARNESS:-/work/shared/bench}
export PFB_DIR=${PFB_DIR:-/tmp/pfbench}
SMTP_PORT=${SMTP_PORT:-2526}
UPSTREAM_PORT=2600
UPSTREAM_CONNECTIONS=${UPSTREAM_CONNECTIONS:-20}
SUPPRESS_N=${SUPPRESS_N:-100000}
SUPPRESS_DOMAIN=${SUPPRESS_DOMAIN:-bench.test}
PHASES=${PHASES:-"latency phys pf100k ext"}
export R=${R:-3} RETRIES=${RETRIES:-1} M=${M:-20000} C=${C:-20} SIZE=${SIZE:-4096}
BUILD_REV=${BUILD_REV:-}
BUILD_PATCHES=${BUILD_PATCHES:-}
export TIMEOUT=${TIMEOUT:-300}
QUIET_WAIT=${QUIET_WAIT:-60}
RELAY_BIN=${RELAY_BIN:-}
RELAY_LOG=${RELAY_LOG:-info}
RELAY_ENV=${RELAY_ENV:-}
KEEP_LOG=${KEEP_LOG:-}
SMAPS=${SMAPS:-}
EXTRA_LISTS=${EXTRA_LISTS:-}
RESULTS=${RESULTS:-$ROOT/bench/results/e2e-$(date +%Y%m%d-%H%M%S)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
REV_TARGET_DIR=${REV_TARGET_DIR:-$CARGO_TARGET_DIR/e2e-rev}

log() { echo "[$(date +%H:%M:%S)] e2e: $*" >&2; }
die() { log "$*"; exit 1; }
listening() { ss -Hltn "sport = :$1" | grep -q .; }

for t in smtp-source smtp-sink swaks postfix python3 ss; do
    command -v "$t" >/dev/null || die "$t missing: run $HARNESS/install.sh"
done
listening "$SMTP_PORT" && die "port $SMTP_PORT is taken"
listening "$UPSTREAM_PORT" && die "127.0.0.1:$UPSTREAM_PORT is taken (a sink from another run?)"
listening 2525 && die "127.0.0.1:2525 is taken (the Postfix instance of another run?)"

mkdir -p "$RESULTS"
WORK=$(mktemp -d /tmp/quell-e2e.XXXXXX)
QPID= SAMPLER= SMAPS_SAMPLER= RB=
cleanup() {
    local rc=$?
    if [[ -n $RB ]] && kill -0 "$RB" 2>/dev/null; then
        # run-baseline.sh runs in its own process group (setsid below): stop that group, then
        # the sink and Postfix instance it started (by their recorded pids).
        log "stopping run-baseline.sh (process group $RB)"
        kill -TERM -- "-$RB" 2>/dev/null || true
        sleep 2
        "$HARNESS/postfix-relay.sh" stop >&2 || true
        "$HARNESS/sink.sh" stop >&2 || true
    fi
    if [[ -n $SAMPLER ]] && kill -0 "$SAMPLER" 2>/dev/null; then kill "$SAMPLER" 2>/dev/null || true; fi
    if [[ -n $SMAPS_SAMPLER ]] && kill -0 "$SMAPS_SAMPLER" 2>/dev/null; then kill "$SMAPS_SAMPLER" 2>/dev/null || true; fi
    if [[ -n $QPID ]] && [[ -d /proc/$QPID ]] && [[ $(readlink "/proc/$QPID/exe") == "$WORK/quell" ]]; then
        log "stopping quell (pid $QPID)"
        kill -TERM "$QPID" 2>/dev/null || true
        for _ in $(seq 1 400); do [[ -d /proc/$QPID ]] || break; sleep 0.1; done
        [[ -d /proc/$QPID ]] && { log "quell $QPID still alive after 40 s; SIGKILL"; kill -KILL "$QPID" 2>/dev/null || true; }
        wait "$QPID" 2>/dev/null || true
    fi
    if [[ -n $KEEP_LOG && -f $WORK/quell.log ]]; then  # less the per-session/message/batch INFO lines
        grep -Ev ' INFO (smtp\{|delivery\{|quell::http::mailgun::add: suppressions)' "$WORK/quell.log" >"$RESULTS/quell.log" || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 1. build
if [[ -n $RELAY_BIN ]]; then
    cp "$RELAY_BIN" "$WORK/quell"
    echo "binary: $RELAY_BIN${RELAY_ENV:+ (env: $RELAY_ENV)}" >"$RESULTS/quell-version.txt"
elif [[ -n $BUILD_REV || -n $BUILD_PATCHES ]]; then
    rev=$(git -C "$ROOT" rev-parse --short "${BUILD_REV:-HEAD}")
    log "building quell $rev (git archive)${BUILD_PATCHES:+ + patches $BUILD_PATCHES} in release"
    mkdir "$WORK/src"
    git -C "$ROOT" archive "$rev" | tar -x -C "$WORK/src"
    for p in $BUILD_PATCHES; do
        patch -d "$WORK/src" -p1 --quiet <"$p" || die "patch $p does not apply to $rev"
    done
    # Its own target dir (deps built once), so target/release/quell stays the working tree's.
    (cd "$WORK/src" && CARGO_TARGET_DIR=$REV_TARGET_DIR cargo build --release --bin quell) >&2
    cp "$REV_TARGET_DIR/release/quell" "$WORK/quell"
    echo "commit: $rev (git archive)${BUILD_PATCHES:+ + $(for p in $BUILD_PATCHES; do basename "$p"; done | paste -sd' ')}" >"$RESULTS/quell-version.txt"
    for p in $BUILD_PATCHES; do cp "$p" "$RESULTS/"; done
else
    rev=$(git -C "$ROOT" rev-parse --short HEAD)
    dirty=$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock | wc -l)
    log "building the working tree ($rev, $dirty modified files in src/Cargo) in release"
    (cd "$ROOT" && cargo build --release --bin quell) >&2
    cp "$CARGO_TARGET_DIR/release/quell" "$WORK/quell"
    echo "commit: $rev working tree, $dirty modified/untracked files under src/, Cargo.*" >"$RESULTS/quell-version.txt"
fi
rm -rf "$WORK/src"

# ---- 2. the suppression list
LIST=$(SUPPRESS_N=$SUPPRESS_N "$HARNESS/postfix-relay.sh" map | tail -1)
[[ -s $LIST ]] || die "no list at $LIST"

# ---- 3. start quell
HTTP_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
API_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
sed -e "s|@SMTP_PORT@|$SMTP_PORT|; s|@UPSTREAM_PORT@|$UPSTREAM_PORT|; s|@UPSTREAM_CONNECTIONS@|$UPSTREAM_CONNECTIONS|" \
    -e "s|@HTTP_PORT@|$HTTP_PORT|; s|@API_KEY@|$API_KEY|; s|@DATA_DIR@|$WORK/data|" \
    "$ROOT/bench/quell-bench.toml.in" >"$WORK/quell.toml"
sed "s|$API_KEY|<random>|" "$WORK/quell.toml" >"$RESULTS/quell.toml"
# quell reads QUELL_* variables as config overrides: start it without any from this shell.
unset_quell=()
for v in $(compgen -e | grep '^QUELL_' || true); do unset_quell+=(-u "$v"); done
env "${unset_quell[@]}" "$WORK/quell" check-config -c "$WORK/quell.toml" >&2
env "${unset_quell[@]}" RUST_LOG="$RELAY_LOG" $RELAY_ENV "$WORK/quell" serve -c "$WORK/quell.toml" >"$WORK/quell.log" 2>&1 </dev/null &
QPID=$!
BASE=http://127.0.0.1:$HTTP_PORT
for _ in $(seq 1 100); do
    curl -fs "$BASE/readyz" >/dev/null 2>&1 && break
    [[ -d /proc/$QPID ]] || { tail -20 "$WORK/quell.log" >&2; die "quell exited"; }
    sleep 0.1
done
curl -fs "$BASE/readyz" >/dev/null || die "quell not ready; see $WORK/quell.log"
log "quell pid $QPID: smtp 127.0.0.1:$SMTP_PORT, http $BASE, store $WORK/data, upstream.connections=$UPSTREAM_CONNECTIONS"

# RSS sampler: epoch seconds, VmRSS KiB, thread count, RssAnon KiB and RssFile KiB of the
# quell pid, once a second.
( while [[ -r /proc/$QPID/status ]]; do
      st=$(awk '/^VmRSS/{r=$2} /^Threads/{t=$2} /^RssAnon/{a=$2} /^RssFile/{f=$2} END{print r, t, a, f}' "/proc/$QPID/status" 2>/dev/null) || break
      echo "$(date +%s.%N) $st"
      sleep 1
  done ) >"$RESULTS/quell-rss.tsv" 2>/dev/null &
SAMPLER=$!
if [[ -n $SMAPS ]]; then
    ( while [[ -r /proc/$QPID/smaps_rollup ]]; do
          st=$(awk '/^(Rss|Anonymous|Private_Dirty|Swap):/{v[$1]=$2} END{print v["Rss:"], v["Anonymous:"], v["Private_Dirty:"], v["Swap:"]}' \
               "/proc/$QPID/smaps_rollup" 2>/dev/null) || break
          echo "$(date +%s.%N) $st"
          sleep "$SMAPS"
      done ) >"$RESULTS/quell-smaps.tsv" 2>/dev/null &
    SMAPS_SAMPLER=$!
fi

# ---- 4. load the list through the HTTP API
log "loading $LIST into scope domain:$SUPPRESS_DOMAIN (batches of 1000)"
python3 "$ROOT/bench/load_suppressions.py" --url "$BASE" --key "$API_KEY" --domain "$SUPPRESS_DOMAIN" "$LIST" \
    | tee "$RESULTS/suppression-load.json" >&2
for x in $EXTRA_LISTS; do  # experiments only: more lists, other scopes (domain=file)
    log "loading ${x#*=} into scope domain:${x%%=*} (EXTRA_LISTS)"
    python3 "$ROOT/bench/load_suppressions.py" --url "$BASE" --key "$API_KEY" --domain "${x%%=*}" "${x#*=}" \
        | tee -a "$RESULTS/extra-lists-load.json" >&2
done
echo "{\"rss_kib_after_load\": $(awk '/^VmRSS/{print $2}' /proc/$QPID/status)}" >>"$RESULTS/suppression-load.json"

# ---- 5. are the entries where the harness needs them?
auth=(-u "api:$API_KEY")
first=$(sed -n 1p "$LIST") last=$(tail -1 "$LIST")
for a in "$first" "$last"; do
    curl -fs "${auth[@]}" "$BASE/v3/$SUPPRESS_DOMAIN/unsubscribes/$a" >/dev/null || die "$a not found through the API"
done
probe() { # from to expected-code: the server's reply to RCPT TO
    local out
    out=$(swaks --server 127.0.0.1 --port "$SMTP_PORT" --from "$1" --to "$2" --quit-after RCPT --timeout 10 2>&1 \
          | awk '/-> RCPT TO/ { f = 1; next } f && /^<(-|\*\*) / { print; exit }') || true
    [[ $out == *" $3 "* ]] || die "probe $1 -> $2: expected $3, got: ${out:-nothing}"
    log "probe $1 -> $2: ${out#<* }"
}
probe "bench-sender@$SUPPRESS_DOMAIN" "$first" 550
probe "bench-sender@$SUPPRESS_DOMAIN" "11user@example.com" 250
probe "someone@other-domain.test" "$first" 250

# ---- 6. the harness
log "run-baseline.sh PHASES=\"$PHASES\" R=$R RETRIES=$RETRIES M=$M C=$C SIZE=$SIZE -> $RESULTS"
metrics_before=$(curl -fs "$BASE/metrics")
echo "$metrics_before" >"$RESULTS/quell-metrics-before.txt"
set +e
PHASES=$PHASES EXT_NAME=quell EXT_PORT=$SMTP_PORT EXT_PID=$QPID EXT_SUPPRESS_N=$SUPPRESS_N \
    RESULTS=$RESULTS HARNESS=$HARNESS LOAD_ARGS="--quiet-wait $QUIET_WAIT" setsid "$ROOT/bench/harness/run-baseline.sh" &
RB=$!
wait "$RB"
hrc=$?
RB=
set -e
[[ $hrc == 0 ]] || log "run-baseline.sh exited $hrc"

# ---- 7. cross-checks, stop, report
curl -fs "$BASE/metrics" >"$RESULTS/quell-metrics-after.txt" || log "no metrics after the run"
du -sk "$WORK/data" | awk '{print "store_kib", $1}' >"$RESULTS/quell-store-size.txt"
kill "$SAMPLER" 2>/dev/null || true; SAMPLER=
[[ -n $SMAPS_SAMPLER ]] && { kill "$SMAPS_SAMPLER" 2>/dev/null || true; SMAPS_SAMPLER=; }
{
    echo "log lines: $(wc -l <"$WORK/quell.log")  bytes: $(stat -c %s "$WORK/quell.log")"
    echo "WARN lines: $(grep -c ' WARN ' "$WORK/quell.log" || true)  ERROR lines: $(grep -c ' ERROR ' "$WORK/quell.log" || true)"
    grep -E ' (WARN|ERROR) ' "$WORK/quell.log" | head -20 || true
    echo "--- last lines"; tail -5 "$WORK/quell.log"
} >"$RESULTS/quell-log-summary.txt"
python3 "$ROOT/bench/e2e_report.py" "$RESULTS" | tee "$RESULTS/report.md"
python3 "$ROOT/bench/rss_summary.py" "$RESULTS" | tee -a "$RESULTS/report.md"
log "results in $RESULTS"
exit "$hrc"
