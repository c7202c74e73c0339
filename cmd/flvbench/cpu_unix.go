//go:build unix

package main

import (
	"syscall"
	"time"
)

// ownCPUSeconds is the user and system CPU this process has used: what
// the load tool takes from a machine it shares with the server it
// measures.
func ownCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
