#!/usr/bin/env python3
"""Summarizes FRESCO_COMM_TRACE files (PREFIX.rank<R>.jsonl, mpi/comm/exchange_trace.hpp).

Usage: python3 scripts/comm-trace-summary.py PREFIX.rank*.jsonl

Per rank: each exchange's rounds and, per interval between its phases, the median (ms) and
the total (ms) over all rounds; then the rank's totals per interval. "to_consumer_runs" is the
time the consuming stream stood still in finish(): the exposed part; "to_permission" the wait
for a receiver's free buffer, "to_arrived" the wait for the slowest source after the own puts.
"""
import collections
import json
import re
import sys

ORDER = ["to_comm_begins", "to_permission", "to_puts_done", "to_arrived", "to_consumer_waits", "to_consumer_runs"]


def main(paths):
    if not paths:
        print(__doc__)
        return 2
    for path in sorted(paths, key=lambda p: int(re.search(r"rank(\d+)", p).group(1)) if re.search(r"rank(\d+)", p) else 0):
        rows = [json.loads(line) for line in open(path) if line.strip()]
        totals = collections.Counter()
        print(f"== {path}")
        print(f"{'exchange':<58} {'rounds':>6} " + " ".join(f"{k[3:]:>22}" for k in ORDER))
        for r in rows:
            cells = []
            for k in ORDER:
                v = r["intervals"].get(k)
                cells.append(f"{v['median_ms']:9.3f}/{v['total_ms']:11.1f}" if v else f"{'-':>22}")
                if v:
                    totals[k] += v["total_ms"]
            print(f"{r['exchange'][:58]:<58} {r['rounds']:>6} " + " ".join(f"{c:>22}" for c in cells))
        print(f"{'total ms':<58} {'':>6} " + " ".join(f"{totals[k]:>22.1f}" for k in ORDER))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
