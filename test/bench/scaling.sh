#!/usr/bin/env bash
# How flvgw's CPU scales with viewers: test/bench/run.sh (flvgw only,
# unless BASELINE=1) at
# 100, 1,000 and 5,000 viewers of the 256 kbps clip, then one table of CPU
# per delivered GB (the same as CPU per viewer-Mbps, in other units), with
# and without the CPU the gateway spends with no viewer, beside what each
# write carried and cost.
#
#   test/bench/scaling.sh                 # 100, 1000, 5000 viewers
#   COUNTS="100 1000" D=20 test/bench/scaling.sh
#   BASELINE=1 test/bench/scaling.sh      # the baseline too, at each count: how
#                                         # its CPU per GB and per write move
#                                         # with the number of sockets
#
# Takes about (D + 20 s) per count, and D + 10 s more with the baseline. Everything listens on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."

COUNTS=${COUNTS:-"100 1000 5000"}
RATE=${RATE:-256k}
D=${D:-30}
OUT=test/bench/out
mkdir -p "$OUT"

. test/bench/counts.sh
run_counts scaling $COUNTS

python3 - "${runs[@]}" <<'PY'
import json, sys
rows = [json.load(open(p)) for p in sys.argv[1:]]
fmt = "| {:>7} | {:>14} | {:>18} | {:>10} | {:>15} | {:>15} | {:>15} |"
def num(x, spec):
    return "-" if x is None else format(x, spec)
def ratio(x, y):
    return "-" if not x or not y else f"{x / y:.2f}"
def table(side, runs):
    """One line per run of the side's (flvgw's or the baseline's) figures."""
    print(fmt.format("viewers", "CPU s per GB", "above no-viewer CPU", "writes/s", "bytes per write", "CPU us per write", "stalls/disc."))
    print(fmt.format(*["-" * w for w in (7, 14, 18, 10, 15, 15, 15)]))
    for r in runs:
        x = r[side]
        print(fmt.format(r["viewers"], num(x["cpu_s_per_gb"], ".2f"), num(x["cpu_s_per_gb_above_idle"], ".2f"),
                         num(x["writes"] / x["wall_s"] if x["wall_s"] else None, ".0f"), num(x["bytes_per_write"], ".0f"),
                         num(x["cpu_us_per_write"], ".1f"), f"{x['bench']['stalls']}/{x['bench']['disconnects']}"))
print()
table("flvgw", rows)
def spread(key):
    xs = [r["flvgw"][key] for r in rows]
    return max(xs) / min(xs)
print(f"\nlargest / smallest CPU per GB: {spread('cpu_s_per_gb'):.2f} (target: flat within 20%, 1.20)")
print(f"  above the no-viewer CPU: {spread('cpu_s_per_gb_above_idle'):.2f}")
print(f"largest / smallest CPU per write: {spread('cpu_us_per_write'):.2f}")
based = [r for r in rows if r.get("baseline")]
if based:
    print("\nthe baseline (one vectored write per frame per viewer) in the same runs:")
    table("baseline", based)
    for r in based:
        g, b = r["flvgw"], r["baseline"]
        print(f"{r['viewers']:>7} viewers: flvgw/baseline, CPU per GB {ratio(g['cpu_s_per_gb'], b['cpu_s_per_gb'])}, "
              f"CPU per write {ratio(g['cpu_us_per_write'], b['cpu_us_per_write'])}")
PY
