package main

import (
	"io"
	"log/slog"
	"runtime/debug"
	"testing"
)

// TestApplyRuntime: runtime.gc_percent sets the collector's target, and a
// GOGC in the environment wins over it.
func TestApplyRuntime(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	noEnv := func(string) (string, bool) { return "", false }
	withGOGC := func(k string) (string, bool) { return "200", k == "GOGC" }

	applyRuntime(RuntimeConfig{GCPercent: 40}, noEnv, log)
	if got := debug.SetGCPercent(100); got != 40 {
		t.Fatalf("gc percent %d after runtime.gc_percent = 40", got)
	}
	applyRuntime(RuntimeConfig{GCPercent: 40}, withGOGC, log)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("gc percent %d with GOGC set: the environment should win", got)
	}
}
