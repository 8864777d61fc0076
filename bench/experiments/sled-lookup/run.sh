#!/usr/bin/env bash
# run.sh - the experiment matrix, each run with the machine's busy cores noted.
# Usage: bench/experiments/sled-lookup/run.sh [cache MiB list] [modes]
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HERE/../../../target/experiments}
(cd "$HERE" && cargo build --release --offline -q)
E=$CARGO_TARGET_DIR/release/sled-lookup-experiment
cpu() { awk '/^cpu /{b=$2+$3+$4+$7+$8+$9; t=b+$5+$6; print b, t}' /proc/stat; }
for c in ${1:-64 512}; do for m in ${2:-scan get addr}; do
    read -r b0 t0 < <(cpu)
    r=$("$E" "$c" "$m")
    read -r b1 t1 < <(cpu)
    echo "$r | machine busy $(echo "scale=2; $(nproc) * ($b1 - $b0) / ($t1 - $t0)" | bc) cores"
done; done
