#!/usr/bin/env python3
"""load_suppressions.py - loads a suppression list (one address per line) into quell through
its Mailgun-compatible HTTP API: POST /v3/{domain}/unsubscribes, JSON arrays of at most 1000
records, Basic auth api:<key>. Entries land in scope domain:{domain}, which applies to every
envelope sender at that domain (the harness's smtp-source sends as bench-sender@bench.test).

Usage: load_suppressions.py --url http://127.0.0.1:PORT --key KEY --domain bench.test FILE
Prints one JSON line: entries, batches, seconds, entries/s.
"""
import argparse
import base64
import json
import sys
import time
import urllib.request


def post(url, key, body):
    req = urllib.request.Request(url, data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", "Basic " + base64.b64encode(f"api:{key}".encode()).decode())
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, r.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--domain", required=True)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("file")
    a = ap.parse_args()
    with open(a.file) as f:
        addresses = [l.strip() for l in f if l.strip()]
    url = f"{a.url}/v3/{a.domain}/unsubscribes"
    t0 = time.monotonic()
    batches = 0
    for i in range(0, len(addresses), a.batch):
        chunk = addresses[i:i + a.batch]
        body = json.dumps([{"address": x} for x in chunk]).encode()
        try:
            status, text = post(url, a.key, body)
        except urllib.error.HTTPError as e:
            sys.exit(f"batch {batches} (from line {i + 1}): HTTP {e.code}: {e.read()[:300]!r}")
        if status != 200:
            sys.exit(f"batch {batches}: HTTP {status}: {text[:300]!r}")
        batches += 1
    dt = time.monotonic() - t0
    print(json.dumps({"entries": len(addresses), "batches": batches, "seconds": round(dt, 2),
                      "entries_per_s": round(len(addresses) / dt, 1), "scope": f"domain:{a.domain}"}))


if __name__ == "__main__":
    main()
