#!/usr/bin/env bash
# Fan-out memory check (SPEC §4): one ~24 MiB message carrying an UNSUB tag to 100 recipients
# becomes 100 personalised copies. Prints quell's peak resident memory (VmHWM) and the store's
# size on disk while the copies go out. Needs swaks and Postfix's smtp-sink.
# Usage: scripts/fanout-memory.sh [path/to/quell]   (default target/release/quell)
set -euo pipefail
BIN=${1:-target/release/quell}
WORK=$(mktemp -d)
SMTP=127.0.0.1:2626 HTTP=127.0.0.1:8126 SINK=127.0.0.1:2700
cleanup() { kill "${QPID:-}" "${SPID:-}" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

# smtp-sink refuses to run as root without -u.
SINK_USER=()
[ "$(id -u)" = 0 ] && SINK_USER=(-u "$(id -un nobody 2>/dev/null || echo nobody)")
smtp-sink "${SINK_USER[@]}" -c "$SINK" 1000 >/dev/null 2>&1 & SPID=$!
sleep 0.5
kill -0 "$SPID" || { echo "smtp-sink did not start" >&2; exit 1; }
cat > "$WORK/quell.toml" <<TOML
[smtp]
listen = "$SMTP"
[upstream]
host = "127.0.0.1"
port = ${SINK##*:}
connections = 8
[queue]
retry_initial = "1s"
[http]
listen = "$HTTP"
[storage]
path = "$WORK/data"
TOML
RUST_LOG=warn "$BIN" serve -c "$WORK/quell.toml" 2>"$WORK/quell.log" & QPID=$!
until curl -sf "http://$HTTP/readyz" >/dev/null; do sleep 0.2; done

# ~24 MiB of text with one tag near the top.
python3 - "$WORK/body.txt" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("Hello,\r\nLeave: *|UNSUB:https://app.example/bye|*\r\n")
    line = "x" * 76 + "\r\n"
    for _ in range(24 * 1024 * 1024 // len(line)):
        f.write(line)
PY
RCPTS=$(seq -f 'r%g@example.net' 1 100 | paste -sd,)
start=$(date +%s.%N)
swaks --server "$SMTP" --from news@example.com --to "$RCPTS" --body @"$WORK/body.txt" \
      --header "Subject: fan-out" >/dev/null
peak_disk=0
while :; do
  sent=$(curl -s "http://$HTTP/metrics" | awk '/^quell_recipients_forwarded_total/ {print $2}')
  disk=$(du -sk "$WORK/data" | cut -f1)
  (( disk > peak_disk )) && peak_disk=$disk
  [ "${sent:-0}" -ge 100 ] && break
  sleep 0.2
done
end=$(date +%s.%N)
hwm=$(awk '/VmHWM/ {print $2}' /proc/$QPID/status)
printf 'message: %s MiB, 100 recipients, 100 copies forwarded in %.1f s\n' \
  "$(( $(stat -c %s "$WORK/body.txt") / 1048576 ))" "$(echo "$end - $start" | bc)"
printf 'quell peak RSS (VmHWM): %d MiB; store on disk at most: %d MiB\n' $((hwm / 1024)) $((peak_disk / 1024))
