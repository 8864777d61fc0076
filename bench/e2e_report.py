#!/usr/bin/env python3
"""e2e_report.py - the Performance tables for one bench/e2e.sh run.

Usage: e2e_report.py RESULTS_DIR
Reads RESULTS_DIR/{load.jsonl, latency.jsonl, quell-rss.tsv, suppression-load.json,
quell-metrics-before.txt, quell-metrics-after.txt, env.txt, quell-version.txt} and prints
markdown: throughput (median [min-max] of the clean runs, all runs counted), CPU per message,
single-message latency, quell's RSS during its runs, and the refusal checks.
"""
import json
import os
import re
import statistics
import sys
import time

FOREIGN_LIMIT = 0.2  # cores, as loadgen.py's --foreign-limit


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def mmm(v, fmt="{:.0f}"):
    v = [x for x in v if x is not None]
    if not v:
        return "-"
    if len(v) == 1:
        return fmt.format(v[0])
    return f"{fmt.format(statistics.median(v))} [{fmt.format(min(v))}–{fmt.format(max(v))}]"


def clean(r):
    return bool(r.get("ok")) and r.get("foreign_cores") is not None and r["foreign_cores"] < FOREIGN_LIMIT


def relay_cpu(r):
    """(relay name, CPU seconds) of the relay tree, or None."""
    c = r.get("cpu_s") or {}
    for k in ("relay", "postfix"):
        if c.get(k) is not None:
            return k, c[k]
    return None


def metrics(path):
    out = {}
    if os.path.exists(path):
        for line in open(path):
            m = re.match(r"^([a-z_]+)(?:\{[^}]*\})?\s+([0-9.eE+-]+)$", line.strip())
            if m:
                out[m.group(1)] = out.get(m.group(1), 0) + float(m.group(2))
    return out


def main():
    d = sys.argv[1]
    loads = read_jsonl(os.path.join(d, "load.jsonl"))
    lats = read_jsonl(os.path.join(d, "latency.jsonl"))
    rss = []
    p = os.path.join(d, "quell-rss.tsv")
    if os.path.exists(p):
        for line in open(p):
            parts = line.split()
            if len(parts) >= 2:
                rss.append((float(parts[0]), int(parts[1]), int(parts[2]) if len(parts) > 2 else None))

    print("### End to end: quell vs Postfix (same run)\n")
    env = open(os.path.join(d, "env.txt")).read().strip().splitlines() if os.path.exists(os.path.join(d, "env.txt")) else []
    ver = open(os.path.join(d, "quell-version.txt")).read().strip() if os.path.exists(os.path.join(d, "quell-version.txt")) else "?"
    print(f"quell {ver}; " + "; ".join(l for l in env if l.startswith(("date", "R=")) or "MiB" in l or l.strip().isdigit()))
    print()

    groups = {}
    for r in loads:
        groups.setdefault(r["label"], []).append(r)
    print("| scenario | runs clean/ok/all | e2e msgs/s delivered | client tx/s (incl. refused) | relay CPU ms/msg | relay CPU cores | sink CPU s | machine busy (of 2) | foreign cores (all runs) | refused / expected |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    med = {}
    for label, rs in groups.items():
        good = [r for r in rs if clean(r)]
        use = good or [r for r in rs if r.get("ok")]
        cpu_ms, cpu_cores = [], []
        for r in use:
            rc = relay_cpu(r)
            if rc and r.get("accepted"):
                cpu_ms.append(1000.0 * rc[1] / r["accepted"])
                cpu_cores.append(rc[1] / r["elapsed_for_cpu_s"])
        refused = sorted({r.get("rejected") for r in rs})
        expected = rs[0]["messages"] // 10 if rs[0]["suppress_pct"] == 10 else 0
        e2e = [r["e2e_per_s"] for r in use]
        med[label] = (statistics.median(e2e) if e2e else None,
                      statistics.median(cpu_ms) if cpu_ms else None)
        print("| {} | {}/{}/{} | {}{} | {} | {} | {} | {} | {} | {} | {} / {} |".format(
            label, len(good), sum(1 for r in rs if r.get("ok")), len(rs),
            mmm(e2e), "" if good else " (not clean)",
            mmm([r["client_tps"] for r in use]),
            mmm(cpu_ms, "{:.3f}") if cpu_ms else "-",
            mmm(cpu_cores, "{:.2f}") if cpu_cores else "-",
            mmm([(r.get("cpu_s") or {}).get("sink") for r in use], "{:.2f}"),
            mmm([r.get("sys_busy_cores") for r in use], "{:.2f}"),
            mmm([r.get("foreign_cores") for r in rs], "{:.2f}"),
            ",".join(str(x) for x in refused), expected))
    print()
    for sc in ("0pct-K0", "10pct-K0", "0pct-K1"):
        q, p = med.get(f"quell-{sc}"), med.get(f"pf100k-{sc}")
        if q and p and q[0] and p[0]:
            line = f"- {sc}: quell / Postfix throughput = {q[0]:.0f} / {p[0]:.0f} = **{q[0] / p[0]:.2f}×**"
            if q[1] and p[1]:
                line += f"; CPU per delivered message {q[1]:.3f} ms vs {p[1]:.3f} ms"
            print(line)
    print()

    # Failures worth a look.
    bad = [r for r in loads if not r.get("ok")]
    for r in bad:
        print(f"- run {r['label']} at {r['time']} NOT ok: accepted={r.get('accepted')} sink_delta={r.get('sink_delta')} "
              f"rejected={r.get('rejected')} e2e_s={r.get('e2e_s')} other_errors={r.get('n_other_errors')} {r.get('other_errors')}")
    if bad:
        print()

    if lats:
        print("### Single-message latency (swaks, median of 20 [p90], ms)\n")
        print("| relay | DATA-end → 250 | DATA-end → in the sink | whole session | fsync probe (workdir fs) | replies |")
        print("|---|---|---|---|---|---|")
        for r in lats:
            def s(k):
                v = r.get(k) or {}
                return f"{v.get('median')} [{v.get('p90')}]" if v else "-"
            print(f"| {r['label']} | {s('data_to_250_ms')} | {s('e2e_ms')} | {s('session_ms')} | {s('fsync_probe_ms')} | {'; '.join(r.get('replies', []))[:60]} |")
        print()

    if rss:
        print("### quell resident memory (VmRSS, sampled every second)\n")
        print("| when | max RSS MiB | max threads |")
        print("|---|---|---|")
        p = os.path.join(d, "suppression-load.json")
        if os.path.exists(p):
            for line in open(p):
                j = json.loads(line)
                if "rss_kib_after_load" in j:
                    print(f"| after loading the suppression list (idle) | {j['rss_kib_after_load'] / 1024:.0f} | |")
        for label, rs in groups.items():
            if not label.startswith("quell"):
                continue
            peaks, threads = [], []
            for r in rs:
                end = time.mktime(time.strptime(r["time"], "%Y-%m-%dT%H:%M:%S")) + 1
                start = end - r["elapsed_for_cpu_s"] - 2
                w = [(k, n) for t, k, n in rss if start <= t <= end]
                if w:
                    peaks.append(max(k for k, _ in w) / 1024)
                    if any(n is not None for _, n in w):
                        threads.append(max(n for _, n in w if n is not None))
            if peaks:
                print(f"| during {label} runs | {mmm(peaks)} | {mmm(threads) if threads else '-'} |")
        nt = [n for _, _, n in rss if n is not None]
        print(f"| whole run, max | {max(k for _, k, _ in rss) / 1024:.0f} | {max(nt) if nt else '-'} |")
        print()

    p = os.path.join(d, "suppression-load.json")
    if os.path.exists(p):
        for line in open(p):
            j = json.loads(line)
            if "entries" in j:
                print(f"Suppression list loaded through the HTTP API: {j['entries']} entries in {j['batches']} requests, "
                      f"{j['seconds']} s ({j['entries_per_s']:.0f} entries/s), scope {j['scope']}.\n")

    mb, ma = metrics(os.path.join(d, "quell-metrics-before.txt")), metrics(os.path.join(d, "quell-metrics-after.txt"))
    if ma:
        delta = {k: ma.get(k, 0) - mb.get(k, 0) for k in ma}
        q = [r for r in loads if r["label"].startswith("quell")]
        h_acc = sum(r.get("accepted") or 0 for r in q)
        h_rej = sum(r.get("rejected") or 0 for r in q)
        h_sink = sum(r.get("sink_delta") or 0 for r in q)
        print("Cross-check, quell's /metrics over the harness phase vs the harness's counts of the quell load runs "
              "(the latency phase adds ~23 messages to quell's counters):\n")
        for k in sorted(delta):
            if "latency" in k:
                continue
            print(f"- {k}: +{delta[k]:.0f}")
        print(f"- harness: accepted {h_acc}, refused (5xx at RCPT) {h_rej}, reached the sink {h_sink}")
        print()


if __name__ == "__main__":
    main()
