#!/usr/bin/env bash
# flvgw's benchmark: on this machine, on loopback, start a server, a
# publisher and flvbench, and measure the server. It measures flvgw and, in
# the same run, the baseline (test/bench/baseline: the same bytes to the
# same number of sockets, one vectored write per frame per viewer, nothing
# else), then prints the flvgw/baseline ratio.
#
#   test/bench/run.sh                   # 1000 viewers of a 2 Mbps stream, 60 s
#   N=5000 RATE=256k D=60 test/bench/run.sh
#   N=1000 RAMP=1000 D=10 test/bench/run.sh   # 1000 viewers joining within 1 s
#   PROFILE=1 D=30 test/bench/run.sh          # plus go tool pprof -top of flvgw
#   DELIVERY=stream_writer test/bench/run.sh  # fasthttp's stream writer, not hijack
#   PERF=1 D=30 test/bench/run.sh             # plus a kernel-and-Go profile (perf) of flvgw
#   TRACE=1 D=30 test/bench/run.sh            # plus 1 s of Go execution trace: the writer groups' rounds
#                                             # (it slows that second: take delay figures from runs without it)
#   SCHED=1 D=30 test/bench/run.sh            # plus 2 s of the kernel's scheduling (perf sched): how long
#                                             # flvgw's threads waited for a CPU while runnable
#   LOADCMD="chrt -i 0" test/bench/run.sh     # flvbench under a command (here: SCHED_IDLE); split on spaces
#   GC_PERCENT=100 test/bench/run.sh          # flvgw's runtime.gc_percent (default 25; 100 is Go's own)
#   SEND_BUFFER=4096 test/bench/run.sh        # flvgw's http.send_buffer (default 0: the kernel's)
#   BASELINE=0 ...                            # flvgw only
#
# The figures also go to test/bench/out/summary.json (test/bench/scaling.sh
# reads them); test/bench/out/flvgw.samples has a line of flvgw's
# collections, heap, goroutines, writer groups, handbacks, skips and drops
# every 5 s of the load, to look back at a run that went wrong.
#
# Needs ffmpeg (to make the clip and to publish it with -c copy, so the
# publisher costs next to no CPU). Everything listens on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."

N=${N:-1000}         # viewers
RATE=${RATE:-2M}     # video bitrate of the clip
D=${D:-60}           # seconds of load
RAMP=${RAMP:-500}    # viewers started per second
PROFILE=${PROFILE:-} # 1: also take a 20 s CPU profile of flvgw under load
PERF=${PERF:-}       # 1: also take a 10 s perf profile (kernel and Go) of flvgw
TRACE=${TRACE:-}     # 1: also take 1 s of Go execution trace of flvgw (test/bench/rounds.py)
SCHED=${SCHED:-}     # 1: also record 2 s of the kernel's scheduling, all processes (perf sched)
BASELINE=${BASELINE:-1} # 0: measure flvgw only
DELIVERY=${DELIVERY:-hijack} # http.delivery
LOADCMD=${LOADCMD:-} # a command flvbench runs under, e.g. "chrt -i 0" or "nice -n 10"
GC_PERCENT=${GC_PERCENT:-} # runtime.gc_percent for flvgw; empty: its default
SEND_BUFFER=${SEND_BUFFER:-0} # http.send_buffer for flvgw, bytes per viewer socket; 0: the kernel's
OUT=test/bench/out
mkdir -p "$OUT"
ulimit -n 65536 2>/dev/null || true

go build -o "$OUT/flvgw" ./cmd/flvgw
go build -o "$OUT/flvbench" ./cmd/flvbench
go build -o "$OUT/baseline" ./test/bench/baseline

clip="$OUT/clip-$RATE.flv"
if [ ! -f "$clip" ]; then
  ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=1280x720:rate=25" \
    -f lavfi -i "sine=frequency=440:sample_rate=44100" -t 20 \
    -c:v libx264 -preset veryfast -b:v "$RATE" -maxrate "$RATE" -bufsize "$RATE" -g 50 -keyint_min 50 -sc_threshold 0 \
    -pix_fmt yuv420p -c:a aac -b:a 64k -f flv "$clip"
fi

cpu_seconds() { # utime+stime of a pid, in seconds
  awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15)/hz}' "/proc/$1/stat"
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# measure NAME PID URL [METRICS]: run flvbench against URL while sampling
# PID; with METRICS (a Prometheus URL), keep its series at the start of
# the load in $OUT/NAME.metrics0, and a line of the series that tell a run
# that goes wrong (collections, heap, goroutines, writer groups,
# handbacks, skips, drops) every 5 s in $OUT/NAME.samples.
measure() {
  local name=$1 pid=$2 url=$3 metrics=${4:-}
  sleep 2
  local rss0 cpu0 idle0 idle1 t0 t1 peak=0
  rss0=$(rss_kib "$pid")
  # CPU with the stream playing to no one, over 5 s: what the server spends
  # without viewers (ingest, timers, runtime).
  idle0=$(cpu_seconds "$pid"); sleep 5; idle1=$(cpu_seconds "$pid")
  rm -f "$OUT/$name.metrics0"
  [ -n "$metrics" ] && curl -s -o "$OUT/$name.metrics0" "$metrics"
  cpu0=$(cpu_seconds "$pid")
  t0=$(date +%s.%N)
  ( while kill -0 "$pid" 2>/dev/null; do r=$(rss_kib "$pid"); [ "$r" -gt "$peak" ] && peak=$r; echo "$peak" > "$OUT/$name.peak"; sleep 1; done ) &
  local sampler=$! series=
  : > "$OUT/$name.samples"
  if [ -n "$metrics" ]; then
    ( while kill -0 "$pid" 2>/dev/null; do
        curl -s --max-time 2 "$metrics" | awk -v t="$(date +%T)" '
          /^(go_gc_duration_seconds_count|go_cpu_classes_gc_total_cpu_seconds_total|go_memstats_heap_inuse_bytes|go_goroutines|flvgw_writer_groups|flvgw_writer_handbacks_total|flvgw_viewer_skips_total|flvgw_viewers_dropped_total|process_cpu_seconds_total) / ||
          /^flvgw_viewers_dropped_total[{]/ { sub(/^(go_|flvgw_|process_)/, "", $1); line = line " " $1 "=" $2 }
          END { print t line }' >> "$OUT/$name.samples"
        sleep 5
      done ) &
    series=$!
  fi
  $LOADCMD "$OUT/flvbench" -url "$url" -n "$N" -ramp "$RAMP" -d "${D}s" -progress 10s -json > "$OUT/$name.json"
  local cpu1
  cpu1=$(cpu_seconds "$pid")
  t1=$(date +%s.%N)
  kill "$sampler" $series 2>/dev/null || true
  echo "$rss0 $(cat "$OUT/$name.peak") $cpu0 $cpu1 $(awk -v a="$idle0" -v b="$idle1" 'BEGIN {print (b - a) / 5}') $(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" > "$OUT/$name.proc"
}

cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

# --- flvgw
PPROF=false
[ -n "$PROFILE$TRACE" ] && PPROF=true
cat > "$OUT/gw.toml" <<TOML
[http]
listen = "127.0.0.1:18080"
drain_timeout = "0s"
pprof = $PPROF
delivery = "$DELIVERY"
send_buffer = $SEND_BUFFER
[rtmp]
listen = "127.0.0.1:11935"
[pool]
buffer_tags = 2048
[log]
level = "warn"
TOML
[ -n "$GC_PERCENT" ] && printf '[runtime]\ngc_percent = %s\n' "$GC_PERCENT" >> "$OUT/gw.toml"
"$OUT/flvgw" -config "$OUT/gw.toml" 2> "$OUT/flvgw.log" &
gw=$!
sleep 1
ffmpeg -hide_banner -loglevel error -re -stream_loop -1 -i "$clip" -c copy -f flv rtmp://127.0.0.1:11935/live/bench &
pub=$!
# The no-viewer baseline is taken once the entry's buffer is full: until
# then it grows with the stream, not with the viewers.
echo "== flvgw: waiting for the entry's buffer to fill (pool.buffer_tags)" >&2
for _ in $(seq 120); do
  s=$(curl -s http://127.0.0.1:18080/api/v1/streams/live/bench || true)
  python3 -c 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if j["buffered_tags"] == j["buffer_capacity"] else 1)' "$s" 2>/dev/null && break
  sleep 1
done
echo "== flvgw ($DELIVERY): $N viewers, $RATE, ${D}s" >&2
# Both profiles start a third of the way into the load (measure waits 7 s
# before flvbench starts).
if [ -n "$PROFILE" ]; then
  ( sleep $((7 + D / 3)); curl -s -o "$OUT/flvgw.cpu.pprof" "http://127.0.0.1:18080/debug/pprof/profile?seconds=20" ) &
fi
rm -f "$OUT/flvgw.perf.txt" "$OUT/flvgw.trace"
if [ -n "$TRACE" ]; then
  ( sleep $((7 + 2 * D / 3)); curl -fsS -o "$OUT/flvgw.trace" "http://127.0.0.1:18080/debug/pprof/trace?seconds=1" ) &
fi
if [ -n "$PERF" ]; then
  if command -v perf >/dev/null; then
    ( sleep $((7 + D / 3))
      perf record -q -e cpu-clock -g -p "$gw" -o "$OUT/flvgw.perf.data" -- sleep 10 >/dev/null 2>&1 &&
        perf report -i "$OUT/flvgw.perf.data" --children --sort sym -g none --stdio 2>/dev/null > "$OUT/flvgw.perf.txt" ) &
  else
    echo "== PERF=1: perf is not installed (Debian: linux-perf); no kernel profile" >&2
  fi
fi
rm -f "$OUT/sched.txt" "$OUT/sched.tmp" "$OUT/sched.err" "$OUT/sched.data" "$OUT/sched.sysmon"
sched_rec=
if [ -n "$SCHED" ]; then
  if command -v perf >/dev/null; then
    # Recorded under load; read (timehist) only once the load is over.
    # In the second before, the thread of flvgw most often found asleep in
    # nanosleep (its wchan, read without a fork) is taken for the Go
    # runtime's sysmon, whose usleep it is.
    ( sleep $((6 + D / 2))
      for _ in 1 2 3 4 5; do
        for t in /proc/"$gw"/task/*; do
          w=; read -r w < "$t/wchan" 2>/dev/null || true
          case "$w" in *nanosleep*) echo "${t##*/}" ;; esac
        done
        sleep 0.2
      done | sort | uniq -c | sort -rn | awk 'NR == 1 {print $2}' > "$OUT/sched.sysmon" || true
      perf sched record -q -o "$OUT/sched.data" -- sleep 2 >/dev/null 2>>"$OUT/sched.err" ) &
    sched_rec=$!
  else
    echo "== SCHED=1: perf is not installed (Debian: linux-perf); no scheduling record" >&2
  fi
fi
measure flvgw "$gw" http://127.0.0.1:18080/live/bench.flv http://127.0.0.1:18080/metrics
curl -s http://127.0.0.1:18080/metrics > "$OUT/flvgw.metrics"
kill "$pub" "$gw"; wait "$pub" "$gw" 2>/dev/null || true
if [ -n "$sched_rec" ]; then
  if wait "$sched_rec" && perf sched timehist --state -i "$OUT/sched.data" > "$OUT/sched.tmp" 2>>"$OUT/sched.err"; then
    mv "$OUT/sched.tmp" "$OUT/sched.txt"
  else
    echo "== SCHED=1: perf sched failed, no scheduling table (see $OUT/sched.err)" >&2
  fi
fi

# --- baseline
rm -f "$OUT/baseline.json" "$OUT/baseline.proc" "$OUT/baseline.metrics"
if [ "$BASELINE" != 0 ]; then
  "$OUT/baseline" -listen 127.0.0.1:18090 -file "$clip" 2> "$OUT/baseline.log" &
  base=$!
  echo "== baseline: $N viewers, $RATE, ${D}s" >&2
  measure baseline "$base" http://127.0.0.1:18090/live/bench.flv
  curl -s http://127.0.0.1:18090/delay > "$OUT/baseline.metrics"
  kill "$base"; wait "$base" 2>/dev/null || true
fi

if [ -n "$PROFILE" ] && [ -s "$OUT/flvgw.cpu.pprof" ]; then
  echo "== flvgw CPU profile under load (go tool pprof -top $OUT/flvgw.cpu.pprof)"
  go tool pprof -top -nodecount=25 "$OUT/flvgw" "$OUT/flvgw.cpu.pprof" 2>/dev/null | head -32 || true
fi
if [ -n "$PERF" ]; then
  for _ in $(seq 30); do [ -s "$OUT/flvgw.perf.txt" ] && break; sleep 1; done
fi

python3 - "$OUT" "$N" "$RATE" "$D" "$DELIVERY" <<'PY'
import json, math, os, re, sys
out, n, rate, d, delivery = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]

def histogram(path, metric):
    """The cumulative buckets [(le, count)] of a Prometheus histogram."""
    buckets = []
    if not os.path.exists(path):
        return buckets
    for line in open(path):
        if line.startswith(metric + "_bucket"):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
    return buckets

def quantile(buckets, q, interpolate):
    """The q-quantile: the bound of the bucket it falls in or, with
    interpolate, linear within that bucket, as histogram_quantile does."""
    total = buckets[-1][1] if buckets else 0
    if not total:
        return float("nan")
    rank, lo, below = q * total, 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if not interpolate or math.isinf(le):
                return le
            return lo + (le - lo) * (rank - below) / (c - below) if c > below else le
        lo, below = le, c
    return float("nan")

def sample(path, metric):
    """The value of an unlabelled Prometheus series, None without it."""
    if os.path.exists(path):
        for line in open(path):
            if line.startswith(metric + " "):
                return float(line.split()[-1])
    return None

def load(name, delay_metric):
    if not os.path.exists(f"{out}/{name}.json"):
        return None
    j = json.load(open(f"{out}/{name}.json"))
    rss0, peak, c0, c1, idle_rate, wall = map(float, open(f"{out}/{name}.proc").read().split())
    delay = histogram(f"{out}/{name}.metrics", delay_metric)
    gb = j["bytes_total"] / 1e9
    cpu = c1 - c0
    writes = delay[-1][1] if delay else 0
    r = {
        "bench": j, "gb": gb, "cpu_s": cpu, "wall_s": wall,
        "cpu_s_per_gb": cpu / gb if gb else None,
        "idle_cpu_per_s": idle_rate,
        # CPU above what the server spends with no viewer, per GB: the
        # part that grows with viewers.
        "cpu_s_per_gb_above_idle": (cpu - idle_rate * wall) / gb if gb else None,
        "rss_growth_kib": peak - rss0,
        "rss_kib_per_viewer": (peak - rss0) / n,
        "writes": writes,
        "bytes_per_write": j["bytes_total"] / writes if writes else None,
        "cpu_us_per_write": cpu / writes * 1e6 if writes else None,
        "delay_bucket_ms": [quantile(delay, q, False) * 1000 for q in (0.5, 0.95, 0.99)],
        "delay_interp_ms": [quantile(delay, q, True) * 1000 for q in (0.5, 0.95, 0.99)],
        "delay_le_10ms_share": next((c for le, c in delay if le == 0.01), 0) / writes if writes else None,
    }
    if name == "flvgw":
        ttfb = histogram(f"{out}/{name}.metrics", "flvgw_time_to_first_byte_seconds")
        r["ttfb_gateway_bucket_ms"] = [quantile(ttfb, q, False) * 1000 for q in (0.5, 0.99)]
        # The garbage collector under load (runtime.gc_percent): its cycles,
        # and its CPU as the Go runtime estimates it (an overestimate).
        before, after = f"{out}/{name}.metrics0", f"{out}/{name}.metrics"
        cycles = [sample(p, "go_gc_duration_seconds_count") for p in (before, after)]
        gc_cpu = [sample(p, "go_cpu_classes_gc_total_cpu_seconds_total") for p in (before, after)]
        r["gc_percent"] = sample(after, "go_gc_gogc_percent")
        r["gc_cycles"] = cycles[1] - cycles[0] if None not in cycles else None
        r["gc_cpu_share"] = (gc_cpu[1] - gc_cpu[0]) / cpu if None not in gc_cpu and cpu else None
    return r

g = load("flvgw", "flvgw_delivery_delay_seconds")
b = load("baseline", "baseline_delivery_delay_seconds")

def fmt(x, spec=".2f"):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)
def ms(xs):
    return "/".join(f"{x:.3g}" for x in xs)

row = "| {:<48} | {:>14} | {:>14} |"
print(f"\n{n} viewers, {rate} clip, {d} s, loopback, this machine (flvgw delivery: {delivery})\n")
print(row.format("figure", "flvgw", "baseline"))
print(row.format("-" * 48, "-" * 14, "-" * 14))
def line(name, f):
    print(row.format(name, f(g), f(b) if b else "-"))
line("connected / failed", lambda r: f"{r['bench']['connected']}/{r['bench']['failed']}")
line("stalls / disconnects / malformed / out of order", lambda r: "/".join(str(r["bench"][k]) for k in ("stalls", "disconnects", "malformed", "out_of_order")))
line("  of them joining (begun <5 s) / longest gap (ms)",
     lambda r: f"{r['bench'].get('stalls_joining', '-')}/{fmt(r['bench'].get('longest_gap_ms'), '.0f')}")
line("delivered GB", lambda r: fmt(r["gb"]))
line("server CPU seconds", lambda r: fmt(r["cpu_s"], ".1f"))
line("server CPU seconds per delivered GB", lambda r: fmt(r["cpu_s_per_gb"]))
line("  above the no-viewer CPU", lambda r: fmt(r["cpu_s_per_gb_above_idle"]))
line("no-viewer CPU (cores)", lambda r: fmt(r["idle_cpu_per_s"], ".3f"))
for r in (g, b):
    if r:  # None where the load tool's CPU is not known
        r["load_cores"] = r["bench"]["cpu_seconds"] / r["wall_s"] if r["bench"].get("cpu_seconds") and r["wall_s"] else None
line("load tool's (flvbench's) CPU (cores)", lambda r: fmt(r["load_cores"], ".2f"))
line("writes to viewers / bytes per write", lambda r: f"{r['writes']:.0f}/{fmt(r['bytes_per_write'], '.0f')}")
line("server CPU per write (us)", lambda r: fmt(r["cpu_us_per_write"], ".1f"))
# Two estimates of how long a round lasts (one write to each connected
# viewer; a round per write a viewer gets), were nothing else running and
# no thread waiting for a CPU. Spread: the server's CPU per write on the
# CPUs the load tool leaves on average. Shared: the server's and the load
# tool's CPU per round together on all CPUs, as when the load tool reads
# each round while it is written (at equal priority the scheduler shares
# the CPUs between them; under LOADCMD's chrt -i 0 the load tool waits,
# and the round comes nearer the server's CPU per round over all CPUs).
# Models, not bounds: CPU per write counts GC and merged writes in.
def round_estimates(r):
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    bench_cores = r["load_cores"]
    connected = r["bench"]["connected"]
    if bench_cores is None or not r["cpu_us_per_write"] or not r["writes"] or not connected:
        return None, None  # the load tool's CPU is not known here
    spread = connected * r["cpu_us_per_write"] / 1000 / (cpus - bench_cores) if cpus > bench_cores else None
    rounds_per_s = r["writes"] / connected / r["wall_s"]
    shared = (r["cpu_s"] / r["wall_s"] + bench_cores) / rounds_per_s / cpus * 1000
    return spread, shared
for r in (g, b):
    if r:
        r["round_spread_ms"], r["round_shared_ms"] = round_estimates(r)
line("  a round, load tool's CPU spread, est. (ms)", lambda r: fmt(r["round_spread_ms"], ".1f"))
line("  a round, load tool's share in it, est. (ms)", lambda r: fmt(r["round_shared_ms"], ".1f"))
line("RSS per viewer above idle (KiB)", lambda r: fmt(r["rss_kib_per_viewer"], ".1f"))
line("time to first byte p50/p99 (ms)", lambda r: f"{r['bench']['ttfb_ms_p50_p95_p99'][0]:.1f}/{r['bench']['ttfb_ms_p50_p95_p99'][2]:.1f}")
print(row.format("  gateway side, accept to first write (bucket)", ms(g["ttfb_gateway_bucket_ms"]), "-"))
print(row.format("GC target % / cycles / CPU share (estimate)",
                 f"{fmt(g['gc_percent'], '.0f')}/{fmt(g['gc_cycles'], '.0f')}/" +
                 (fmt(g["gc_cpu_share"] * 100, ".1f") + "%" if g["gc_cpu_share"] is not None else "-"), "-"))
line("first keyframe p50/p99 (ms)", lambda r: f"{r['bench']['first_keyframe_ms_p50_p95_p99'][0]:.1f}/{r['bench']['first_keyframe_ms_p50_p95_p99'][2]:.1f}")
line("delivery delay p50/p95/p99 (ms, bucket bound)", lambda r: ms(r["delay_bucket_ms"]))
line("  interpolated in the bucket (histogram_quantile)", lambda r: ms(r["delay_interp_ms"]))
line("  share of writes within 10 ms", lambda r: fmt(r["delay_le_10ms_share"] * 100 if r["delay_le_10ms_share"] is not None else None, ".1f") + "%")
if b and g["cpu_s_per_gb"] and b["cpu_s_per_gb"]:
    print(f"\nCPU per delivered GB, flvgw/baseline: {g['cpu_s_per_gb'] / b['cpu_s_per_gb']:.2f}")

# perf: where flvgw's CPU goes, kernel included.
perf = f"{out}/flvgw.perf.txt"
if os.path.exists(perf) and os.path.getsize(perf):
    children, self_ = {}, {}
    for l in open(perf):
        m = re.match(r"\s*([\d.]+)%\s+([\d.]+)%\s+\[[k.]\]\s+(\S+)", l)
        if m:
            children[m.group(3)] = float(m.group(1))
            self_[m.group(3)] = float(m.group(2))
    def ch(*names):
        return max((children.get(x, 0.0) for x in names), default=0.0)
    def pre(p, table):
        return sum(v for k, v in table.items() if k.startswith(p))
    parts = [
        ("writev system calls, in all", ch("do_writev")),
        ("  the viewer's side of loopback TCP (softirq in the writer's call)", ch("net_rx_action")),
        ("  copying the tag bytes into the socket", self_.get("_copy_from_iter", 0.0)),
        ("  re-arming TCP timers", ch("sk_reset_timer")),
        ("flvgw's own Go code (self)", pre("flvgw/", self_)),
        ("Go runtime: sysmon", ch("runtime.sysmon")),
        ("Go runtime: scheduler (schedule)", ch("runtime.schedule")),
        ("Go runtime: garbage collector", ch("runtime.gcBgMarkWorker")),
        ("OS: switching threads (finish_task_switch)", pre("finish_task_switch", self_)),
    ]
    print(f"\nWhere flvgw's CPU goes (perf, 10 s under load; {perf}):\n")
    print("| {:<66} | {:>6} |".format("part", "share"))
    print("| {:<66} | {:>6} |".format("-" * 66, "-" * 6))
    for name, v in parts:
        print("| {:<66} | {:>5.1f}% |".format(name, v))
    g["perf_shares"] = {name.strip(): v for name, v in parts}

# perf sched: per process, how long its threads ran and how long they
# were runnable but waiting for a CPU: after a wake-up ("sch delay") and,
# for a thread switched out while still runnable (state R: preempted),
# until it ran again (its next "wait time").
sched = f"{out}/sched.txt"
EVENT = re.compile(r"^\s*(\d+\.\d+)\s+\[\d+\]\s+(.*?)\s+(\d+\.\d+)\s+(\d+\.\d+)\s+(\d+\.\d+)\s+(\S+)\s*$")
if os.path.exists(sched) and os.path.getsize(sched):
    procs, threads, last_state, idle_ms, lost, t0, t1 = {}, {}, {}, 0.0, 0, None, None
    for l in open(sched):
        m = EVENT.match(l)
        if not m:
            n_lost = re.search(r" lost (\d+) events", l)
            lost += int(n_lost.group(1)) if n_lost else 0
            continue
        t = float(m.group(1))
        t0, t1 = t if t0 is None else t0, t
        task = m.group(2)
        wait, delay, run = float(m.group(3)), float(m.group(4)), float(m.group(5))
        if task.startswith("<idle>"):
            idle_ms += run
            continue
        name, tid = task.split("[")[0], task.split("[")[-1].split("/")[0].rstrip("]")
        # perf 6.1 prints R for a thread preempted back to user space and
        # W for one preempted in the kernel (R+); newer perf counts that
        # wait in "sch delay" already, so the two are not added.
        runnable = wait if last_state.get(tid, "")[:1] in ("R", "W") else delay
        last_state[tid] = m.group(6)
        if name == "flvgw":
            th = threads.setdefault(tid, [0, 0.0, 0.0])
            th[0] += 1
            th[1] += run
            th[2] += runnable
        p = procs.setdefault(name, {"run": 0.0, "runnable": 0.0, "over1": 0, "max": 0.0})
        p["run"] += run
        p["runnable"] += runnable
        p["over1"] += runnable > 1
        p["max"] = max(p["max"], runnable)
    secs = max((t1 or 0) - (t0 or 0), 1e-9)
    if not procs:
        print(f"\nperf sched: no scheduling events could be read from {sched}")
    hz = None
    try:
        import gzip
        m = re.search(rb"^CONFIG_HZ=(\d+)$", gzip.open("/proc/config.gz").read(), re.M)
        hz = int(m.group(1)) if m else None
    except OSError:
        pass
    print(f"\nThe kernel's scheduling over {secs:.1f} s under load (perf sched; {sched}"
          + (f"; kernel tick {1000 / hz:g} ms" if hz else "") + f"; CPUs idle {idle_ms / 1000 / secs:.2f} cores"
          + (f"; {lost} events lost" if lost else "") + "):\n")
    srow = "| {:<12} | {:>11} | {:>24} | {:>15} | {:>12} |"
    print(srow.format("process", "ran (cores)", "runnable, waiting (ms/s)", "waits > 1 ms/s", "longest (ms)"))
    print(srow.format("-" * 12, "-" * 11, "-" * 24, "-" * 15, "-" * 12))
    for name in sorted(procs, key=lambda k: -procs[k]["run"])[:6]:
        p = procs[name]
        print(srow.format(name[:12], f"{p['run'] / 1000 / secs:.2f}", f"{p['runnable'] / secs:.0f}",
                          f"{p['over1'] / secs:.0f}", f"{p['max']:.2f}"))
    # flvgw's threads, the Go runtime's sysmon (which writes to no viewer)
    # marked if it was found.
    sysmon = open(f"{out}/sched.sysmon").read().strip() if os.path.exists(f"{out}/sched.sysmon") else ""
    print("\nflvgw's threads, most switches first (tid: switches/s, ran ms/s, runnable but waiting ms/s):")
    print("  " + "; ".join(f"{tid}{' (sysmon)' if tid == sysmon else ''}: {th[0] / secs:.0f}, {th[1] / secs:.0f}, {th[2] / secs:.0f}"
                           for tid, th in sorted(threads.items(), key=lambda kv: -kv[1][0])[:8]))
    g["sched_sysmon"] = threads.get(sysmon)
    g["sched"] = {k: v for k, v in procs.items() if k in ("flvgw", "flvbench")}
    g["sched_seconds"] = secs

json.dump({"viewers": n, "rate": rate, "seconds": d, "delivery": delivery, "flvgw": g, "baseline": b},
          open(f"{out}/summary.json", "w"), indent=1, default=str)
PY

# The trace (1 s, which the trace itself slows a little) goes last.
if [ -n "$TRACE" ] && [ -s "$OUT/flvgw.trace" ]; then
  python3 test/bench/rounds.py "$OUT/flvgw.trace" || true
fi
