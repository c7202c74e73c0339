//go:build race

package testkit

// RaceEnabled is true when the tests run with -race; the gateway binary
// they start is then built with it too.
const RaceEnabled = true
