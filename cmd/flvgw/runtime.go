package main

import (
	"fmt"
	"log/slog"
	"runtime/debug"
)

// RuntimeConfig tunes the Go runtime under flvgw. A restart applies it.
type RuntimeConfig struct {
	// GCPercent is the garbage collector's target: the heap may grow this
	// many percent over what the last collection kept before the next one
	// starts (Go's GOGC, which wins when set in the environment). flvgw's
	// garbage is mostly the tags its entries' rings drop, so it comes at
	// the streams' ingest bitrate, and tag bytes hold no pointers, so a
	// collection has little to scan: a low target keeps the heap, and RSS,
	// close to what is live for a small share of CPU (see the README's
	// performance section). 10 to 1000.
	GCPercent int `toml:"gc_percent"`
}

// DefaultGCPercent is runtime.gc_percent unless the file sets it.
const DefaultGCPercent = 25

func (r RuntimeConfig) validate() error {
	if r.GCPercent < 10 || r.GCPercent > 1000 {
		return fmt.Errorf("runtime.gc_percent must be between 10 and 1000, got %d", r.GCPercent)
	}
	return nil
}

// applyRuntime sets the garbage collector's target from c unless GOGC
// is in the environment (lookupEnv is os.LookupEnv outside tests), and
// logs which one holds.
func applyRuntime(c RuntimeConfig, lookupEnv func(string) (string, bool), log *slog.Logger) {
	if v, ok := lookupEnv("GOGC"); ok {
		log.Info("garbage collector target from the environment", "GOGC", v, "runtime.gc_percent", c.GCPercent)
		return
	}
	debug.SetGCPercent(c.GCPercent)
	log.Info("garbage collector target", "runtime.gc_percent", c.GCPercent)
}
