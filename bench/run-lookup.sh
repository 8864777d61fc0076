#!/usr/bin/env bash
# run-lookup.sh - builds and runs the `lookup` bench (benches/lookup.rs; the same as
# `cargo bench --bench lookup`) and notes what else used the CPU during the run: the machine
# has 2 cores shared with other engineers' builds. Waits (up to QUIET_WAIT=300 s) for an idle
# machine first. Output also goes to bench/results/lookup-<timestamp>.txt.
# Environment: QUELL_BENCH_N, QUELL_BENCH_LOOKUPS, QUELL_BENCH_WARMUP (see benches/lookup.rs);
# LOOKUP_BIN=<path> runs that already built bench binary instead of building the working tree
# (to interleave before/after runs on the busy machine), LABEL=<text> says what it is built from.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$ROOT/bench/results/lookup-$(date +%Y%m%d-%H%M%S).txt}
QUIET_WAIT=${QUIET_WAIT:-300}
mkdir -p "$(dirname "$OUT")"
cd "$ROOT"
if [[ -n ${LOOKUP_BIN:-} ]]; then
    exe=$(realpath "$LOOKUP_BIN")
else
    exe=$(cargo bench --bench lookup --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1)
fi
[[ -x $exe ]] || { echo "run-lookup.sh: build failed" >&2; exit 1; }
cpu() { awk '/^cpu /{b=$2+$3+$4+$7+$8+$9; t=b+$5+$6; print b, t}' /proc/stat; }
busy() { # busy cores over 1 s
    local b0 t0 b1 t1; read -r b0 t0 < <(cpu); sleep 1; read -r b1 t1 < <(cpu)
    echo "$(nproc) * ($b1 - $b0) / ($t1 - $t0)" | bc -l
}
waited=0
while (( $(echo "$(busy) > 0.25" | bc) )) && (( waited < QUIET_WAIT )); do sleep 4; waited=$((waited + 5)); done
{
    if [[ -n ${LOOKUP_BIN:-} ]]; then
        echo "date: $(date -Is)  build: ${LABEL:-prebuilt binary, source not recorded}"
    else
        echo "date: $(date -Is)  commit: $(git rev-parse --short HEAD)$(git diff --quiet -- src || echo ' (src modified)')${LABEL:+  ($LABEL)}"
    fi
    echo "nproc: $(nproc)  waited for idle: ${waited}s  loadavg before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "command: cargo bench --bench lookup  (binary: ${exe#"$ROOT"/})"
} | tee "$OUT"
read -r b0 t0 < <(cpu)
s0=$(date +%s.%N)
/usr/bin/time -f 'bench process: %e s wall, %U s user, %S s sys, max RSS %M KiB' "$exe" --bench 2>&1 | tee -a "$OUT"
read -r b1 t1 < <(cpu)
s1=$(date +%s.%N)
awk -v b="$((b1 - b0))" -v t="$((t1 - t0))" -v n="$(nproc)" -v w="$(echo "$s1 - $s0" | bc)" \
    'BEGIN { printf "whole machine busy during the run: %.2f of %d cores over %.1f s (the bench itself uses ~1)\n", n*b/t, n, w }' | tee -a "$OUT"
ps -eo pcpu,comm --sort=-pcpu | sed -n 2,5p | sed 's/^/  top %cpu (lifetime avg) after: /' | tee -a "$OUT"
