#!/usr/bin/env bash
# How flvgw's memory grows with viewers: test/bench/run.sh (flvgw only)
# with 1 viewer and then with each count, the same clip and duration. The
# one-viewer run is the control: it shows what RSS gains over a run that
# the viewers do not cause (the stream's own garbage, which grows the heap
# until the next GC, and what the first viewer starts once), so that the
# RSS per viewer can be given both as run.sh does (peak above the RSS read
# 5 s before the viewers join, divided by the count) and above the
# control; with two counts or more it also gives the slope between the
# two largest, which owes nothing to the control.
#
#   test/bench/memory.sh                     # 1, then 100 and 1000 viewers of the 256 kbps clip
#   COUNTS="100" RATE=2M D=60 test/bench/memory.sh
#
# Takes about (D + 40 s) per run. Everything listens on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."

COUNTS=${COUNTS:-"100 1000"}
RATE=${RATE:-256k}
D=${D:-30}
OUT=test/bench/out
mkdir -p "$OUT"

for n in $COUNTS; do
  [ "$n" -gt 1 ] || { echo "memory.sh: COUNTS are above 1 (1 is the control)" >&2; exit 2; }
done
. test/bench/counts.sh
BASELINE=0 run_counts memory 1 $COUNTS

python3 - "${runs[@]}" <<'PY'
import json, sys
control, *rows = [json.load(open(p)) for p in sys.argv[1:]]
c = control["flvgw"]["rss_growth_kib"]
fmt = "| {:>7} | {:>16} | {:>19} | {:>33} |"
print(f"\n{control['rate']} clip, {control['seconds']} s per run; with 1 viewer RSS grew {c:.0f} KiB\n")
print(fmt.format("viewers", "RSS growth (KiB)", "per viewer (run.sh)", "per viewer above the 1-viewer run"))
print(fmt.format(*["-" * w for w in (7, 16, 19, 33)]))
for r in rows:
    g, n = r["flvgw"]["rss_growth_kib"], r["viewers"]
    print(fmt.format(n, f"{g:.0f}", f"{g / n:.1f}", f"{(g - c) / (n - 1):.1f}"))
if len(rows) > 1:
    a, b = sorted(rows, key=lambda r: r["viewers"])[-2:]
    slope = (b["flvgw"]["rss_growth_kib"] - a["flvgw"]["rss_growth_kib"]) / (b["viewers"] - a["viewers"])
    print(f"\nslope from {a['viewers']} to {b['viewers']} viewers: {slope:.1f} KiB per viewer")
PY
