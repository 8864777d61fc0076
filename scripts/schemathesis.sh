#!/usr/bin/env bash
# Property-based API test: schemathesis generates requests from /openapi.json and checks that
# quell never answers 5xx and that every answer matches the document (status code, content type,
# schema).
#
# quell runs from its binary with a temp config: a key, a temp store, SMTP and HTTP on free
# loopback ports, and as its upstream a tiny SMTP sink (below) that accepts mail for
# ok@example.net and answers 451 for defer@example.net. One message to both, sent before the
# run, gives schemathesis real values to mix into what it generates: an unsubscribe token (from
# the delivered copy), a queue id (the deferred copy stays queued) and md_ids.
#
#   scripts/schemathesis.sh                 # builds and runs target/debug/quell
#   BINARY=target/release/quell scripts/schemathesis.sh   # an already built binary
#   MAX_EXAMPLES=200 SEED=7 scripts/schemathesis.sh
#   SCHEMATHESIS_ARGS="--include-path-regex ^/u/" scripts/schemathesis.sh   # extra options
#
# Needs schemathesis on PATH: pip install schemathesis==4.32.5 (the version this was run with),
# and python3 (which schemathesis needs anyway) for the sink and the SMTP client.
# Exits non-zero when schemathesis finds a failure, when quell logs an error, or when quell does
# not start; always stops quell and the sink.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BINARY:-}
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
sink=
stop() {
  for p in $pid $sink; do
    if kill -0 "$p" 2>/dev/null; then
      kill -TERM "$p" 2>/dev/null || true
      wait "$p" 2>/dev/null || true
    fi
  done
  rm -rf "$work"
}
trap stop EXIT

# Waits up to 30 s for `test` (a shell command) to succeed.
wait_for() {
  for _ in $(seq 1 300); do
    if eval "$1"; then return 0; fi
    sleep 0.1
  done
  return 1
}

# The upstream: prints its port, appends every message to $1; 451 at RCPT for "defer" addresses.
cat >"$work/sink.py" <<'EOF'
import asyncio, sys

out = open(sys.argv[1], "ab")

async def session(reader, writer):
    writer.write(b"220 sink ESMTP\r\n")
    in_data, lines = False, []
    while line := await reader.readline():
        if in_data:
            if line in (b".\r\n", b".\n"):
                in_data = False
                out.write(b"".join(lines) + b"\n.\n")
                out.flush()
                lines = []
                writer.write(b"250 2.0.0 ok\r\n")
            else:
                lines.append(line)
                continue
        else:
            verb = line[:4].upper()
            if verb == b"RCPT" and b"defer" in line.lower():
                writer.write(b"451 4.3.0 try again later\r\n")
            elif verb == b"DATA":
                in_data = True
                writer.write(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 2.0.0 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 ok\r\n")
        await writer.drain()
    writer.close()

async def main():
    server = await asyncio.start_server(session, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
EOF
python3 "$work/sink.py" "$work/mail.txt" >"$work/sink.port" &
sink=$!
wait_for '[ -s "$work/sink.port" ]' || { echo "the SMTP sink did not start" >&2; exit 1; }
upstream_port=$(head -n1 "$work/sink.port")

# Retries far apart: the deferred copy stays queued through the run.
cat >"$work/quell.toml" <<EOF
[smtp]
listen = "127.0.0.1:0"
[upstream]
host = "127.0.0.1"
port = $upstream_port
[queue]
retry_initial = "1h"
retry_max = "1h"
[http]
listen = "127.0.0.1:0"
api_keys = ["$KEY"]
[storage]
path = "$work/data"
[log]
format = "json"
EOF

# QUELL_* variables would override the config (quell reads them as keys): start without them.
unset_quell=()
for name in $(env | sed -n 's/^\(QUELL_[A-Za-z0-9_]*\)=.*/\1/p'); do
  unset_quell+=(-u "$name")
done
env "${unset_quell[@]}" "$BIN" serve -c "$work/quell.toml" 2>"$work/quell.log" &
pid=$!

# The addresses quell logged.
listening() {
  grep -o "\"message\":\"$1 listening\",\"addr\":\"[^\"]*\"" "$work/quell.log" | head -n1 |
    sed 's/.*"addr":"\([^"]*\)"/\1/'
}
ready() {
  kill -0 "$pid" 2>/dev/null || { cat "$work/quell.log" >&2; echo "quell exited" >&2; exit 1; }
  addr=$(listening http) && [ -n "$addr" ] && curl -fsS "http://$addr/readyz" >/dev/null 2>&1
}
addr=
wait_for ready || { cat "$work/quell.log" >&2; echo "quell not ready" >&2; exit 1; }
smtp=$(listening smtp)
echo "quell ready at http://$addr (pid $pid), upstream sink on port $upstream_port"

# One message, two recipients: ok@ is delivered (its copy carries a token), defer@ stays queued.
queue_id=$(python3 - "$smtp" <<'EOF'
import smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
s = smtplib.SMTP(host, int(port))
s.ehlo("schemathesis.test")
s.mail("news@example.com")
for rcpt in ("ok@example.net", "defer@example.net"):
    s.rcpt(rcpt)
code, reply = s.data(
    b"From: news@example.com\r\nTo: ok@example.net\r\nSubject: seed\r\n\r\n"
    b"Bye: *|UNSUB:https://example.com/bye|*\r\n"
)
s.quit()
assert code == 250, reply
print(reply.decode().rsplit(" ", 1)[-1])
EOF
)
wait_for 'grep -q "/u/" "$work/mail.txt" 2>/dev/null' || { echo "no message reached the sink" >&2; exit 1; }
token=$(grep -o '/u/[A-Za-z0-9_-]*' "$work/mail.txt" | head -n1 | cut -c4-)
echo "seeded: queue id $queue_id, token ${token:0:16}…"

# Real values, mixed into what schemathesis generates.
cat >"$work/schemathesis.toml" <<EOF
[dictionaries]
tokens = { values = ["$token"] }
ids = { values = ["$queue_id", "$queue_id.1", "$queue_id.2"] }
keys = { values = ["$KEY"] }

[parameters]
"path.token" = { dictionary = "tokens", probability = 0.5 }
"path.id" = { dictionary = "ids", probability = 0.5 }
"body.key" = { dictionary = "keys", probability = 0.5 }
EOF

# Operations left out because of server bugs found by this run (reported, not yet fixed):
# none at the moment. Add `--exclude-operation-id ID` here, each with a comment naming the
# finding.
excluded=()

status=0
(cd "$work" && timeout 600 schemathesis --config-file "$work/schemathesis.toml" run \
  "http://$addr/openapi.json" \
  -H "Authorization: Bearer $KEY" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "$MAX_EXAMPLES" \
  --seed "$SEED" \
  --request-timeout 15 \
  --generation-database none \
  --no-color \
  ${SCHEMATHESIS_ARGS:-} \
  "${excluded[@]}") || status=$?

if grep -q '"level":"ERROR"' "$work/quell.log"; then
  echo "quell logged errors during the run:" >&2
  grep '"level":"ERROR"' "$work/quell.log" | head -n 20 >&2
  [ "$status" -ne 0 ] || status=1
fi
exit "$status"
