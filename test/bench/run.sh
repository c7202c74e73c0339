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
DELIVERY=${DELIVERY:-hijack} # http.delivery
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

# measure NAME PID URL: run flvbench against URL while sampling PID.
measure() {
  local name=$1 pid=$2 url=$3
  sleep 2
  local rss0 cpu0 peak=0
  rss0=$(rss_kib "$pid")
  cpu0=$(cpu_seconds "$pid")
  ( while kill -0 "$pid" 2>/dev/null; do r=$(rss_kib "$pid"); [ "$r" -gt "$peak" ] && peak=$r; echo "$peak" > "$OUT/$name.peak"; sleep 1; done ) &
  local sampler=$!
  "$OUT/flvbench" -url "$url" -n "$N" -ramp "$RAMP" -d "${D}s" -progress 10s -json > "$OUT/$name.json"
  local cpu1
  cpu1=$(cpu_seconds "$pid")
  kill "$sampler" 2>/dev/null || true
  echo "$rss0 $(cat "$OUT/$name.peak") $cpu0 $cpu1" > "$OUT/$name.proc"
}

cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

# --- flvgw
PPROF=false
[ -n "$PROFILE" ] && PPROF=true
cat > "$OUT/gw.toml" <<TOML
[http]
listen = "127.0.0.1:18080"
drain_timeout = "0s"
pprof = $PPROF
delivery = "$DELIVERY"
[rtmp]
listen = "127.0.0.1:11935"
[pool]
buffer_tags = 2048
[log]
level = "warn"
TOML
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
if [ -n "$PROFILE" ]; then
  ( sleep $((2 + D / 3)); curl -s -o "$OUT/flvgw.cpu.pprof" "http://127.0.0.1:18080/debug/pprof/profile?seconds=20" ) &
fi
measure flvgw "$gw" http://127.0.0.1:18080/live/bench.flv
curl -s http://127.0.0.1:18080/metrics > "$OUT/flvgw.metrics"
kill "$pub" "$gw"; wait "$pub" "$gw" 2>/dev/null || true

# --- baseline
"$OUT/baseline" -listen 127.0.0.1:18090 -file "$clip" 2> "$OUT/baseline.log" &
base=$!
echo "== baseline: $N viewers, $RATE, ${D}s" >&2
measure baseline "$base" http://127.0.0.1:18090/live/bench.flv
curl -s http://127.0.0.1:18090/delay > "$OUT/baseline.metrics"
kill "$base"; wait "$base" 2>/dev/null || true

if [ -n "$PROFILE" ] && [ -s "$OUT/flvgw.cpu.pprof" ]; then
  echo "== flvgw CPU profile under load (go tool pprof -top $OUT/flvgw.cpu.pprof)"
  go tool pprof -top -nodecount=25 "$OUT/flvgw" "$OUT/flvgw.cpu.pprof" 2>/dev/null | head -32 || true
fi

python3 - "$OUT" "$N" "$RATE" "$D" <<'PY'
import json, sys
out, n, rate, d = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def load(name):
    j = json.load(open(f"{out}/{name}.json"))
    rss0, peak, c0, c1 = map(float, open(f"{out}/{name}.proc").read().split())
    gb = j["bytes_total"] / 1e9
    return j, (c1 - c0), gb, (peak - rss0) / n
def quantiles(path, metric):
    buckets = []
    for line in open(path):
        if line.startswith(metric + "_bucket"):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
    total = buckets[-1][1] if buckets else 0
    res = []
    for q in (0.5, 0.95, 0.99):
        res.append(next((le for le, c in buckets if total and c >= q * total), float("nan")))
    return res
g, gcpu, ggb, grss = load("flvgw")
b, bcpu, bgb, brss = load("baseline")
dq = quantiles(f"{out}/flvgw.metrics", "flvgw_delivery_delay_seconds")
bq = quantiles(f"{out}/baseline.metrics", "baseline_delivery_delay_seconds")
tq = quantiles(f"{out}/flvgw.metrics", "flvgw_time_to_first_byte_seconds")
row = "| {:<44} | {:>14} | {:>14} |"
print(f"\n{n} viewers, {rate} clip, {d} s, loopback, this machine\n")
print(row.format("figure", "flvgw", "baseline"))
print(row.format("-" * 44, "-" * 14, "-" * 14))
for name, a, c in [
    ("connected / failed", f"{g['connected']}/{g['failed']}", f"{b['connected']}/{b['failed']}"),
    ("stalls / disconnects / malformed / out of order", f"{g['stalls']}/{g['disconnects']}/{g['malformed']}/{g['out_of_order']}",
     f"{b['stalls']}/{b['disconnects']}/{b['malformed']}/{b['out_of_order']}"),
    ("delivered GB", f"{ggb:.2f}", f"{bgb:.2f}"),
    ("server CPU seconds", f"{gcpu:.1f}", f"{bcpu:.1f}"),
    ("server CPU seconds per delivered GB", f"{gcpu/ggb:.2f}" if ggb else "-", f"{bcpu/bgb:.2f}" if bgb else "-"),
    ("RSS per viewer above idle (KiB)", f"{grss:.1f}", f"{brss:.1f}"),
    ("time to first byte p50/p99 (ms)", f"{g['ttfb_ms_p50_p95_p99'][0]:.1f}/{g['ttfb_ms_p50_p95_p99'][2]:.1f}", f"{b['ttfb_ms_p50_p95_p99'][0]:.1f}/{b['ttfb_ms_p50_p95_p99'][2]:.1f}"),
    ("  gateway side, accept to first write (bucket)", "/".join(f"{x*1000:g}" for x in (tq[0], tq[2])), "-"),
    ("first keyframe p50/p99 (ms)", f"{g['first_keyframe_ms_p50_p95_p99'][0]:.1f}/{g['first_keyframe_ms_p50_p95_p99'][2]:.1f}", f"{b['first_keyframe_ms_p50_p95_p99'][0]:.1f}/{b['first_keyframe_ms_p50_p95_p99'][2]:.1f}"),
    ("delivery delay p50/p95/p99 (ms, bucket bound)", "/".join(f"{x*1000:g}" for x in dq), "/".join(f"{x*1000:g}" for x in bq)),
]:
    print(row.format(name, a, c))
if ggb and bgb:
    print(f"\nCPU per delivered GB, flvgw/baseline: {(gcpu/ggb)/(bcpu/bgb):.2f}")
PY
