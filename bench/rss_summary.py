#!/usr/bin/env python3
"""rss_summary.py RESULTS_DIR - quell's resident memory over one e2e.sh run, in MiB.

Reads quell-rss.tsv (epoch, VmRSS KiB, threads[, RssAnon KiB, RssFile KiB]) and load.jsonl.
Prints, for the quell load runs: peak (max over all samples in the run's window), steady (the
median of the samples in the second half of each run's window, i.e. once the run has warmed
up), and the idle RSS after the last run (the last sample). Also smaps_rollup's peak, when
e2e.sh sampled it (SMAPS=).
"""
import json
import os
import statistics
import sys
import time


def windows(d):
    for line in open(os.path.join(d, "load.jsonl")):
        r = json.loads(line)
        if not r["label"].startswith("quell"):
            continue
        end = time.mktime(time.strptime(r["time"], "%Y-%m-%dT%H:%M:%S")) + 1
        yield r, end - r["elapsed_for_cpu_s"] - 2, end


def main():
    d = sys.argv[1]
    rss = []
    for line in open(os.path.join(d, "quell-rss.tsv")):
        p = line.split()
        if len(p) >= 2:
            rss.append((float(p[0]), int(p[1]) / 1024, int(p[3]) / 1024 if len(p) > 3 else None))
    if not rss:
        return
    print("### quell RSS: peak and steady (MiB)\n")
    print("| run | e2e msgs/s | clean | peak RSS | steady RSS (median, 2nd half) | peak RssAnon |")
    print("|---|---:|---|---:|---:|---:|")
    steady_all, peak_all = [], []
    for r, start, end in windows(d):
        w = [s for s in rss if start <= s[0] <= end]
        if not w:
            continue
        half = [s for s in w if s[0] >= (start + end) / 2] or w
        peak, steady = max(s[1] for s in w), statistics.median(s[1] for s in half)
        anon = [s[2] for s in w if s[2] is not None]
        peak_all.append(peak)
        steady_all.append(steady)
        anon = f"{max(anon):.0f}" if anon else "-"
        print(f"| {r['label']} {r['time'][11:]} | {r['e2e_per_s']:.0f} | {r.get('clean')} | {peak:.0f} | {steady:.0f} | {anon} |")
    print(f"\nWhole run: peak {max(s[1] for s in rss):.0f} MiB; steady under load {min(steady_all):.0f}–{max(steady_all):.0f} MiB; "
          f"last sample (idle, after the runs) {rss[-1][1]:.0f} MiB.")
    p = os.path.join(d, "quell-smaps.tsv")
    if os.path.exists(p):
        sm = [list(map(float, l.split())) for l in open(p) if len(l.split()) >= 5]
        if sm:
            top = max(sm, key=lambda s: s[1])
            print(f"smaps_rollup at the peak: Rss {top[1] / 1024:.0f} MiB, Anonymous {top[2] / 1024:.0f} MiB, "
                  f"Private_Dirty {top[3] / 1024:.0f} MiB, Swap {top[4] / 1024:.0f} MiB.")
    print()


if __name__ == "__main__":
    main()
