#!/usr/bin/env python3
"""jeprof-attribute.py FILE.collapsed [N] - in-use bytes of a jemalloc heap profile by owner.

Input: `jeprof --collapsed --inuse_space BINARY HEAP > FILE.collapsed` (frames root→leaf, ';'
separated, then the bytes). Sums the bytes by the leaf-most frame of quell, of sled, and by
the pair (quell frame, sled frame), and prints the top N of each, in MiB.
"""
import collections
import re
import sys

n = int(sys.argv[2]) if len(sys.argv) > 2 else 15
by_quell, by_sled, by_pair = collections.Counter(), collections.Counter(), collections.Counter()
total = 0
clean = lambda f: re.sub(r"<[0-9a-f]{16}>|\[inline\]", "", f)
for line in open(sys.argv[1]):
    stack, _, v = line.rstrip("\n").rpartition(" ")
    v = int(v)
    total += v
    frames = [clean(f) for f in stack.split(";")]
    q = [f for f in frames if f.startswith(("quell::", "<quell::"))]
    s = [f for f in frames if f.startswith(("sled::", "<sled::"))]
    by_quell[q[-1] if q else "(no quell frame) " + (frames[min(len(frames) - 1, 12)] if frames else "")] += v
    by_sled[s[-1] if s else "(no sled frame)"] += v
    by_pair[(q[-1] if q else "-", s[-1] if s else "-")] += v
mib = lambda b: b / 1048576
print(f"total in use: {mib(total):.1f} MiB\n")
for title, c in (("leaf-most quell frame", by_quell), ("leaf-most sled frame", by_sled), ("(quell, sled)", by_pair)):
    print(f"## by {title}")
    for k, v in c.most_common(n):
        print(f"{mib(v):8.1f} MiB  {v / total:5.1%}  {k}")
    print()
