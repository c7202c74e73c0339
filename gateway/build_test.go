package gateway

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
)

// /metrics says which build serves it: flvgw_build_info, 1, with the
// running binary's commit, its checkout's state and Go's version.
func TestBuildInfoIsExported(t *testing.T) {
	r := startRelay(t, testConfig())
	resp, err := http.Get("http://" + r.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	b := Build()
	want := fmt.Sprintf("flvgw_build_info{go_version=%q,modified=\"%t\",revision=%q} 1", runtime.Version(), b.Modified, b.Revision)
	if !strings.Contains(string(text), want+"\n") {
		t.Fatalf("/metrics has no %s", want)
	}
}

// The short form names the commit by its first 12 digits and marks a
// changed checkout.
func TestBuildInfoString(t *testing.T) {
	for _, tc := range []struct {
		b    BuildInfo
		want string
	}{
		{BuildInfo{Revision: "0123456789abcdef0123", GoVersion: "go1.26.8"}, "flvgw 0123456789ab go1.26.8"},
		{BuildInfo{Revision: "0123456789abcdef0123", Modified: true, GoVersion: "go1.26.8"}, "flvgw 0123456789ab+modified go1.26.8"},
		{BuildInfo{Revision: "unknown", GoVersion: "go1.26.8"}, "flvgw unknown go1.26.8"},
	} {
		if got := tc.b.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.b, got, tc.want)
		}
	}
}
