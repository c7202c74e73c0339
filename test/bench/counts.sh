# Sourced by scaling.sh and memory.sh: run_counts NAME COUNT... runs
# test/bench/run.sh (flvgw only, unless BASELINE=1) once per viewer count, with RATE and D,
# keeps each run's output and summary as $OUT/NAME-COUNT.{txt,json}, and
# lists the summaries in the array runs. Each run is as run.sh's defaults
# make it: a profile, a trace or a load command would skew CPU and RSS.
# GC_PERCENT passes through, to compare the collector's targets, and
# BASELINE (default 0: flvgw only), to measure the baseline at each count.
run_counts() {
  local name=$1 n ramp
  shift
  runs=()
  for n in "$@"; do
    ramp=500
    [ "$n" -gt 2000 ] && ramp=1000
    echo "== $name: $n viewers" >&2
    env -u TRACE -u PROFILE -u PERF -u LOADCMD \
      N="$n" RATE="$RATE" D="$D" RAMP="$ramp" BASELINE="${BASELINE:-0}" test/bench/run.sh > "$OUT/$name-$n.txt"
    cp "$OUT/summary.json" "$OUT/$name-$n.json"
    runs+=("$OUT/$name-$n.json")
  done
}
