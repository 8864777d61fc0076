#!/usr/bin/env bash
# full-disk-soak.sh - runs each full-disk scenario of tests/it/full_disk.rs LOOPS times (default
# 10) against the debug binary the test harness builds, and prints per scenario
#   <scenario>: N/N recovered, acknowledged lost = 0, store unopenable = 0, runs that failed a check = 0
# Scenarios (each on a 32 MiB tmpfs the test mounts, so run as root; `dd` fills it to the last
# byte while three SMTP clients and one API client keep sending):
#   fill-while-flowing   store floor off: refusals only, /readyz 503, space freed -> mail and
#                        changes taken again without a restart; filled again -> SIGTERM ends
#                        it; restart with room -> every acknowledged message and change there
#   kill-9-while-full    floor 1 MiB: kill -9 while full, two restarts while full refused
#                        (exit 1, store byte-identical), restart with room -> all delivered
#   start-on-full-disk   floor off: three starts on a full disk (as systemd would), then a
#                        start with room opens the store and delivers everything
# Output also goes to bench/results/full-disk-soak-<timestamp>.txt.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOOPS=${LOOPS:-10}
OUT=${OUT:-$ROOT/bench/results/full-disk-soak-$(date +%Y%m%d-%H%M%S).txt}
mkdir -p "$(dirname "$OUT")"
cd "$ROOT"
[[ $(id -u) == 0 ]] || { echo "full-disk-soak.sh: needs root (tmpfs mounts)" >&2; exit 1; }
{
    echo "date: $(date -Is)  commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty')  loops: $LOOPS"
    FULL_DISK_SOAK_LOOPS=$LOOPS nice -n 19 cargo nextest run --no-capture --run-ignored only \
        -E 'test(soak_full_disk_scenarios)' 2>&1 | grep -E "^(fill-while|kill-9|start-on)|PASS|FAIL|error" || true
} | tee "$OUT"
