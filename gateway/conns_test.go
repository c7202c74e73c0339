package gateway

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// series reads one unlabelled series of gw's /metrics.
func series(t *testing.T, gw *Server, name string) float64 {
	t.Helper()
	mfs, err := gw.metrics.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if m.Gauge != nil {
			return m.GetGauge().GetValue()
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

// waitSeries waits up to 5 s for gw's series name to read want.
func waitSeries(t *testing.T, gw *Server, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for series(t, gw, name) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s is %v, want %v", name, series(t, gw, name), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// http.max_connections bounds the connections that are not viewers
// playing: with idle connections holding the bound, a new one is answered
// 503 and closed, and counted, while the viewers play on; a viewer's
// connection leaves the count once its stream starts, and an idle one
// that goes frees its place.
func TestMaxConnectionsRefusesIdleConnectionsNotViewers(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConnections = 2
	r := startRelay(t, cfg)
	stop := publish(t, r, "a")
	defer stop()
	waitReady(t, r, "live/a")

	// Three viewers, one after another: more than the bound, each let go
	// of it once playing.
	var viewers []*bufio.Reader
	for range 3 {
		c, err := net.Dial("tcp", r.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET /live/a.flv HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("viewer: %v, %v", resp, err)
		}
		viewers = append(viewers, br)
	}
	waitSeries(t, r.gw, "flvgw_http_connections", 0)

	// Two idle connections hold the bound.
	var idle []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", r.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		idle = append(idle, c)
	}
	waitSeries(t, r.gw, "flvgw_http_connections", 2)

	refused, err := net.Dial("tcp", r.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer refused.Close()
	_ = refused.SetDeadline(time.Now().Add(10 * time.Second))
	answer, err := io.ReadAll(refused) // to the close
	if err != nil || !strings.HasPrefix(string(answer), "HTTP/1.1 503 ") {
		t.Fatalf("a connection past the bound: %q, %v; want 503 and the close", answer, err)
	}
	if n := series(t, r.gw, "flvgw_http_connections_refused_total"); n != 1 {
		t.Errorf("flvgw_http_connections_refused_total = %v, want 1", n)
	}

	// The viewers play on: each still reads its stream.
	for i, br := range viewers {
		if _, err := br.Discard(64 << 10); err != nil {
			t.Fatalf("viewer %d after the refusal: %v", i, err)
		}
	}

	// An idle connection that goes frees its place (fasthttp marks it
	// closed a moment before its worker is free again).
	idle[0].Close()
	waitSeries(t, r.gw, "flvgw_http_connections", 1)
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://" + r.httpAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		if err == nil && resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a request after an idle connection went: %v, %v", resp, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fasthttp's line for http.max_connections refusals names the setting.
func TestConcurrencyRefusalLogNamesTheSetting(t *testing.T) {
	logs := &syncBuffer{}
	l := fasthttpLogger{slog.New(slog.NewTextHandler(logs, nil))}
	// As fasthttp v1.78's Server.Serve logs it.
	l.Printf("The incoming connection cannot be served, because %d concurrent connections are served. "+
		"Try increasing Server.Concurrency", 2)
	if got := logs.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "setting=http.max_connections") {
		t.Errorf("logged %q; want a warning naming http.max_connections", got)
	}
}
