#!/usr/bin/env python3
"""Rounds of flvgw's writer groups, from a Go execution trace.

    python3 test/bench/rounds.py test/bench/out/flvgw.trace

A round starts when a tag wakes the writer groups of an entry while all
of them wait, and ends when all of them wait again: every viewer in a
group has then been written what had arrived. The delivery delay of the
last viewers of a round is about the round's length, so this says where
the delay's tail comes from: how long rounds take, how many writes they
make, whether both Ps write in parallel, and what the Go scheduler adds
(a writev that the runtime's sysmon takes the P from, because the thread
stayed in the kernel past 20 us, sends its goroutine to wait for a P
again while the other groups run).

It reads the trace through `go tool trace -d=parsed`, which run.sh's
TRACE=1 takes under load.
"""
import collections
import re
import subprocess
import sys

TRANSITION = re.compile(
    r"^M=(-?\d+) P=(-?\d+) G=(-?\d+) StateTransition Time=(\d+) "
    r"(?:GoID=(\d+)|ProcID=\d+) (\w+)->(\w+)")


def events(path):
    """Goroutine state transitions, each with the first frames of its stack."""
    text = subprocess.run(["go", "tool", "trace", "-d=parsed", path],
                          capture_output=True, text=True, check=True).stdout
    last = None
    for line in text.splitlines():
        m = TRANSITION.match(line)
        if m:
            _, p, _, t, gid, a, b = m.groups()
            last = None
            if gid is None:
                continue
            last = {"P": int(p), "T": int(t), "g": int(gid), "from": a, "to": b, "stack": []}
            yield last
        elif line.startswith("M="):
            last = None
        elif last is not None and line.startswith("\t") and not line.startswith("\t\t"):
            last["stack"].append(line.strip().split(" @")[0])


def quantiles(xs, qs=(0.5, 0.9, 0.99)):
    xs = sorted(xs)
    return [xs[min(len(xs) - 1, int(q * len(xs)))] for q in qs] + [xs[-1]] if xs else []


def main(path):
    evs = list(events(path))
    groups = {e["g"] for e in evs
              if e["to"] == "Waiting" and any("writerGroups).run" in f for f in e["stack"])}
    if not groups:
        sys.exit("rounds.py: no writer group in the trace (were viewers connected?)")
    span = (evs[-1]["T"] - evs[0]["T"]) / 1e9

    state = {g: "Waiting" for g in groups}
    rounds, cur = [], None
    running = {}     # g -> (start, P)
    in_syscall = {}  # g -> start
    retaken_at = {}  # g -> when its syscall ended without its P
    syscalls, retakes, retake_waits = [], [], []
    for e in evs:
        g = e["g"]
        if g not in groups:
            continue
        if e["from"] == "Waiting" and e["to"] == "Runnable" and cur is None:
            cur = {"start": e["T"], "busy": collections.Counter(), "writes": 0}
        if e["to"] == "Running":
            running[g] = (e["T"], e["P"])
            if g in retaken_at:
                retake_waits.append(e["T"] - retaken_at.pop(g))
        if e["from"] == "Running" and g in running and cur is not None:
            t, p = running.pop(g)
            cur["busy"][p] += e["T"] - t
        if e["to"] == "Syscall":
            in_syscall[g] = e["T"]
            if cur is not None:
                cur["writes"] += 1
        if e["from"] == "Syscall" and g in in_syscall:
            d = e["T"] - in_syscall.pop(g)
            if e["to"] == "Running":
                syscalls.append(d)
                if cur is not None:
                    cur["busy"][e["P"]] += d  # the P stayed with it
            else:  # Runnable: sysmon handed its P to another thread
                retakes.append(d)
                retaken_at[g] = e["T"]
        state[g] = e["to"]
        if cur is not None and all(s == "Waiting" for s in state.values()):
            cur["end"] = e["T"]
            rounds.append(cur)
            cur = None

    if not rounds:
        sys.exit("rounds.py: no complete round in the trace")
    dur = [(r["end"] - r["start"]) / 1e6 for r in rounds]
    busy = [sum(r["busy"].values()) / 1e6 for r in rounds]
    par = [b / d for b, d in zip(busy, dur) if d > 0]
    writes = [r["writes"] for r in rounds]
    us = lambda xs: "/".join(f"{x / 1e3:.1f}" for x in quantiles(xs))
    ms = lambda xs: "/".join(f"{x:.2f}" for x in quantiles(xs))

    print(f"\nWriter-group rounds ({path}, {span:.2f} s, {len(groups)} groups)\n")
    row = "| {:<58} | {:>26} |"
    print(row.format("figure (p50/p90/p99/max)", "value"))
    print(row.format("-" * 58, "-" * 26))
    print(row.format("rounds per second", f"{len(rounds) / span:.1f}"))
    print(row.format("round length, wake-up to last group done (ms)", ms(dur)))
    print(row.format("group time in the round, all Ps (ms)", ms(busy)))
    print(row.format("parallelism (group time / round length)", "/".join(f"{x:.2f}" for x in quantiles(par))))
    if syscalls:
        print(row.format("writes per round", "/".join(str(x) for x in quantiles(writes))))
        print(row.format("writev, wall time (us)", us(syscalls)))
    print(row.format("writev past 20 us whose P sysmon handed off, per s", f"{len(retakes) / span:.0f}"))
    if retakes:
        print(row.format("  their writev, wall time (ms)", "/".join(f"{x / 1e6:.2f}" for x in quantiles(retakes))))
        print(row.format("  then waiting for a P (ms)", "/".join(f"{x / 1e6:.2f}" for x in quantiles(retake_waits))))
    if not syscalls:
        print("\n(no syscall events: the writes bypass the runtime's syscall entry)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
