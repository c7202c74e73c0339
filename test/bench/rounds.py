#!/usr/bin/env python3
"""Rounds of flvgw's writer groups, from a Go execution trace.

    python3 test/bench/rounds.py test/bench/out/flvgw.trace

A round starts when a tag wakes the writer groups of an entry while all
of them wait in their select, and ends when every group has been woken
and all of them wait again: every viewer in a group has then been
written what had arrived. When the next tag arrives before a round ends,
the groups still writing go on to it without waiting, and the round
covers both; rounds that made no more writes than the median round (one
write per viewer, one tag) are shown apart. For a one-tag round, the
delivery delay of its last viewers is about the round's length.

Times per round are P-time: a goroutine running, or in a system call
that kept its P. A writev whose P was taken meanwhile (Syscall->Runnable
in the trace: sysmon retakes a P from a thread that stays in a system
call while other goroutines wait for one, or the scheduler hands it on)
is counted apart, with how long its goroutine then waited for a P; its
group's remaining members wait with it.

It reads the trace through `go tool trace -d=parsed`, which run.sh's
TRACE=1 takes under load. With about 40 rounds in a second of trace, the
largest values are single rounds: read them as such.
"""
import collections
import re
import statistics
import subprocess
import sys

TRANSITION = re.compile(
    r"^M=(-?\d+) P=(-?\d+) G=(-?\d+) StateTransition Time=(\d+) "
    r"(?:GoID=(\d+)|ProcID=\d+) (\w+)->(\w+) Reason=\"([^\"]*)\"")


def events(path):
    """Goroutine state transitions, each with the first frames of its stack."""
    try:
        text = subprocess.run(["go", "tool", "trace", "-d=parsed", path],
                              capture_output=True, text=True, check=True).stdout
    except subprocess.CalledProcessError as err:
        sys.exit(f"rounds.py: go tool trace -d=parsed {path}: {err.stderr.strip()}")
    last = None
    for line in text.splitlines():
        m = TRANSITION.match(line)
        if m:
            _, p, _, t, gid, a, b, why = m.groups()
            last = None
            if gid is None:
                continue
            last = {"P": int(p), "T": int(t), "g": int(gid), "from": a, "to": b,
                    "why": why, "stack": []}
            yield last
        elif line.startswith("M="):
            last = None
        elif last is not None and line.startswith("\t") and not line.startswith("\t\t"):
            last["stack"].append(line.strip().split(" @")[0])


def spread(xs, f):
    """p50 / p90 / max of xs, formatted by f."""
    if not xs:
        return "-"
    xs = sorted(xs)
    return "/".join(f(x) for x in (statistics.median(xs), xs[min(len(xs) - 1, int(0.9 * len(xs)))], xs[-1]))


def main(path):
    evs = list(events(path))
    groups = {e["g"] for e in evs
              if e["to"] == "Waiting" and any("writerGroups).run" in f for f in e["stack"])}
    if not groups:
        sys.exit("rounds.py: no writer group in the trace (were viewers connected?)")
    span = (evs[-1]["T"] - evs[0]["T"]) / 1e9

    idle = {g: True for g in groups}  # waiting in its select
    rounds, cur = [], None
    running = {}     # g -> (since, P)
    in_syscall = {}  # g -> since
    lost_at = {}     # g -> when its system call returned without its P
    kept, lost, lost_waits = [], [], []
    for e in evs:
        g = e["g"]
        if g not in idle or e["from"] == e["to"]:
            continue  # not a live group, or a generation boundary's restatement
        if e["to"] == "NotExist":
            del idle[g]  # retired
            continue
        if e["from"] == "Waiting" and e["to"] == "Runnable":
            if cur is None and all(idle.values()):
                cur = {"start": e["T"], "busy": collections.Counter(), "writes": 0,
                       "lost": 0, "lost_ns": 0, "woken": set()}
            if cur is not None:
                cur["woken"].add(g)
        if e["to"] == "Running":
            running[g] = (e["T"], e["P"])
            if g in lost_at:
                lost_waits.append(e["T"] - lost_at.pop(g))
        if e["from"] == "Running" and g in running:
            t, p = running.pop(g)
            if cur is not None:
                cur["busy"][p] += e["T"] - t
        if e["to"] == "Syscall":
            in_syscall[g] = e["T"]
            if cur is not None:
                cur["writes"] += 1
        if e["from"] == "Syscall" and g in in_syscall:
            d = e["T"] - in_syscall.pop(g)
            if e["to"] == "Running":
                kept.append(d)
                if cur is not None:
                    cur["busy"][e["P"]] += d  # the P stayed with it
            else:
                lost.append(d)
                lost_at[g] = e["T"]
                if cur is not None:
                    cur["lost"] += 1
                    cur["lost_ns"] += d
        idle[g] = e["to"] == "Waiting" and e["why"] == "select"
        if cur is not None and all(idle.values()) and cur["woken"] >= set(idle):
            cur["end"] = e["T"]
            rounds.append(cur)
            cur = None

    rounds = rounds[1:]  # the first may have begun before the trace
    if not rounds:
        sys.exit("rounds.py: no complete round in the trace")
    median_writes = statistics.median(r["writes"] for r in rounds)
    one_tag = [r for r in rounds if r["writes"] <= median_writes]

    def length(rs):
        return [(r["end"] - r["start"]) / 1e6 for r in rs]

    def ptime(rs):
        return [sum(r["busy"].values()) / 1e6 for r in rs]

    def ms(xs):
        return spread(xs, lambda x: f"{x:.2f}")

    row = "| {:<62} | {:>22} |"
    print(f"\nWriter-group rounds ({path}, {span:.2f} s, {len(groups)} groups, "
          f"{len(rounds)} rounds, {len(one_tag)} of one write per viewer)\n")
    print(row.format("figure (p50/p90/max)", "value"))
    print(row.format("-" * 62, "-" * 22))
    print(row.format("rounds per second", f"{len(rounds) / span:.1f}"))
    print(row.format("writes per round", spread([r["writes"] for r in rounds], lambda x: f"{x:.0f}")))
    print(row.format("round length, wake-up to all groups waiting again (ms)", ms(length(rounds))))
    print(row.format("  rounds of one write per viewer (ms)", ms(length(one_tag))))
    print(row.format("  their P-time, all Ps (ms)", ms(ptime(one_tag))))
    print(row.format("  their P-time / length", spread([b / d for b, d in zip(ptime(one_tag), length(one_tag)) if d],
                                                       lambda x: f"{x:.2f}")))
    if kept:
        print(row.format("writev that kept its P, wall time (us)", spread(kept, lambda x: f"{x / 1e3:.1f}")))
    print(row.format("writev that lost its P (Syscall->Runnable), per second", f"{len(lost) / span:.0f}"))
    if lost:
        print(row.format("  its wall time (ms)", spread(lost, lambda x: f"{x / 1e6:.2f}")))
        print(row.format("  then its goroutine waiting for a P (ms)", spread(lost_waits, lambda x: f"{x / 1e6:.2f}")))
        print(row.format("  rounds with one, share", f"{sum(1 for r in rounds if r['lost']) / len(rounds):.0%}"))
    if not kept and not lost:
        print("\n(no system call events: the writes bypass the runtime's syscall entry)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
