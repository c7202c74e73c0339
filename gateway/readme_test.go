package gateway

import (
	"io"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"flvgw/pool"
)

// TestMetricsTableMatchesExports: the README's metrics table names every
// flvgw_ series that /metrics exports, and none that it does not. The
// scrape is taken with a stream playing and a request refused, so that
// the per-stream series and the labelled counters have values to show.
func TestMetricsTableMatchesExports(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Metrics\n")
	if !ok {
		t.Fatal("README has no Metrics section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	documented := map[string]bool{}
	name := regexp.MustCompile("`(flvgw_[a-z_]+)(?:\\{[a-z_,]+\\})?`")
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			continue
		}
		for _, m := range name.FindAllStringSubmatch(cells[1], -1) {
			documented[m[1]] = true
		}
	}
	if len(documented) == 0 {
		t.Fatal("no flvgw_ series found in the README's metrics table")
	}

	r := startRelay(t, testConfig())
	r.gw.ReportUpstreams(func() []pool.UpstreamAttempts { return []pool.UpstreamAttempts{{Upstream: "origin-a"}} })
	r.gw.ReportRTMP(func() RTMPCounts { return RTMPCounts{} })
	stopPub := publish(t, r, "metrics")
	defer stopPub()
	waitReady(t, r, "live/metrics")
	get := func(path string) string {
		resp, err := http.Get("http://" + r.httpAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	get("/no-such-endpoint") // a refusal, for flvgw_refusals_total
	exported := map[string]bool{}
	typeLine := regexp.MustCompile(`(?m)^# TYPE (flvgw_[a-z_]+) `)
	for _, m := range typeLine.FindAllStringSubmatch(get("/metrics"), -1) {
		exported[m[1]] = true
	}
	for _, n := range slices.Sorted(maps.Keys(exported)) {
		if !documented[n] {
			t.Errorf("/metrics exports %s, which the README's metrics table does not list", n)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(documented)) {
		if !exported[n] {
			t.Errorf("the README's metrics table lists %s, which /metrics does not export", n)
		}
	}
}
