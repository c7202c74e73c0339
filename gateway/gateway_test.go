package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"flvgw/gateway/access"
	"flvgw/origin"
	"flvgw/pool"
	"flvgw/test/testkit"
)

// fasthttp's idle-worker cleaner notices a stopped server only after its
// next sleep (MaxIdleWorkerDuration), and its Date clock runs for the
// process's life; everything else must be gone.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		// the Date header's clock, started once per process by the first
		// response fasthttp writes itself
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"))
}

func TestParseStreamPath(t *testing.T) {
	for _, tc := range []struct {
		path, key string
	}{
		{"/live/test.flv", "live/test"},
		{"/app_1/cam-2.hd.flv", "app_1/cam-2.hd"},
		{"/live/" + strings.Repeat("a", 129) + ".flv", ""},
		{"/live/.flv", ""},
		{"/../test.flv", ""},
		{"/live/../x.flv", ""},
		{"//test.flv", ""},
		{"/live/a%2Fb.flv", ""},
		{"/live/a b.flv", ""},
		{"/a/b/c.flv", ""},
		{"live/test.flv", ""},
	} {
		key, err := parseStreamPath(tc.path, 128)
		if tc.key != key || (tc.key == "") != (err != nil) {
			t.Errorf("parseStreamPath(%q) = %q, %v; want %q", tc.path, key, err, tc.key)
		}
	}
}

// relay is an in-process gateway with its embedded origin on loopback.
type relay struct {
	pool     *pool.Pool
	gw       *Server
	httpAddr string
	rtmpAddr string
	stop     func()
}

// quietPool makes a pool with a silent log. The caller closes it.
func quietPool(t *testing.T, cfg pool.Config) (*pool.Pool, *slog.Logger) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := pool.New(cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p, log
}

// loopback listens on a free loopback port.
func loopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func startRelay(t *testing.T, gcfg Config) *relay {
	t.Helper()
	pcfg := pool.DefaultConfig()
	pcfg.IdleTimeout = 100 * time.Millisecond
	return startRelayWith(t, gcfg, pcfg)
}

func startRelayWith(t *testing.T, gcfg Config, pcfg pool.Config) *relay {
	t.Helper()
	p, log := quietPool(t, pcfg)
	httpLn, rtmpLn := loopback(t), loopback(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 3)
	gw := NewServer(gcfg, Policy{Limits: DefaultLimits(), Auth: DefaultAuth()}, p, log)
	org := origin.NewServer(origin.DefaultConfig(), p, log)
	go func() { _ = gw.Serve(ctx, httpLn); done <- struct{}{} }()
	go func() { _ = org.Serve(ctx, rtmpLn); done <- struct{}{} }()
	go func() { p.Run(ctx); done <- struct{}{} }()
	r := &relay{pool: p, gw: gw, httpAddr: httpLn.Addr().String(), rtmpAddr: rtmpLn.Addr().String()}
	r.stop = sync.OnceFunc(func() {
		cancel()
		for range 3 {
			<-done
		}
		p.Close()
	})
	t.Cleanup(r.stop)
	return r
}

func publish(t *testing.T, r *relay, stream string) (stop func()) {
	t.Helper()
	s, err := testkit.ReadFile("../test/testdata/sample.flv")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	pub := &testkit.Publisher{Addr: r.rtmpAddr, App: "live", Stream: stream, Tags: s.Tags, Loop: true}
	go func() { _ = pub.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

func waitReady(t *testing.T, r *relay, key string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if s, ok := r.pool.Lookup(key); ok && s.TagsIn > 50 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never became ready", key)
}

// publishKeyframe publishes key straight into p (no RTMP) with an AVC
// sequence header and a keyframe, so that it is ready to play; the
// publisher is closed when the test ends.
func publishKeyframe(t *testing.T, p *pool.Pool, key string) *pool.Publisher {
	t.Helper()
	pub, err := p.Publish(key, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close(nil) })
	for _, body := range [][]byte{{0x17, 0, 0, 0, 0, 1, 2, 3}, {0x17, 1, 0, 0, 0, 9}} {
		if err := pub.WriteTag(pool.TagVideo, 0, body); err != nil {
			t.Fatal(err)
		}
	}
	return pub
}

// Viewers of a stream whose publisher leaves end cleanly, and nothing the
// gateway, origin or pool started outlives them (goleak in TestMain).
func TestViewersEndWhenPublisherLeaves(t *testing.T) {
	r := startRelay(t, testConfig())
	stop := publish(t, r, "a")
	waitReady(t, r, "live/a")
	plays := make(chan testkit.Play, 20)
	for range cap(plays) {
		go func() {
			plays <- testkit.PlayFLV(context.Background(), "http://"+r.httpAddr+"/live/a.flv", nil)
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.pool.Stats().Subscribers < cap(plays) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	for range cap(plays) {
		p := <-plays
		if p.Status != 200 || p.Err != nil {
			t.Fatalf("viewer: %d %v", p.Status, p.Err)
		}
		if err := p.Stream.CheckPlayable(); err != nil {
			t.Fatal(err)
		}
	}
	// Each session unregisters right after its final chunk.
	deadline = time.Now().Add(2 * time.Second)
	for r.pool.Stats().Subscribers != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s := r.pool.Stats(); s.Entries != 0 || s.Subscribers != 0 {
		t.Fatalf("after the publisher left: %+v", s)
	}
}

// Shutdown ends viewers with their final chunk and leaves no goroutine.
func TestShutdownEndsViewers(t *testing.T) {
	r := startRelay(t, testConfig())
	stopPub := publish(t, r, "b")
	defer stopPub()
	waitReady(t, r, "live/b")
	plays := make(chan testkit.Play, 5)
	for range cap(plays) {
		go func() { plays <- testkit.PlayFLV(context.Background(), "http://"+r.httpAddr+"/live/b.flv", nil) }()
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.pool.Stats().Subscribers < cap(plays) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	r.stop()
	for range cap(plays) {
		if p := <-plays; p.Status != 200 || p.Err != nil {
			t.Fatalf("viewer at shutdown: %d %v", p.Status, p.Err)
		}
	}
}

// Servers stopped as they start (a SIGTERM during startup) still return:
// neither fasthttp's nor go-rtmp's Serve may be left in Accept on a
// listener their shutdown did not know of yet.
func TestStopRightAfterStart(t *testing.T) {
	p, log := quietPool(t, pool.DefaultConfig())
	defer p.Close()
	for range 20 {
		httpLn, rtmpLn := loopback(t), loopback(t)
		gw := NewServer(testConfig(), Policy{Limits: DefaultLimits(), Auth: DefaultAuth()}, p, log)
		org := origin.NewServer(origin.DefaultConfig(), p, log)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan string, 2)
		go func() { _ = gw.Serve(ctx, httpLn); done <- "gateway" }()
		go func() { _ = org.Serve(ctx, rtmpLn); done <- "origin" }()
		cancel()
		for range 2 {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("a server did not return after its context ended: its Serve is still accepting")
			}
		}
	}
}

// A client still trickling a request's headers when the shutdown grace
// ends (read_timeout is longer) is cut then, and the stop is a clean one:
// Serve returns nil, so flvgw exits 0 on SIGTERM.
func TestShutdownCutsRequestsUnfinishedAfterTheGrace(t *testing.T) {
	p, log := quietPool(t, pool.DefaultConfig())
	defer p.Close()
	ln := loopback(t)
	cfg := testConfig()
	cfg.ReadTimeout = 4 * shutdownGrace
	gw := NewServer(cfg, Policy{Limits: DefaultLimits(), Auth: DefaultAuth()}, p, log)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- gw.Serve(ctx, ln) }()
	slow, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := io.WriteString(slow, "GET /live/x.flv HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		gw.conns.mu.Lock()
		n := len(gw.conns.set)
		gw.conns.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections tracked, want the slow one", n)
		}
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve after the grace: %v", err)
		}
	case <-time.After(shutdownGrace + 5*time.Second):
		t.Fatal("Serve did not return after the shutdown grace")
	}
	_ = slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(slow); err != nil {
		t.Fatalf("the unfinished request's connection was not closed: %v", err)
	}
}

// A viewer that vanishes is noticed at the next write and unregistered;
// the other viewers keep playing.
func TestVanishedViewerIsReleased(t *testing.T) {
	r := startRelay(t, testConfig())
	stopPub := publish(t, r, "c")
	defer stopPub()
	waitReady(t, r, "live/c")
	c, err := net.Dial("tcp", r.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "GET /live/c.flv HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	if _, err := io.ReadAtLeast(c, buf, 100); err != nil {
		t.Fatal(err)
	}
	leave := make(chan struct{})
	other := make(chan testkit.Play, 1)
	go func() { other <- testkit.PlayFLV(context.Background(), "http://"+r.httpAddr+"/live/c.flv", leave) }()
	deadline := time.Now().Add(5 * time.Second)
	for r.pool.Stats().Subscribers < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
	for r.pool.Stats().Subscribers != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := r.pool.Stats().Subscribers; n != 1 {
		t.Fatalf("subscribers %d after one viewer vanished, want 1", n)
	}
	close(leave)
	p := <-other
	if p.Status != 200 || !p.Left() {
		t.Fatalf("other viewer: %d %v", p.Status, p.Err)
	}
	if a, v := p.Stream.CountMedia(); a == 0 || v == 0 {
		t.Fatalf("other viewer stopped getting media: %d %d", a, v)
	}
}

func TestUnknownStreamAnswers404AtOnce(t *testing.T) {
	r := startRelay(t, testConfig())
	start := time.Now()
	resp, err := http.Get("http://" + r.httpAddr + "/live/none.flv")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(body), "not found") || time.Since(start) > time.Second {
		t.Fatalf("%d %q after %s", resp.StatusCode, body, time.Since(start))
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatal("404 without CORS header: browser players cannot read it")
	}
}

func testConfig() Config {
	c := DefaultConfig()
	c.Listen = "127.0.0.1:0"
	return c
}

// A viewer that closes its connection while its request waits (here for
// the stream's publisher, up to publish_wait) is let go at once: it stops
// counting against the limits and the entry. One that keeps waiting is
// kept past read_timeout (fasthttp clears the request's read deadline
// before the hijack; the watch's read would end at it otherwise), and
// plays once the publisher comes.
func TestViewerLeavingWhileWaitingIsReleased(t *testing.T) {
	cfg := testConfig()
	cfg.PublishWait = 30 * time.Second
	cfg.ReadTimeout = 200 * time.Millisecond
	r := startRelay(t, cfg)
	limits := DefaultLimits()
	limits.MaxViewersPerIP = 1
	r.gw.SetPolicy(Policy{Limits: limits, Auth: DefaultAuth()})

	request := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", r.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, "GET /live/w.flv HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		return c
	}
	waitViewers := func(n int, what string) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for (r.gw.Viewers() != n || r.pool.Stats().Subscribers != n) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if v, s := r.gw.Viewers(), r.pool.Stats().Subscribers; v != n || s != n {
			t.Fatalf("%s: %d viewers, %d subscribers, want %d", what, v, s, n)
		}
	}

	for i := range 3 { // within max_viewers_per_ip = 1 only if each is let go
		c := request()
		waitViewers(1, fmt.Sprintf("waiting viewer %d", i))
		if i == 1 { // bytes after the request, then the close
			_, _ = io.WriteString(c, "GET /live/other.flv HTTP/1.1\r\nHost: x\r\n\r\n")
			time.Sleep(50 * time.Millisecond)
		}
		c.Close()
		waitViewers(0, fmt.Sprintf("after waiting viewer %d left", i))
	}

	var m dto.Metric
	if err := r.gw.metrics.refusals.WithLabelValues("viewer_left").Write(&m); err != nil {
		t.Fatal(err)
	}
	if n := m.GetCounter().GetValue(); n != 3 {
		t.Fatalf("flvgw_refusals_total{reason=\"viewer_left\"} is %v, want 3", n)
	}

	c := request()
	defer c.Close()
	waitViewers(1, "the viewer that stays")
	time.Sleep(4 * cfg.ReadTimeout)
	waitViewers(1, "the viewer that stays, past read_timeout")
	stopPub := publish(t, r, "w")
	defer stopPub()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	head := make([]byte, 12)
	if _, err := io.ReadFull(c, head); err != nil || string(head) != "HTTP/1.1 200" {
		t.Fatalf("the viewer that stayed got %q, %v", head, err)
	}
}

// An HTTP/1.0 client cannot read chunked encoding: its stream comes
// without Transfer-Encoding, delimited by the connection's close, as
// plain FLV from the first byte to the last tag, also once the writer
// groups serve it, and whichever http.delivery is set (fasthttp's stream
// writer can only send a chunked body, so such a viewer is always given a
// hijacked session).
func TestHTTP10ViewerGetsCloseDelimitedStream(t *testing.T) {
	for _, delivery := range []string{DeliveryHijack, DeliveryStreamWriter} {
		t.Run(delivery, func(t *testing.T) { testHTTP10Viewer(t, delivery) })
	}
}

func testHTTP10Viewer(t *testing.T, delivery string) {
	cfg := testConfig()
	cfg.Delivery = delivery
	r := startRelay(t, cfg)
	stopPub := sync.OnceFunc(publish(t, r, "h10"))
	defer stopPub()
	waitReady(t, r, "live/h10")
	c, err := net.Dial("tcp", r.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, "GET /live/h10.flv HTTP/1.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodGet, ProtoMajor: 1, ProtoMinor: 0})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || len(resp.TransferEncoding) != 0 || resp.ContentLength != -1 {
		t.Fatalf("HTTP/1.0 viewer got %d with Transfer-Encoding %q, Content-Length %d; want 200, a body up to the close",
			resp.StatusCode, resp.TransferEncoding, resp.ContentLength)
	}
	tr, err := testkit.NewTagReader(resp.Body)
	if err != nil {
		t.Fatalf("body does not start with an FLV header: %v", err)
	}
	for i := range 200 { // past the GOP cache, into the live tags
		if _, err := tr.Next(); err != nil {
			t.Fatalf("tag %d: %v", i, err)
		}
	}
	stopPub()
	for {
		if _, err := tr.Next(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("after the publisher left: %v, want the stream to end at a tag boundary", err)
			}
			break
		}
	}
}

// auth.on_play allows with a 2xx answer only: a redirect refuses (403),
// however its target would answer. An auth service's redirect to a login
// page, or from http to https, is not its consent.
func TestOnPlayRedirectRefuses(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/play", func(w http.ResponseWriter, req *http.Request) {
		http.Redirect(w, req, "/login", http.StatusFound)
	})
	mux.HandleFunc("/login", func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.WriteString(w, "<html>log in</html>")
	})
	cb := httptest.NewServer(mux)
	defer cb.Close()

	r := startRelay(t, testConfig())
	stopPub := publish(t, r, "rd")
	defer stopPub()
	waitReady(t, r, "live/rd")
	auth := DefaultAuth()
	auth.OnPlay = cb.URL + "/play"
	r.gw.SetPolicy(Policy{Limits: DefaultLimits(), Auth: auth})

	resp, err := http.Get("http://" + r.httpAddr + "/live/rd.flv")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // a viewer let in leaves at once
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("on_play answered with a redirect to a 200 page: viewer got %d, want 403", resp.StatusCode)
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// loggingGateway serves a gateway, with a pool of its own and its log at
// info in logs, on a loopback listener until the test's end.
func loggingGateway(t *testing.T) (gw *Server, ln net.Listener, logs *syncBuffer) {
	t.Helper()
	logs = &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	p, err := pool.New(pool.DefaultConfig(), log, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln = loopback(t)
	gw = NewServer(testConfig(), Policy{Limits: DefaultLimits(), Auth: DefaultAuth()}, p, log)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { _ = gw.Serve(ctx, ln); close(served) }()
	t.Cleanup(func() { cancel(); <-served; p.Close() })
	return gw, ln, logs
}

// A request flvgw cannot read is answered 400 and logged once, as a
// refusal with its reason, and its bytes are not in the log: they may
// carry a play token in the query or the API token in Authorization.
func TestUnreadableRequestLoggedOnceWithoutItsContents(t *testing.T) {
	_, ln, logs := loggingGateway(t)

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /live/p.flv?expires=1&token=PLAYSECRET HTTP/1.1\r\nHost: x\r\n"+
		"Authorization: Bearer APISECRET\r\nno colon here\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := io.ReadAll(c) // to the close, which comes after fasthttp's own log
	if err != nil || !strings.HasPrefix(string(resp), "HTTP/1.1 400 ") {
		t.Fatalf("answer %q, %v; want 400 and the close", resp, err)
	}
	var lines []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, c.LocalAddr().String()) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], `msg="request refused"`) {
		t.Errorf("the request is logged in %d lines, want one refusal:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if all := logs.String(); strings.Contains(all, "PLAYSECRET") || strings.Contains(all, "APISECRET") {
		t.Errorf("the log holds the request's tokens:\n%s", all)
	}
}

// Per-stream series are for streams that have had media: a viewer
// waiting for a stream nobody publishes (http.publish_wait) cannot make
// a series of a name it invents, nor, with names that sort first, push a
// live stream out of the first http.max_stream_series.
func TestInventedStreamNamesMakeNoSeries(t *testing.T) {
	cfg := testConfig()
	cfg.PublishWait = time.Minute
	cfg.MaxStreamSeries = 2
	r := startRelay(t, cfg)
	stopPub := publish(t, r, "real")
	defer stopPub()
	waitReady(t, r, "live/real")
	for _, name := range []string{"aaa/invented1", "aaa/invented2"} {
		c, err := net.Dial("tcp", r.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /"+name+".flv HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.pool.Stats().Entries != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("entries %+v, want the live one and two waiting", r.pool.Snapshots())
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Get("http://" + r.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var series []string
	for _, l := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(l, "flvgw_stream_viewers{") {
			series = append(series, l)
		}
	}
	if len(series) != 1 || !strings.Contains(series[0], `stream="live/real"`) {
		t.Fatalf("flvgw_stream_viewers series %q, want the live stream's only", series)
	}
}

// The streams API and /metrics are read-only: a method other than GET or
// HEAD gets 405 with Allow, not a 200 that reads as if a DELETE of a
// stream or a POST had been done.
func TestOperatorEndpointsRefuseOtherMethods(t *testing.T) {
	r := startRelay(t, testConfig())
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodDelete, "/api/v1/streams/live/x", http.StatusForbidden}, // auth.api_token unset
		{http.MethodDelete, "/api/v1/streams", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/metrics", http.StatusMethodNotAllowed},
		{http.MethodPost, "/api/v1/streams", http.StatusMethodNotAllowed},
		{http.MethodPost, "/api/v1/streams/live/x", http.StatusMethodNotAllowed},
		{http.MethodPut, "/metrics", http.StatusMethodNotAllowed},
		{http.MethodGet, "/api/v1/streams", http.StatusOK},
		{http.MethodHead, "/api/v1/streams", http.StatusOK},
		{http.MethodGet, "/metrics", http.StatusOK},
		{http.MethodOptions, "/healthz", http.StatusOK}, // load balancers check with OPTIONS too
	} {
		resp := roundTrip(t, tc.method, "http://"+r.httpAddr+tc.path)
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
		if tc.want == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %s: Allow %q, want \"GET, HEAD\"", tc.method, tc.path, resp.Header.Get("Allow"))
		}
	}
}

// A request whose body is over what flvgw reads (64 KiB: no route takes
// a body) is answered 413, not a 400 that reads as a malformed request,
// and counted as body_too_large.
func TestRequestBodyTooLargeIs413(t *testing.T) {
	r := startRelay(t, testConfig())
	for _, req := range []string{
		"POST /api/v1/streams HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n",
		"GET /live/x.flv HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n",
	} {
		c, err := net.Dial("tcp", r.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, _ := io.ReadAll(c)
		c.Close()
		if resp := strings.TrimPrefix(string(got), "HTTP/1.1 100 Continue\r\n\r\n"); !strings.HasPrefix(resp, "HTTP/1.1 413 ") {
			t.Errorf("%q: answered %q, want 413", req, got)
		}
	}
	var m dto.Metric
	if err := r.gw.metrics.refusals.WithLabelValues("body_too_large").Write(&m); err != nil {
		t.Fatal(err)
	}
	if n := m.GetCounter().GetValue(); n != 2 {
		t.Errorf("flvgw_refusals_total{reason=\"body_too_large\"} is %v, want 2", n)
	}
}

// HEAD answers as GET would, without the body: with signed URLs on, a
// HEAD without a valid token gets 403, not a 200 that tells whoever asks
// which streams are live; while draining, 503.
func TestHeadAppliesSignedURLsAndDrain(t *testing.T) {
	r := startRelay(t, testConfig())
	stopPub := publish(t, r, "hd")
	defer stopPub()
	waitReady(t, r, "live/hd")
	auth := DefaultAuth()
	auth.PlaySecret = "s3cret"
	r.gw.SetPolicy(Policy{Limits: DefaultLimits(), Auth: auth})
	signed := "/live/hd.flv?" + access.Query("s3cret", "live/hd", time.Now().Add(time.Hour))
	head := func(path string) int {
		t.Helper()
		resp, err := http.Head("http://" + r.httpAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for path, want := range map[string]int{
		"/live/hd.flv":                    http.StatusForbidden,
		"/live/hd.flv?expires=1&token=00": http.StatusForbidden,
		signed:                            http.StatusOK,
	} {
		if got := head(path); got != want {
			t.Errorf("HEAD %s: %d, want %d", path, got, want)
		}
	}
	r.gw.Drain()
	if got := head(signed); got != http.StatusServiceUnavailable {
		t.Errorf("HEAD while draining: %d, want 503", got)
	}
}

// HEAD answers where the viewer limits would refuse a GET as the GET
// would be answered: 503 with max_viewers or max_viewers_per_stream
// reached, 429 with max_viewers_per_ip, so that a balancer or a player
// checking a stream with HEAD does not send a viewer to a refusal.
func TestHeadAppliesTheViewerLimits(t *testing.T) {
	r := startRelay(t, testConfig())
	stopPub := publish(t, r, "hl")
	defer stopPub()
	waitReady(t, r, "live/hl")
	head := func() (int, string) {
		t.Helper()
		resp, err := http.Head("http://" + r.httpAddr + "/live/hl.flv")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	if got, _ := head(); got != http.StatusOK {
		t.Fatalf("HEAD with no viewer: %d, want 200", got)
	}
	if got := playWithXFF(t, r, "/live/hl.flv", ""); got != http.StatusOK {
		t.Fatalf("viewer: %d", got)
	}
	for _, tc := range append(oneViewerLimits(),
		limitCase{"none reached", func(l *Limits) { l.MaxViewers, l.MaxViewersPerStream, l.MaxViewersPerIP = 2, 2, 2 }, http.StatusOK}) {
		limits := DefaultLimits()
		tc.limits(&limits)
		r.gw.SetPolicy(Policy{Limits: limits, Auth: DefaultAuth()})
		got, retry := head()
		if got != tc.want || (got != http.StatusOK) != (retry != "") {
			t.Errorf("HEAD with one viewer, %s: %d (Retry-After %q), want %d", tc.name, got, retry, tc.want)
		}
	}
}

// HEAD checks the limits in the order GET does: max_viewers and
// max_viewers_per_ip before the signed URL (a GET refused for both gets
// the limit's 503 or 429, not 403), max_viewers_per_stream after it.
func TestHeadChecksLimitsAndSignedURLInGetsOrder(t *testing.T) {
	r := startRelay(t, testConfig())
	stopPub := publish(t, r, "ho")
	defer stopPub()
	waitReady(t, r, "live/ho")
	auth := DefaultAuth()
	auth.PlaySecret = "s3cret"
	signed := "/live/ho.flv?" + access.Query("s3cret", "live/ho", time.Now().Add(time.Hour))
	r.gw.SetPolicy(Policy{Limits: DefaultLimits(), Auth: auth})
	if got := playWithXFF(t, r, signed, ""); got != http.StatusOK {
		t.Fatalf("viewer: %d", got)
	}
	for _, tc := range oneViewerLimits() {
		limits := DefaultLimits()
		tc.limits(&limits)
		r.gw.SetPolicy(Policy{Limits: limits, Auth: auth})
		get := playWithXFF(t, r, "/live/ho.flv", "")
		resp := roundTrip(t, http.MethodHead, "http://"+r.httpAddr+"/live/ho.flv")
		// max_viewers_per_stream comes after the signed URL: 403 from both.
		if resp.StatusCode != get {
			t.Errorf("%s reached, no signed URL: HEAD %d, GET %d", tc.name, resp.StatusCode, get)
		}
	}
}

// limitCase is a viewer limit set on the policy, and the status a viewer
// past it gets.
type limitCase struct {
	name   string
	limits func(*Limits)
	want   int
}

// oneViewerLimits are the viewer limits a single viewer of the stream
// from this address reaches.
func oneViewerLimits() []limitCase {
	return []limitCase{
		{"max_viewers", func(l *Limits) { l.MaxViewers = 1 }, http.StatusServiceUnavailable},
		{"max_viewers_per_stream", func(l *Limits) { l.MaxViewersPerStream = 1 }, http.StatusServiceUnavailable},
		{"max_viewers_per_ip", func(l *Limits) { l.MaxViewersPerIP = 1 }, http.StatusTooManyRequests},
	}
}

// A stream's refusals are not to be cached: a cache in front of flvgw
// (a CDN caches a 404 of a .flv URL for minutes by default) would
// otherwise answer 404 for a stream long after its publisher came, or
// 503 after the limits let viewers in again.
func TestStreamRefusalsAreNotCached(t *testing.T) {
	r := startRelay(t, testConfig())
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		resp := roundTrip(t, method, "http://"+r.httpAddr+"/live/notyet.flv")
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(resp.Header.Get("Cache-Control"), "no-store") {
			t.Errorf("%s of a stream not published: %d with Cache-Control %q, want 404 with no-store",
				method, resp.StatusCode, resp.Header.Get("Cache-Control"))
		}
	}
}

// A stream that is published but sends no keyframe within
// http.start_timeout (an encoder sending only its sequence headers and
// audio, say) answers 504, counted as no_keyframe: not the 404 of a
// stream nobody publishes, nor a wait without end.
func TestNoKeyframeInTimeIsGatewayTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.StartTimeout = 300 * time.Millisecond
	r := startRelay(t, cfg)
	pub, err := r.pool.Publish("live/nokey", "test")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(nil)
	if err := pub.WriteTag(pool.TagVideo, 0, []byte{0x17, 0, 0, 0, 0, 1, 2, 3}); err != nil { // a sequence header only
		t.Fatal(err)
	}
	start := time.Now()
	resp := roundTrip(t, http.MethodGet, "http://"+r.httpAddr+"/live/nokey.flv")
	if d := time.Since(start); resp.StatusCode != http.StatusGatewayTimeout || d < cfg.StartTimeout {
		t.Fatalf("a stream without a keyframe: %d after %s, want 504 after start_timeout (%s)", resp.StatusCode, d, cfg.StartTimeout)
	}
	var m dto.Metric
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if err := r.gw.metrics.refusals.WithLabelValues("no_keyframe").Write(&m); err != nil {
			t.Fatal(err)
		}
		if m.GetCounter().GetValue() == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("flvgw_refusals_total{reason=\"no_keyframe\"} is %v, want 1", m.GetCounter().GetValue())
		}
	}
}

// brokenSource is an upstream that breaks the protocol before any tag.
type brokenSource struct{}

func (brokenSource) Name() string { return "broken" }

func (brokenSource) Run(context.Context, *pool.Publisher) error {
	return fmt.Errorf("upstream sent HTML: %w", pool.ErrBadTag)
}

// A pulled stream whose upstream broke the protocol before the stream
// could start is the upstream's failure, as an unreachable one is: 502,
// not the 404 of a stream nobody has (which a cache in front may keep).
func TestMalformedPullBeforeReadyIsBadGateway(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := pool.New(pool.DefaultConfig(), log, func(string) pool.Source { return brokenSource{} })
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	gw := NewServer(DefaultConfig(), Policy{Limits: DefaultLimits(), Auth: DefaultAuth()}, p, log)
	ln := loopback(t)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { _ = gw.Serve(ctx, ln); close(served) }()
	defer func() { cancel(); <-served }()

	resp, err := http.Get("http://" + ln.Addr().String() + "/live/broken.flv")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("viewer of a pull whose upstream broke the protocol: %d, want 502", resp.StatusCode)
	}
	// The refusal is counted once its answer is written.
	var n float64
	for deadline := time.Now().Add(5 * time.Second); n != 1 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var m dto.Metric
		if err := gw.metrics.refusals.WithLabelValues("upstream").Write(&m); err != nil {
			t.Fatal(err)
		}
		n = m.GetCounter().GetValue()
	}
	if n != 1 {
		t.Fatalf("flvgw_refusals_total{reason=\"upstream\"} is %v, want 1", n)
	}
}

// Behind a trusted proxy (http.trusted_proxies), max_viewers_per_ip
// counts the client X-Forwarded-For names, the right-most address that is
// not a trusted proxy: not the proxy, which would be every viewer, and
// not an address the client wrote to the left of it. From a peer not
// trusted, or with none configured, the header is ignored.
func TestTrustedProxyNamesTheClient(t *testing.T) {
	for _, trusted := range []bool{true, false} {
		t.Run(fmt.Sprintf("trusted=%v", trusted), func(t *testing.T) {
			cfg := testConfig()
			if trusted {
				cfg.TrustedProxies = []string{"127.0.0.1", "::1/128"}
			}
			r := startRelay(t, cfg)
			limits := DefaultLimits()
			limits.MaxViewersPerIP = 1
			r.gw.SetPolicy(Policy{Limits: limits, Auth: DefaultAuth()})
			stop := publish(t, r, "xff")
			defer stop()
			waitReady(t, r, "live/xff")

			play := func(xff string) int { return playWithXFF(t, r, "/live/xff.flv", xff) }
			want := map[bool][]int{true: {200, 200, 429, 429, 200}, false: {200, 429, 429, 429, 429}}[trusted]
			for i, xff := range []string{
				"127.0.0.2",
				"127.0.0.3",
				"127.0.0.9, 127.0.0.2", // the client's own claim, then what the proxy saw
				"127.0.0.2, 127.0.0.1", // through two trusted hops
				"",                     // the proxy itself
			} {
				if got := play(xff); got != want[i] {
					t.Fatalf("viewer %d (X-Forwarded-For %q): %d, want %d", i, xff, got, want[i])
				}
			}
		})
	}
}

// playWithXFF requests path from r with X-Forwarded-For xff (none if
// empty) and returns the response's status; the viewer stays connected
// until the test ends.
func playWithXFF(t *testing.T, r *relay, path, xff string) int {
	t.Helper()
	c, err := net.Dial("tcp", r.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := "GET " + path + " HTTP/1.1\r\nHost: x\r\n"
	if xff != "" {
		req += "X-Forwarded-For: " + xff + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode
}

// max_viewers_per_ip counts an IPv6 client by its /64 (limits.ipv6_prefix),
// which an IPv6 subscriber usually holds whole: a client cannot take a new
// address of its /64 for every viewer. IPv4 addresses count one by one;
// ipv6_prefix = 128 counts each IPv6 address on its own.
func TestPerIPLimitCountsAnIPv6Prefix(t *testing.T) {
	for _, prefix := range []int{64, 128} {
		t.Run(fmt.Sprintf("ipv6_prefix=%d", prefix), func(t *testing.T) {
			cfg := testConfig()
			cfg.TrustedProxies = []string{"127.0.0.1"}
			r := startRelay(t, cfg)
			limits := DefaultLimits()
			limits.MaxViewersPerIP = 1
			limits.IPv6Prefix = prefix
			r.gw.SetPolicy(Policy{Limits: limits, Auth: DefaultAuth()})
			publishKeyframe(t, r.pool, "live/v6")
			want := map[int][]int{64: {200, 429, 200, 200, 200}, 128: {200, 200, 200, 200, 200}}[prefix]
			for i, xff := range []string{
				"2001:db8:1:2::10",
				"2001:db8:1:2:ffff::20", // the same /64
				"2001:db8:1:3::10",      // the next /64
				"192.0.2.1",
				"192.0.2.2",
			} {
				if got := playWithXFF(t, r, "/live/v6.flv", xff); got != want[i] {
					t.Fatalf("viewer %d (from %s): %d, want %d", i, xff, got, want[i])
				}
			}
		})
	}
}

func TestParseTrustedProxies(t *testing.T) {
	ps, err := parseTrustedProxies([]string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::ffff:198.51.100.1"})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"10.1.2.3": true, "11.0.0.1": false, "192.0.2.7": true, "192.0.2.8": false,
		"2001:db8::1": true, "2001:db9::1": false, "198.51.100.1": true,
	} {
		if got := ps.Contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("trust(%s) = %v, want %v", addr, got, want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0.1:80", ""} {
		if _, err := parseTrustedProxies([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A prefix written in IPv4-mapped IPv6 form (as a dual-stack listener
// shows IPv4 peers) holds the IPv4 addresses it maps, as an address so
// written is its IPv4 address: http.proxy_protocol_from = ["::ffff:10.0.0.0/104"]
// lets the balancers of 10.0.0.0/8 in, whichever form their address takes.
func TestAddrListTakesMappedPrefixes(t *testing.T) {
	ps, err := ParseAddrList("http.proxy_protocol_from", []string{"::ffff:10.0.0.0/104", "::ffff:192.0.2.0/120"})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"10.1.2.3": true, "::ffff:10.1.2.3": true, "11.0.0.1": false, "::ffff:11.0.0.1": false,
		"192.0.2.9": true, "192.0.3.9": false, "::a01:203": false,
	} {
		if got := ps.Contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", addr, got, want)
		}
	}
}

// A peer's address may carry a zone (a link-local balancer, fe80::1%eth0,
// as a TCP connection's remote address gives it); the list is of
// addresses and prefixes, which have none, and matches it all the same.
func TestAddrListMatchesZonedAddresses(t *testing.T) {
	ps, err := ParseAddrList("http.proxy_protocol_from", []string{"fe80::/10", "fd00::7"})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{"fe80::1%eth0": true, "fe80::1": true, "fd00::7%lo": true, "fd00::8%lo": false} {
		if got := ps.Contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", addr, got, want)
		}
	}
}

// Viewers waiting (http.publish_wait) for names nobody publishes cannot
// keep a real publisher out: when they fill pool.max_entries, the oldest
// waiting entry gives way to the publisher, its viewer gets 503 with
// Retry-After, and the stream plays. The other waiting viewer keeps
// waiting, and a further invented name still gets 503 (no room).
func TestPublishWinsOverViewersOfInventedNames(t *testing.T) {
	cfg := testConfig()
	cfg.PublishWait = time.Minute
	pcfg := pool.DefaultConfig()
	pcfg.MaxEntries = 2
	r := startRelayWith(t, cfg, pcfg)

	request := func(name string) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", r.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, "GET /live/"+name+".flv HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		return c
	}
	waitEntries := func(n int, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for r.pool.Stats().Entries != n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: entries %+v, want %d", what, r.pool.Snapshots(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	first := request("invented1")
	waitEntries(1, "first invented name")
	second := request("invented2")
	waitEntries(2, "second invented name")

	s, err := testkit.ReadFile("../test/testdata/sample.flv")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pubErr := make(chan error, 1)
	pub := &testkit.Publisher{Addr: r.rtmpAddr, App: "live", Stream: "real", Tags: s.Tags, Loop: true}
	go func() { pubErr <- pub.Run(ctx) }()
	defer func() { cancel(); <-pubErr }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if snap, ok := r.pool.Lookup("live/real"); ok && snap.TagsIn > 50 {
			break
		}
		select {
		case err := <-pubErr:
			pubErr <- err
			t.Fatalf("the publisher of live/real was refused: %v; entries %+v", err, r.pool.Snapshots())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("live/real never became ready; entries %+v", r.pool.Snapshots())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The oldest waiting viewer gave way: 503 with Retry-After, at once.
	_ = first.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(first), nil)
	if err != nil {
		t.Fatalf("the viewer that gave way: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("the viewer that gave way got %d (Retry-After %q), want 503 with Retry-After",
			resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if snap, ok := r.pool.Lookup("live/invented2"); !ok || snap.Subscribers != 1 {
		t.Fatalf("the other waiting viewer's entry: %+v %v, want it still waiting", snap, ok)
	}
	_ = second

	// A viewer of the live stream plays.
	play := testkit.PlayFLV(context.Background(), "http://"+r.httpAddr+"/live/real.flv", closedAfter(2*time.Second))
	if play.Status != http.StatusOK {
		t.Fatalf("a viewer of live/real got %d %v", play.Status, play.Err)
	}
	// Another invented name finds no room: waiting entries give way to
	// sources, not to one another.
	third := request("invented3")
	_ = third.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err = http.ReadResponse(bufio.NewReader(third), nil)
	if err != nil {
		t.Fatalf("a third invented name: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a third invented name got %d, want 503", resp.StatusCode)
	}
}

// closedAfter returns a channel closed after d.
func closedAfter(d time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	time.AfterFunc(d, func() { close(ch) })
	return ch
}

// HEAD answers 200 only for a stream that is live: a name a viewer waits
// for (http.publish_wait) has an entry, but nobody publishes it, and its
// HEAD is 404 as it is without the waiting viewer.
func TestHeadOfAWaitedForStreamIsNotFound(t *testing.T) {
	cfg := testConfig()
	cfg.PublishWait = time.Minute
	r := startRelay(t, cfg)
	c, err := net.Dial("tcp", r.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /live/ghost.flv HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if s, ok := r.pool.Lookup("live/ghost"); ok && s.Subscribers == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the waiting viewer's entry never appeared")
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Head("http://" + r.httpAddr + "/live/ghost.flv")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD of a stream nobody publishes, with a viewer waiting for it: %d, want 404", resp.StatusCode)
	}
}

func TestBearerToken(t *testing.T) {
	for header, want := range map[string]string{
		"Bearer t0ken":   "t0ken",
		"bearer t0ken":   "t0ken",
		"BEARER  t0ken":  "t0ken",
		"Bearer":         "",
		"Bearer ":        "",
		"Basic dXNlcjpw": "",
		"Bearert0ken":    "",
		"":               "",
	} {
		got, ok := bearerToken(header)
		if got != want || ok != (want != "") {
			t.Errorf("bearerToken(%q) = %q, %v; want %q", header, got, ok, want)
		}
	}
}

// A connection that sends nothing (a browser's speculative preconnect) is
// closed after read_timeout without a refusal counted or logged: only a
// request begun and not finished in time is refused (408, read_timeout).
func TestIdleConnectionIsNoRefusal(t *testing.T) {
	cfg := testConfig()
	cfg.ReadTimeout = 200 * time.Millisecond
	r := startRelay(t, cfg)
	closedBy := func(send string) string {
		t.Helper()
		c, err := net.Dial("tcp", r.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, send); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("%q: not closed by the server: %v", send, err)
		}
		return string(b)
	}
	refusals := func() float64 {
		var m dto.Metric
		if err := r.gw.metrics.refusals.WithLabelValues("read_timeout").Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	closedBy("")
	if n := refusals(); n != 0 {
		t.Fatalf("a connection that sent nothing counted as %v read_timeout refusals, want 0", n)
	}
	if got := closedBy("GET /live/x.flv HTTP/1.1\r\nHost: x\r\n"); !strings.HasPrefix(got, "HTTP/1.1 408") {
		t.Fatalf("a request not finished in time: %q, want 408", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for refusals() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := refusals(); n != 1 {
		t.Fatalf("a request not finished in time counted as %v read_timeout refusals, want 1", n)
	}
}

// A request whose headers came but whose body did not within
// read_timeout (a slow-body slowloris) is a refused request, answered 408
// and counted as read_timeout, not a connection that sent nothing.
func TestSlowBodyIsARefusal(t *testing.T) {
	cfg := testConfig()
	cfg.ReadTimeout = 200 * time.Millisecond
	r := startRelay(t, cfg)
	c, err := net.Dial("tcp", r.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "POST /api/v1/streams HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got, _ := io.ReadAll(c); !strings.HasPrefix(string(got), "HTTP/1.1 408 ") {
		t.Fatalf("a body not finished in time: %q, want 408", got)
	}
	var m dto.Metric
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if err := r.gw.metrics.refusals.WithLabelValues("read_timeout").Write(&m); err != nil {
			t.Fatal(err)
		}
		if m.GetCounter().GetValue() == 1 || time.Now().After(deadline) {
			break
		}
	}
	if n := m.GetCounter().GetValue(); n != 1 {
		t.Fatalf("a body not finished in time counted as %v read_timeout refusals, want 1", n)
	}
}

// A connection reset before its first byte (a balancer's TCP health
// check closing with a reset, as HAProxy's do; a preconnect aborted) is
// no refused request either: nothing logged at info, no refusal counted.
func TestResetConnectionIsNoRefusal(t *testing.T) {
	gw, ln, logs := loggingGateway(t)

	open := func() int {
		gw.conns.mu.Lock()
		defer gw.conns.mu.Unlock()
		return len(gw.conns.set)
	}
	waitOpen := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); open() != n; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d connections open, want %d", open(), n)
			}
		}
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	waitOpen(1) // served, waiting for its first byte
	_ = c.(*net.TCPConn).SetLinger(0)
	c.Close() // a reset
	waitOpen(0)
	var m dto.Metric
	if err := gw.metrics.refusals.WithLabelValues("bad_request").Write(&m); err != nil {
		t.Fatal(err)
	}
	if n := m.GetCounter().GetValue(); n != 0 {
		t.Errorf("a connection reset before its first byte counted as %v bad_request refusals, want 0", n)
	}
	if strings.Contains(logs.String(), `msg="request refused"`) {
		t.Errorf("a connection reset before its first byte is logged as a refusal:\n%s", logs.String())
	}
}

// roundTrip sends a request without a body and returns its response, the
// body read and closed.
func roundTrip(t *testing.T, method, url string) *http.Response {
	t.Helper()
	return roundTripBearer(t, method, url, "")
}

// roundTripBearer is roundTrip with "Authorization: Bearer token" (none
// for "").
func roundTripBearer(t *testing.T, method, url, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// DELETE /api/v1/streams/{app}/{stream} ends a stream: its viewers'
// responses end cleanly at a tag boundary, its publisher is disconnected
// and may publish again, as a new entry. It needs auth.api_token and the
// token; a stream without an entry is 404.
func TestDropStreamThroughTheAPI(t *testing.T) {
	r := startRelay(t, testConfig())
	s, err := testkit.ReadFile("../test/testdata/sample.flv")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	published := make(chan error, 1)
	pub := &testkit.Publisher{Addr: r.rtmpAddr, App: "live", Stream: "drop", Tags: s.Tags, Loop: true}
	go func() { published <- pub.Run(ctx) }()
	waitReady(t, r, "live/drop")
	plays := make(chan testkit.Play, 5)
	for range cap(plays) {
		go func() { plays <- testkit.PlayFLV(context.Background(), "http://"+r.httpAddr+"/live/drop.flv", nil) }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.pool.Stats().Subscribers < cap(plays) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	url := "http://" + r.httpAddr + "/api/v1/streams/live/drop"
	if resp := roundTrip(t, http.MethodDelete, url); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("DELETE without auth.api_token: %d, want 403", resp.StatusCode)
	}
	auth := DefaultAuth()
	auth.APIToken = "t0ken"
	r.gw.SetPolicy(Policy{Limits: DefaultLimits(), Auth: auth})
	if resp := roundTrip(t, http.MethodDelete, url); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("DELETE without the token: %d, want 401", resp.StatusCode)
	}
	del := func(url string) int { return roundTripBearer(t, http.MethodDelete, url, "t0ken").StatusCode }
	if code := del(url); code != http.StatusNoContent {
		t.Fatalf("DELETE with the token: %d, want 204", code)
	}
	for range cap(plays) {
		var p testkit.Play
		select {
		case p = <-plays:
		case <-time.After(10 * time.Second):
			t.Fatal("a viewer of the dropped stream still plays")
		}
		if p.Status != http.StatusOK || p.Err != nil {
			t.Fatalf("viewer of the dropped stream: status %d, %v; want a clean end", p.Status, p.Err)
		}
		if err := p.Stream.CheckPlayable(); err != nil {
			t.Fatalf("viewer of the dropped stream: %v", err)
		}
	}
	select {
	case <-published:
	case <-time.After(10 * time.Second):
		t.Fatal("the publisher of the dropped stream was not disconnected")
	}
	if code := del(url); code != http.StatusNotFound {
		t.Fatalf("DELETE of a stream without an entry: %d, want 404", code)
	}
	pub2 := &testkit.Publisher{Addr: r.rtmpAddr, App: "live", Stream: "drop", Tags: s.Tags, Loop: true}
	go func() { published <- pub2.Run(ctx) }()
	waitReady(t, r, "live/drop")
	cancel()
	<-published
	// go-rtmp's client gives up a write it queued after the gateway
	// closed the connection only after 5 s: wait for it, so that goleak
	// sees nothing of the dropped publisher.
	deadline = time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		buf := make([]byte, 1<<20)
		if !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "testkit.(*Publisher).session") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the dropped publisher's session is still running")
}

// A viewer waiting for a stream's publisher (http.publish_wait) when the
// stream is dropped gets its 404 at once, counted with the reason
// dropped, not not_found: the log and the metric say an operator ended
// the stream.
func TestDropAnswersWaitingViewers(t *testing.T) {
	cfg := testConfig()
	cfg.PublishWait = 30 * time.Second
	r := startRelay(t, cfg)
	auth := DefaultAuth()
	auth.APIToken = "t0ken"
	r.gw.SetPolicy(Policy{Limits: DefaultLimits(), Auth: auth})
	answered := make(chan *http.Response, 1)
	go func() {
		resp, err := http.Get("http://" + r.httpAddr + "/live/waited.flv")
		if err != nil {
			answered <- nil
			return
		}
		resp.Body.Close()
		answered <- resp
	}()
	waitUntil(t, 10*time.Second, "the viewer waiting for live/waited", func() bool { return r.pool.Stats().Subscribers == 1 })
	start := time.Now()
	if code := roundTripBearer(t, http.MethodDelete, "http://"+r.httpAddr+"/api/v1/streams/live/waited", "t0ken").StatusCode; code != http.StatusNoContent {
		t.Fatalf("DELETE of a stream viewers wait for: %d, want 204", code)
	}
	select {
	case resp := <-answered:
		if resp == nil || resp.StatusCode != http.StatusNotFound {
			t.Fatalf("the waiting viewer got %v, want 404", resp)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting viewer still waits after the drop")
	}
	t.Logf("answered %s after the drop", time.Since(start).Round(time.Millisecond))
	// Counted once the answer is written.
	waitUntil(t, 5*time.Second, `flvgw_refusals_total{reason="dropped"} 1`, func() bool {
		var m dto.Metric
		return r.gw.metrics.refusals.WithLabelValues("dropped").Write(&m) == nil && m.GetCounter().GetValue() == 1
	})
}

// headlessConn is a viewer's connection whose writes all fail, as one
// that went away between its request and its response; its reads wait.
type headlessConn struct{ net.Conn }

func (headlessConn) Write([]byte) (int, error) { return 0, syscall.EPIPE }

// A session whose 200 could not be written is no viewer session: it is
// logged with why, and flvgw_viewer_sessions_total, the sessions that
// received a stream, does not count it.
func TestSessionWithoutItsHeadIsNotCounted(t *testing.T) {
	r := startRelay(t, testConfig())
	publishKeyframe(t, r.pool, "live/headless")
	viewerSide, peer := net.Pipe()
	defer peer.Close()
	r.gw.runViewer(headlessConn{viewerSide}, playRequest{key: "live/headless", app: "live", stream: "headless", remote: "pipe", start: time.Now()})
	var m dto.Metric
	if err := r.gw.metrics.sessions.Write(&m); err != nil || m.GetCounter().GetValue() != 0 {
		t.Fatalf("flvgw_viewer_sessions_total %v (%v) after a session whose head failed, want 0", m.GetCounter().GetValue(), err)
	}
	if s := r.pool.Stats(); s.Subscribers != 0 {
		t.Fatalf("the session left %d subscribers", s.Subscribers)
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// Shutdown ends with its final chunk a viewer that reads steadily but
// slower than its stream comes, so that its session always has a batch
// ready and writes it itself, while the entry goes on being fed (as a
// pull is, until the pool closes after the gateway): its session sees the
// shutdown between two writes, not only while it waits for a tag.
func TestShutdownEndsViewersBehind(t *testing.T) {
	cfg := testConfig()
	cfg.SendBuffer = 4096
	cfg.WriteTimeout = time.Minute // the viewer is slow, never stuck
	cfg.LagDisconnect = 0
	p, log := quietPool(t, pool.DefaultConfig())
	defer p.Close()
	pub, err := p.Publish("live/behind", "test")
	if err != nil {
		t.Fatal(err)
	}
	stopFeed := make(chan struct{})
	fed := make(chan struct{})
	go func() { // 2 MB/s of video, a keyframe every 50 tags
		defer close(fed)
		body := make([]byte, 4096)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			body[0], body[1] = 0x27, 1
			if i%50 == 0 {
				body[0] = 0x17
			}
			if i == 0 {
				_ = pub.WriteTag(pool.TagVideo, 0, []byte{0x17, 0, 0, 0, 0, 1, 2, 3})
			}
			_ = pub.WriteTag(pool.TagVideo, uint32(2*i), body)
			select {
			case <-stopFeed:
				return
			case <-tick.C:
			}
		}
	}()
	defer func() { close(stopFeed); <-fed }()

	gw := NewServer(cfg, Policy{Limits: DefaultLimits(), Auth: DefaultAuth()}, p, log)
	ln := loopback(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- gw.Serve(ctx, ln) }()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetReadBuffer(4096)
	if _, err := io.WriteString(c, "GET /live/behind.flv HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	body := &countingReader{r: resp.Body}
	played := make(chan error, 1)
	go func() { // about 50 KB/s
		_, err := testkit.ReadStream(readerFunc(func(p []byte) (int, error) {
			time.Sleep(10 * time.Millisecond)
			return body.Read(p[:min(len(p), 512)])
		}))
		played <- err
	}()
	waitUntil(t, 10*time.Second, "the viewer reading", func() bool { return body.n.Load() > 16<<10 })
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		c.Close() // its session's write fails now, and Serve returns
		<-served
		t.Fatalf("shutdown went on for 20 s while a viewer behind its stream kept reading")
	}
	if err := <-played; err != nil {
		t.Fatalf("viewer behind its stream at shutdown: %v, want its response ended by its final chunk", err)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// A viewer joining late in a GOP gets at once the GOP cache, whose tags
// arrived before its stream began: no lag of its delivery, so
// http.lag_disconnect does not cut it, however old the GOP's keyframe is.
func TestLagDisconnectSparesTheGOPCache(t *testing.T) {
	cfg := testConfig()
	cfg.LagDisconnect = time.Second
	p, log := quietPool(t, pool.DefaultConfig())
	defer p.Close()
	pub, err := p.Publish("live/gop", "test")
	if err != nil {
		t.Fatal(err)
	}
	frame := []byte{0x27, 1, 0, 0, 0, 9, 9, 9}
	_ = pub.WriteTag(pool.TagVideo, 0, []byte{0x17, 0, 0, 0, 0, 1, 2, 3})
	_ = pub.WriteTag(pool.TagVideo, 0, []byte{0x17, 1, 0, 0, 0, 9, 9, 9})
	keyframeAt := time.Now()
	ts := uint32(0)
	// The GOP goes on until its keyframe is older than lag_disconnect.
	for time.Since(keyframeAt) < 2*cfg.LagDisconnect {
		time.Sleep(40 * time.Millisecond)
		ts += 40
		_ = pub.WriteTag(pool.TagVideo, ts, frame)
	}

	gw := NewServer(cfg, Policy{Limits: DefaultLimits(), Auth: DefaultAuth()}, p, log)
	ln := loopback(t)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- gw.Serve(ctx, ln) }()
	defer func() { cancel(); <-served }()

	played := make(chan testkit.Play, 1)
	var ended atomic.Bool
	go func() {
		played <- testkit.PlayFLV(context.Background(), "http://"+ln.Addr().String()+"/live/gop.flv", nil)
		ended.Store(true)
	}()
	waitUntil(t, 10*time.Second, "the viewer playing, or its response ended", func() bool {
		return p.Stats().Subscribers == 1 || ended.Load()
	})
	const more = 10
	for range more {
		ts += 40
		_ = pub.WriteTag(pool.TagVideo, ts, frame)
	}
	pub.Close(nil)
	pl := <-played
	if pl.Status != 200 || pl.Err != nil {
		t.Fatalf("viewer joining a GOP older than lag_disconnect: %d %v, want its response ended by its final chunk", pl.Status, pl.Err)
	}
	if _, v := pl.Stream.CountMedia(); v != int(ts/40)+2 {
		t.Fatalf("viewer got %d video tags, want %d", v, ts/40+2)
	}
	var m dto.Metric
	if err := gw.metrics.dropped.WithLabelValues("lag").Write(&m); err != nil || m.GetCounter().GetValue() != 0 {
		t.Fatalf("flvgw_viewers_dropped_total{reason=\"lag\"} is %v, want 0", m.GetCounter().GetValue())
	}
}

// Only /api/v1/streams/{app}/{stream} names a stream in the API: another
// path of two segments under /api/ (/api/live) is no endpoint, to GET or
// to DELETE, and never the stream api/live, which plays on.
func TestAPIPathOutsideStreamsIsNoStream(t *testing.T) {
	r := startRelay(t, testConfig())
	pub, err := r.pool.Publish("api/live", "test")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(nil)
	auth := DefaultAuth()
	auth.APIToken = "t0ken"
	r.gw.SetPolicy(Policy{Limits: DefaultLimits(), Auth: auth})
	for _, method := range []string{http.MethodDelete, http.MethodGet} {
		resp := roundTripBearer(t, method, "http://"+r.httpAddr+"/api/live", "t0ken")
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%s /api/live: %d, want 404", method, resp.StatusCode)
		}
	}
	if _, ok := r.pool.Lookup("api/live"); !ok {
		t.Fatal("DELETE /api/live dropped the stream api/live")
	}
}

// With http.pprof and auth.api_token, the profiler is behind the token,
// as the API is: a profile runs for as long as its caller asks.
func TestPprofNeedsTheAPIToken(t *testing.T) {
	cfg := testConfig()
	cfg.Pprof = true
	r := startRelay(t, cfg)
	url := "http://" + r.httpAddr + "/debug/pprof/cmdline"
	if resp := roundTripBearer(t, http.MethodGet, url, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("without auth.api_token: %d, want 200", resp.StatusCode)
	}
	auth := DefaultAuth()
	auth.APIToken = "t0ken"
	r.gw.SetPolicy(Policy{Limits: DefaultLimits(), Auth: auth})
	for token, want := range map[string]int{"": http.StatusUnauthorized, "wrong": http.StatusUnauthorized, "t0ken": http.StatusOK} {
		if resp := roundTripBearer(t, http.MethodGet, url, token); resp.StatusCode != want {
			t.Fatalf("with auth.api_token, token %q: %d, want %d", token, resp.StatusCode, want)
		}
	}
}

// A viewer of the stream-writer delivery (http.delivery = "stream_writer")
// that falls out of its entry's buffer skips to the newest keyframe, and
// the skip is counted in flvgw_viewer_skips_total as a hijacked
// session's is.
func TestStreamWriterCountsSkips(t *testing.T) {
	pcfg := pool.DefaultConfig()
	pcfg.BufferTags = 64
	r := startRelayWith(t, testConfig(), pcfg)
	pub := publishKeyframe(t, r.pool, "live/skips")
	sub, err := r.pool.Subscribe("live/skips", false)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	viewerSide, peer := net.Pipe() // a write waits for its read: the viewer reads nothing for now
	defer peer.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ended := make(chan uint64, 1)
	go func() {
		sent, _ := r.gw.streamTo(session{ctx: ctx, sub: sub, done: func() {}}, bufio.NewWriterSize(viewerSide, 16), viewerSide, playRequest{start: time.Now()})
		viewerSide.Close()
		ended <- sent
	}()
	// The viewer's first byte: its writer has started at the keyframe
	// there is and waits in the write of its first batch.
	if _, err := io.ReadFull(peer, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	// Twice the buffer while the viewer reads nothing more, a keyframe
	// now and then: it falls out of the buffer.
	for i := range 128 {
		kind := byte(0x27)
		if i%16 == 0 {
			kind = 0x17
		}
		if err := pub.WriteTag(pool.TagVideo, uint32(40*i), []byte{kind, 1, 0, 0, 0, byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	pub.Close(nil)
	if _, err := io.Copy(io.Discard, peer); err != nil {
		t.Fatal(err)
	}
	<-ended
	var m dto.Metric
	if err := r.gw.metrics.skips.Write(&m); err != nil || m.GetCounter().GetValue() < 1 {
		t.Fatalf("flvgw_viewer_skips_total %v (%v) after a stream-writer viewer fell out of the buffer, want at least 1", m.GetCounter().GetValue(), err)
	}
}
