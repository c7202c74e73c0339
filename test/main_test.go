// End-to-end tests: the flvgw binary, publishers (ffmpeg where installed,
// the Go RTMP publisher otherwise) and HTTP-FLV viewers, all on loopback.
package test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"flvgw/test/testkit"
)

// gatewayBin is the flvgw binary built once for this test process.
var gatewayBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "flvgw-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gatewayBin, err = testkit.BuildGateway(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// sampleTags is the test clip (H.264 + AAC, 1 s GOP), parsed once.
func loadTags(t testing.TB, file string) []testkit.Tag {
	t.Helper()
	s, err := testkit.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	return s.Tags
}

// publisher publishes file to key on gw until stop is called: ffmpeg where
// installed, the Go publisher otherwise. stop returns once it has gone.
func startPublisher(t testing.TB, gw *testkit.Gateway, key, file string, useFFmpeg bool) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	if useFFmpeg {
		cmd, err := testkit.FFmpegPublish(ctx, "testdata/"+file, "rtmp://"+gw.RTMPAddr+"/"+key, true)
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = cmd.Wait(); close(done) }()
	} else {
		app, stream := splitKey(key)
		pub := &testkit.Publisher{Addr: gw.RTMPAddr, App: app, Stream: stream, Tags: loadTags(t, file), Loop: true}
		go func() { _ = pub.Run(ctx); close(done) }()
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("publisher did not stop")
		}
	}
	t.Cleanup(stop)
	return stop
}

func splitKey(key string) (string, string) {
	for i := range key {
		if key[i] == '/' {
			return key[:i], key[i+1:]
		}
	}
	return key, ""
}

// waitLive waits until key is live with a keyframe: a HEAD answers 200 and
// the API shows bytes in.
func waitLive(t testing.TB, gw *testkit.Gateway, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		streams, err := gw.Streams(ctx)
		if err == nil {
			for _, s := range streams {
				if s.Key == key && s.State != "waiting" && s.BytesIn > 20000 {
					return
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("stream %s did not go live\n%s", key, gw.Stderr())
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}

// waitSubscribers waits until the gateway counts n subscribers, and fails
// the test (with what) if it does not within timeout.
func waitSubscribers(t testing.TB, gw *testkit.Gateway, n int, timeout time.Duration, what string) {
	t.Helper()
	if !waitFor(timeout, func() bool {
		s, err := gw.Metric(context.Background(), "flvgw_subscribers")
		return err == nil && int(s) == n
	}) {
		t.Fatalf("%s: want %d subscribers\n%s", what, n, gw.Stderr())
	}
}

// goroutines reads the gateway's goroutine count. The test's idle
// keep-alive connections to it are closed first: each holds a goroutine
// of the gateway's for as long as it stays open, and how many the client
// keeps depends on how many requests ran at once before.
func goroutines(t testing.TB, gw *testkit.Gateway) float64 {
	t.Helper()
	http.DefaultClient.CloseIdleConnections()
	n, err := gw.Metric(context.Background(), "go_goroutines")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkNoLeak waits until the gateway's goroutines are back to baseline
// (fasthttp's idle workers take up to 10 s to go) and fails with a dump
// of them otherwise.
func checkNoLeak(t testing.TB, gw *testkit.Gateway, baseline float64) {
	t.Helper()
	var last float64
	if !waitFor(30*time.Second, func() bool {
		last = goroutines(t, gw)
		return last <= baseline+2
	}) {
		t.Fatalf("goroutines %v, baseline %v: leak\n%s", last, baseline, gw.Goroutines(context.Background()))
	}
}

// readSlowly reads 1 KB a second from r, conn's reader, until stop is
// called (which waits for it) or a read fails other than by conn's read
// deadline: a slow viewer.
func readSlowly(conn net.Conn, r io.Reader) (stop func()) {
	stopping, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1024)
		for {
			select {
			case <-stopping:
				return
			case <-time.After(time.Second):
			}
			_ = conn.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := r.Read(buf); err != nil && !isTimeoutErr(err) {
				return
			}
		}
	}()
	return func() { close(stopping); <-done }
}
