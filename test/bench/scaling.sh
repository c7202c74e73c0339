#!/usr/bin/env bash
# How flvgw's CPU scales with viewers: test/bench/run.sh (flvgw only) at
# 100, 1,000 and 5,000 viewers of the 256 kbps clip, then one table of CPU
# per delivered GB (the same as CPU per viewer-Mbps, in other units), with
# and without the CPU the gateway spends with no viewer, beside what each
# write carried and cost.
#
#   test/bench/scaling.sh                 # 100, 1000, 5000 viewers
#   COUNTS="100 1000" D=20 test/bench/scaling.sh
#   BASELINE=1 test/bench/scaling.sh      # the baseline too, at each count: how
#                                         # the kernel's own cost per GB and per
#                                         # write moves with the number of sockets
#
# Takes about (D + 20 s) per count, twice that with the baseline. Everything listens on 127.0.0.1.
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
print()
print(fmt.format("viewers", "CPU s per GB", "above no-viewer CPU", "writes/s", "bytes per write", "CPU us per write", "stalls/disc."))
print(fmt.format(*["-" * w for w in (7, 14, 18, 10, 15, 15, 15)]))
for r in rows:
    g = r["flvgw"]
    print(fmt.format(r["viewers"], f"{g['cpu_s_per_gb']:.2f}", f"{g['cpu_s_per_gb_above_idle']:.2f}",
                     f"{g['writes'] / g['wall_s']:.0f}", f"{g['bytes_per_write']:.0f}",
                     f"{g['cpu_us_per_write']:.1f}", f"{g['bench']['stalls']}/{g['bench']['disconnects']}"))
def spread(key):
    xs = [r["flvgw"][key] for r in rows]
    return max(xs) / min(xs)
print(f"\nlargest / smallest CPU per GB: {spread('cpu_s_per_gb'):.2f} (target: flat within 20%, 1.20)")
print(f"  above the no-viewer CPU: {spread('cpu_s_per_gb_above_idle'):.2f}")
print(f"largest / smallest CPU per write: {spread('cpu_us_per_write'):.2f}")
based = [r for r in rows if r.get("baseline")]
if based:
    print("\nthe baseline (one vectored write per frame per viewer) in the same runs:")
    print(fmt.format("viewers", "CPU s per GB", "above no-viewer CPU", "writes/s", "bytes per write", "CPU us per write", "stalls/disc."))
    print(fmt.format(*["-" * w for w in (7, 14, 18, 10, 15, 15, 15)]))
    for r in based:
        b = r["baseline"]
        print(fmt.format(r["viewers"], f"{b['cpu_s_per_gb']:.2f}", f"{b['cpu_s_per_gb_above_idle']:.2f}",
                         f"{b['writes'] / b['wall_s']:.0f}", f"{b['bytes_per_write']:.0f}",
                         f"{b['cpu_us_per_write']:.1f}", f"{b['bench']['stalls']}/{b['bench']['disconnects']}"))
    for r in based:
        print(f"{r['viewers']:>7} viewers: CPU per GB flvgw/baseline {r['flvgw']['cpu_s_per_gb'] / r['baseline']['cpu_s_per_gb']:.2f}, "
              f"CPU per write {r['flvgw']['cpu_us_per_write'] / r['baseline']['cpu_us_per_write']:.2f}")
PY
