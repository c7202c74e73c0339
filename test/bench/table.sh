#!/usr/bin/env bash
# The README's performance table in one pass: runs each of its commands in
# turn on this machine (loopback only) and prints the table with what this
# pass measured beside each target, the command that measured it, and
# whether the target was met.
#
#   test/bench/table.sh      # about 12 minutes on a 2-core machine
#
# Each command's own output is kept in test/bench/out/table-*.txt (and its
# figures in table-*.json); the table itself goes to stdout and to
# test/bench/out/table.md. Run it with nothing else running: the figures
# are CPU and latency on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=test/bench/out
mkdir -p "$OUT"

step() { # step NAME VAR=VALUE... : one run of run.sh, its output and figures kept
  local name=$1
  shift
  echo "== table: $name ($*)" >&2
  env -u TRACE -u PROFILE -u PERF -u SCHED -u LOADCMD -u GC_PERCENT -u SEND_BUFFER -u DELIVERY \
    "$@" test/bench/run.sh > "$OUT/table-$name.txt"
  cp "$OUT/summary.json" "$OUT/table-$name.json"
}

step 1000x2M N=1000 RATE=2M D=60
step 5000x256k N=5000 RATE=256k D=60 RAMP=1000
step join N=1000 RAMP=1000 RATE=256k D=10 BASELINE=0
echo "== table: scaling (test/bench/scaling.sh)" >&2
env -u BASELINE -u COUNTS -u RATE -u D test/bench/scaling.sh > "$OUT/table-scaling.txt"
echo "== table: benchmarks" >&2
go test -run X -bench 'Fanout|GroupPass' -benchmem ./pool ./gateway > "$OUT/table-bench.txt"

python3 - "$OUT" "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!test/bench/out' || echo '+changes')" <<'PY'
import json, math, re, sys
out, commit = sys.argv[1], sys.argv[2]
def load(name):
    return json.load(open(f"{out}/{name}.json"))
big, many, join = load("table-1000x2M"), load("table-5000x256k"), load("table-join")
scaling = [load(f"scaling-{n}") for n in (100, 1000, 5000)]

rows = []
def row(figure, target, measured, met, command):
    rows.append((figure, target, measured, "yes" if met else "**no**", command))

def healthy(r):
    b = r["flvgw"]["bench"]
    text = (f"{b['stalls']} / {b['disconnects']} / {b['malformed']} ({b['connected']} connected, "
            f"{r['flvgw']['gb']:.2f} GB, longest gap {b.get('longest_gap_ms', 0):.0f} ms)")
    ok = b["connected"] == r["viewers"] and b["failed"] == 0 and not (b["stalls"] or b["disconnects"] or b["malformed"] or b["out_of_order"])
    return text, ok

text, ok = healthy(big)
row("1,000 viewers of one 2 Mbps stream, 60 s", "no stall, disconnect or malformed tag", text, ok,
    "`N=1000 RATE=2M D=60 test/bench/run.sh`")
text, ok = healthy(many)
row("5,000 viewers of one 256 kbps stream, 60 s", "no stall, disconnect or malformed tag", text, ok,
    "`N=5000 RATE=256k D=60 RAMP=1000 test/bench/run.sh`")

g, b = big["flvgw"], big["baseline"]
if b and b["cpu_s_per_gb"]:
    ratio = g["cpu_s_per_gb"] / b["cpu_s_per_gb"]
    text = (f"{ratio:.2f} ({g['cpu_s_per_gb']:.2f} s/GB against {b['cpu_s_per_gb']:.2f}; "
            f"CPU per write {g['cpu_us_per_write']:.1f} µs against {b['cpu_us_per_write']:.1f})")
else:
    ratio, text = math.inf, "the baseline did not run"
row("gateway CPU per delivered GB / baseline's, 1,000 viewers", "at most 1.3", text, ratio <= 1.3,
    "`N=1000 RATE=2M D=60 test/bench/run.sh`")

per_gb = [r["flvgw"]["cpu_s_per_gb"] for r in scaling]
spread = max(per_gb) / min(per_gb)
row("CPU per viewer-Mbps, 100 to 5,000 viewers (256 kbps)", "flat within 20%",
    f"{spread:.2f} largest/smallest: " + ", ".join(f"{x:.1f} s/GB at {r['viewers']:,}" for x, r in zip(per_gb, scaling)),
    spread <= 1.2, "`test/bench/scaling.sh`")

rss = [(r["viewers"], r["rate"], r["flvgw"]["rss_kib_per_viewer"]) for r in (scaling[0], big, many)]
worst = max(x for _, _, x in rss)
row("RSS per viewer above the no-viewer baseline", "at most 24 KiB",
    ", ".join(f"{x:.1f} KiB at {n:,} × {rate}" for n, rate, x in rss), worst <= 24,
    "`test/bench/scaling.sh` (100); the two runs above")

p50, p95, p99 = g["delay_interp_ms"]
row("delivery delay p99, 1,000 viewers", "at most 10 ms",
    f"{p99:.1f} ms (p50 {p50:.1f}, p95 {p95:.1f}; {g['delay_le_10ms_share'] * 100:.1f}% of writes within 10 ms)",
    p99 <= 10, "`N=1000 RATE=2M D=60 test/bench/run.sh`")

k = join["flvgw"]["bench"]["first_keyframe_ms_p50_p95_p99"]
row("1,000 viewers joining within 1 s: first keyframe p99", "at most 50 ms",
    f"{k[2]:.1f} ms (p50 {k[0]:.1f})", k[2] <= 50, "`N=1000 RAMP=1000 RATE=256k D=10 BASELINE=0 test/bench/run.sh`")

allocs = {}
for line in open(f"{out}/table-bench.txt"):
    m = re.match(r"Benchmark(\w+)/viewers=(\d+)\S*\s.*?\s(\d+) allocs/op", line)
    if m:
        allocs.setdefault(m.group(1), {})[int(m.group(2))] = int(m.group(3))
per_viewer = max(((v[max(v)] - v[min(v)]) / (max(v) - min(v)) for v in allocs.values() if len(v) > 1), default=math.nan)
row("allocations per tag per viewer on the fan-out path", "0",
    f"{per_viewer:g} (" + "; ".join(f"{name}: " + ", ".join(f"{a} per tag at {n:,}" for n, a in sorted(v.items()))
                          for name, v in sorted(allocs.items())) + ")",
    per_viewer == 0, "`go test -run X -bench 'Fanout\\|GroupPass' -benchmem ./pool ./gateway`")

lines = [f"Performance table, one pass of test/bench/table.sh at {commit}:", "",
         "| figure | target | measured | met | command |", "| --- | --- | --- | --- | --- |"]
lines += ["| " + " | ".join(r) + " |" for r in rows]
text = "\n".join(lines) + "\n"
print("\n" + text)
open(f"{out}/table.md", "w").write(text)
PY
