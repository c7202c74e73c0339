package test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"flvgw/gateway/access"
	"flvgw/test/testkit"
)

func status(t *testing.T, url string, header ...string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func attached(t *testing.T, gw *testkit.Gateway, n int) {
	t.Helper()
	if !waitFor(10*time.Second, func() bool {
		s, err := gw.Metric(context.Background(), "flvgw_subscribers")
		return err == nil && int(s) == n
	}) {
		t.Fatalf("%d viewers did not attach\n%s", n, gw.Stderr())
	}
}

// SIGTERM drains: readiness flips first, new viewers and publishes are
// refused, current viewers go on until drain_timeout, then end cleanly and
// the process exits 0.
func TestDrainOnSIGTERM(t *testing.T) {
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{"http": "drain_timeout = \"2s\"\n"}))
	startPublisher(t, gw, "live/drain", "sample.flv", false)
	waitLive(t, gw, "live/drain")
	if got := status(t, gw.URL("/readyz")); got != 200 {
		t.Fatalf("readyz before: %d", got)
	}
	const viewers = 4
	plays := make(chan testkit.Play, viewers)
	for range viewers {
		go func() { plays <- testkit.PlayFLV(context.Background(), gw.URL("/live/drain.flv"), nil) }()
	}
	attached(t, gw, viewers)
	signaled := time.Now()
	if err := gw.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !waitFor(time.Second, func() bool { return status(t, gw.URL("/readyz")) == 503 }) {
		t.Fatal("readyz did not turn 503 on SIGTERM")
	}
	if got := status(t, gw.URL("/live/drain.flv")); got != 503 {
		t.Fatalf("new viewer while draining: %d, want 503", got)
	}
	late := &testkit.Publisher{Addr: gw.RTMPAddr, App: "live", Stream: "late", Tags: loadTags(t, "sample.flv")}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := late.Run(ctx); err == nil {
		t.Fatal("publish accepted while draining")
	}
	for range viewers {
		p := <-plays
		if p.Status != 200 || p.Err != nil || p.Stream.CheckPlayable() != nil {
			t.Fatalf("viewer through the drain: %d %v", p.Status, p.Err)
		}
		if d := p.Ended.Sub(signaled); d < 1500*time.Millisecond {
			t.Fatalf("viewer ended %s after SIGTERM, want about drain_timeout (2s)", d)
		}
		// It kept getting media during the drain: more than 2 s of video.
		var last uint32
		for _, tag := range p.Stream.Tags {
			if tag.Type == 9 {
				last = tag.Timestamp
			}
		}
		if first := p.Stream.Tags[0].Timestamp; last-first < 2500 {
			t.Fatalf("viewer got only %d ms of video", last-first)
		}
	}
	select {
	case <-gw.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after the drain")
	}
	if err := gw.ExitErr(); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

func TestSignedURLs(t *testing.T) {
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"auth": "play_secret = \"play-s3cret\"\n",
		"rtmp": "publish_secret = \"pub-s3cret\"\n",
	}))
	// Publish auth: a wrong token is refused, the right one publishes.
	wrong := &testkit.Publisher{Addr: gw.RTMPAddr, App: "live", Stream: "sig?" + access.Query("nope", "live/sig", time.Now().Add(time.Hour)), Tags: loadTags(t, "sample.flv")}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := wrong.Run(ctx); err == nil {
		t.Fatal("publish with a wrong token accepted")
	}
	unsigned := &testkit.Publisher{Addr: gw.RTMPAddr, App: "live", Stream: "sig", Tags: loadTags(t, "sample.flv")}
	if err := unsigned.Run(ctx); err == nil {
		t.Fatal("publish without a token accepted")
	}
	expired := &testkit.Publisher{Addr: gw.RTMPAddr, App: "live", Stream: "sig?" + access.Query("pub-s3cret", "live/sig", time.Now().Add(-time.Second)), Tags: loadTags(t, "sample.flv")}
	if err := expired.Run(ctx); err == nil {
		t.Fatal("publish with an expired token accepted")
	}
	pctx, pcancel := context.WithCancel(context.Background())
	defer pcancel()
	good := &testkit.Publisher{Addr: gw.RTMPAddr, App: "live", Stream: "sig?" + access.Query("pub-s3cret", "live/sig", time.Now().Add(time.Hour)), Tags: loadTags(t, "sample.flv"), Loop: true}
	go func() { _ = good.Run(pctx) }()
	waitLive(t, gw, "live/sig")

	base := gw.URL("/live/sig.flv")
	for _, tc := range []struct {
		name, query string
		want        int
	}{
		{"missing", "", 403},
		{"wrong secret", "?" + access.Query("other", "live/sig", time.Now().Add(time.Hour)), 403},
		{"other stream", "?" + access.Query("play-s3cret", "live/other", time.Now().Add(time.Hour)), 403},
		{"expired", "?" + access.Query("play-s3cret", "live/sig", time.Now().Add(-time.Minute)), 403},
		{"tampered expiry", "?expires=9999999999&token=" + access.Token("play-s3cret", "live/sig", time.Now().Add(time.Hour)), 403},
	} {
		if got := status(t, base+tc.query); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	p := playFor(base+"?"+access.Query("play-s3cret", "live/sig", time.Now().Add(time.Hour)), 1500*time.Millisecond)
	checkPlayed(t, p, "signed viewer")
	if n, _ := gw.Metric(context.Background(), `flvgw_refusals_total{reason="auth"}`); n != 5 {
		t.Fatalf("auth refusals %v, want 5", n)
	}
}

// callbackServer answers on_play/on_publish: allow lists the streams it
// allows; delay holds every answer.
func callbackServer(t *testing.T, allow map[string]bool, delay *atomic.Int64, seen chan<- access.Request) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req access.Request
		_ = json.NewDecoder(r.Body).Decode(&req)
		if seen != nil {
			select {
			case seen <- req:
			default:
			}
		}
		time.Sleep(time.Duration(delay.Load()))
		if !allow[req.Stream] {
			http.Error(w, "no", http.StatusForbidden)
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/hook"
}

func TestCallbacks(t *testing.T) {
	var delay atomic.Int64
	hook := callbackServer(t, map[string]bool{"ok": true, "slow": true}, &delay, nil)
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"auth": fmt.Sprintf("on_play = %q\ncallback_timeout = \"1s\"\n", hook),
		"rtmp": fmt.Sprintf("on_publish = %q\n", hook),
	}))
	// on_publish refuses "denied", allows "ok".
	denied := &testkit.Publisher{Addr: gw.RTMPAddr, App: "live", Stream: "denied", Tags: loadTags(t, "sample.flv")}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := denied.Run(ctx); err == nil {
		t.Fatal("publish denied by on_publish was accepted")
	}
	startPublisher(t, gw, "live/ok", "sample.flv", false)
	waitLive(t, gw, "live/ok")
	checkPlayed(t, playFor(gw.URL("/live/ok.flv"), time.Second), "allowed viewer")

	// A callback slower than callback_timeout denies.
	delay.Store(int64(1500 * time.Millisecond))
	if got := status(t, gw.URL("/live/ok.flv")); got != 403 {
		t.Fatalf("callback timeout: %d, want 403", got)
	}

	// The publisher leaves while viewers' callbacks are pending: each
	// viewer then gets 404 or a cleanly ended stream; nothing breaks.
	delay.Store(int64(700 * time.Millisecond))
	stop := startPublisher(t, gw, "live/slow", "sample.flv", false)
	waitLive(t, gw, "live/slow")
	plays := make(chan testkit.Play, 10)
	for range cap(plays) {
		go func() { plays <- testkit.PlayFLV(context.Background(), gw.URL("/live/slow.flv"), nil) }()
	}
	time.Sleep(200 * time.Millisecond) // callbacks are pending now
	stop()
	for range cap(plays) {
		p := <-plays
		switch p.Status {
		case 404:
		case 200:
			if p.Err != nil || p.Stream.CheckPlayable() != nil {
				t.Fatalf("viewer whose callback outlived the publisher: %v", p.Err)
			}
		default:
			t.Fatalf("viewer whose callback outlived the publisher: status %d", p.Status)
		}
	}
	delay.Store(0)
	if got := status(t, gw.URL("/healthz")); got != 200 {
		t.Fatalf("healthz: %d", got)
	}
	if s, _ := gw.Streams(context.Background()); len(s) != 1 {
		t.Fatalf("entries: %+v", s)
	}
}

// The binary posts each session's end: a viewer's stream (on_play_done)
// with the bytes it got, and ffmpeg's publish (on_publish_done) with the
// media it sent.
func TestSessionEndsArePosted(t *testing.T) {
	hook, events := testkit.EventSink(t)
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"auth": fmt.Sprintf("on_play_done = %q\n", hook),
		"rtmp": fmt.Sprintf("on_publish_done = %q\n", hook),
	}))
	next := func(what string) access.Event {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(15 * time.Second):
			t.Fatalf("no %s posted", what)
			return access.Event{}
		}
	}
	stop := startPublisher(t, gw, "live/ends", "sample.flv", testkit.UseFFmpeg(t))
	waitLive(t, gw, "live/ends")
	p := playFor(gw.URL("/live/ends.flv?viewer=v1"), time.Second)
	checkPlayed(t, p, "viewer")
	ev := next("play_done")
	if ev.Action != "play_done" || ev.App != "live" || ev.Stream != "ends" || ev.Query != "viewer=v1" ||
		!strings.HasPrefix(ev.Client, "127.0.0.1:") || ev.Bytes < uint64(p.Stream.Bytes) || ev.DurationMS < 900 || ev.Reason == "" {
		t.Fatalf("play_done: %+v, want live/ends, query viewer=v1, at least the %d bytes the viewer read, about 1 s", ev, p.Stream.Bytes)
	}
	stop()
	ev = next("publish_done")
	if ev.Action != "publish_done" || ev.Stream != "ends" || ev.Bytes < 20000 || ev.DurationMS <= 0 || ev.Reason == "" {
		t.Fatalf("publish_done: %+v", ev)
	}
	// Each counted once it is answered.
	for _, key := range []string{"auth.on_play_done", "rtmp.on_publish_done"} {
		series := fmt.Sprintf("flvgw_notifications_total{callback=%q,result=\"sent\"}", key)
		deadline := time.Now().Add(5 * time.Second)
		for {
			n, err := gw.Metric(context.Background(), series)
			if err == nil && n == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s = %v (%v), want 1", series, n, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// playFrom plays url from a given loopback source address.
func playFrom(t *testing.T, src, url string, leave <-chan struct{}) (int, chan testkit.Play) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).DialContext,
	}}
	out := make(chan testkit.Play, 1)
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	go func() {
		defer resp.Body.Close()
		go func() { <-leave; resp.Body.Close() }()
		s, err := testkit.ReadStream(resp.Body)
		out <- testkit.Play{Status: 200, Stream: s, Err: err}
	}()
	return 200, out
}

// Each limit refuses exactly at its bound, with its status and a metric.
func TestLimits(t *testing.T) {
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"limits": "max_viewers = 4\nmax_viewers_per_stream = 3\nmax_viewers_per_ip = 2\n",
	}))
	startPublisher(t, gw, "live/a", "sample.flv", false)
	startPublisher(t, gw, "live/b", "sample.flv", false)
	waitLive(t, gw, "live/a")
	waitLive(t, gw, "live/b")
	leave := make(chan struct{})
	defer close(leave)
	// Per IP: two from 127.0.0.2, the third refused with 429.
	for i := range 3 {
		got, _ := playFrom(t, "127.0.0.2", gw.URL("/live/a.flv"), leave)
		if want := map[bool]int{true: 200, false: 429}[i < 2]; got != want {
			t.Fatalf("viewer %d from one address: %d, want %d", i+1, got, want)
		}
	}
	// A refused session is unregistered right after its answer.
	connections := func(n float64) {
		t.Helper()
		if !waitFor(2*time.Second, func() bool {
			v, err := gw.Metric(context.Background(), "flvgw_viewer_connections")
			return err == nil && v == n
		}) {
			t.Fatalf("viewer connections did not settle at %v", n)
		}
	}
	connections(2)
	// Per stream: a third viewer of live/a from another address; a fourth
	// is refused with 503.
	if got, _ := playFrom(t, "127.0.0.3", gw.URL("/live/a.flv"), leave); got != 200 {
		t.Fatalf("third viewer of live/a: %d", got)
	}
	if got, _ := playFrom(t, "127.0.0.4", gw.URL("/live/a.flv"), leave); got != 503 {
		t.Fatalf("fourth viewer of live/a: %d, want 503", got)
	}
	connections(3)
	// In all: a fourth viewer (of live/b), then the fifth is refused.
	if got, _ := playFrom(t, "127.0.0.4", gw.URL("/live/b.flv"), leave); got != 200 {
		t.Fatalf("fourth viewer: %d", got)
	}
	if got, _ := playFrom(t, "127.0.0.5", gw.URL("/live/b.flv"), leave); got != 503 {
		t.Fatalf("fifth viewer: %d, want 503", got)
	}
	ctx := context.Background()
	for reason, want := range map[string]float64{"limit_ip": 1, "limit_stream": 1, "limit_total": 1} {
		if n, err := gw.Metric(ctx, `flvgw_refusals_total{reason="`+reason+`"}`); err != nil || n != want {
			t.Fatalf("refusals %s = %v (%v), want %v", reason, n, err, want)
		}
	}

}

// A flood of idle connections and of slow headers does not stop viewers
// already playing; the slow ones are cut after read_timeout.
func TestSlowlorisDoesNotStopViewers(t *testing.T) {
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{"http": "read_timeout = \"1s\"\n"}))
	startPublisher(t, gw, "live/s", "sample.flv", false)
	waitLive(t, gw, "live/s")
	leave := make(chan struct{})
	viewer := make(chan testkit.Play, 1)
	go func() { viewer <- testkit.PlayFLV(context.Background(), gw.URL("/live/s.flv"), leave) }()
	var conns []net.Conn
	for i := range 300 {
		c, err := net.Dial("tcp", gw.HTTPAddr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if i%2 == 0 {
			_, _ = io.WriteString(c, "GET /live/s.flv HTTP/1.1\r\nHost: x\r\nX-Slow: ") // never finished
		}
	}
	time.Sleep(2500 * time.Millisecond)
	// The slow and idle connections were closed by the server.
	closed := 0 // answered (408/400) and closed by the server
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := io.ReadAll(c); err == nil || !isTimeoutErr(err) {
			closed++
		}
		c.Close()
	}
	if closed < len(conns)*9/10 {
		t.Fatalf("only %d of %d slow/idle connections were cut after read_timeout", closed, len(conns))
	}
	close(leave)
	p := <-viewer
	checkPlayed(t, p, "viewer during the flood")
	var last uint32
	for _, tag := range p.Stream.Tags {
		last = max(last, tag.Timestamp)
	}
	if span := last - p.Stream.Tags[0].Timestamp; span < 2000 {
		t.Fatalf("viewer got only %d ms during the flood", span)
	}
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// selfSigned writes a certificate and key for 127.0.0.1 into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "flvgw test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestHTTPSPlayback(t *testing.T) {
	certFile, keyFile, roots := selfSigned(t, t.TempDir())
	tlsAddr := testkit.FreePort(t)
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"http": fmt.Sprintf("tls_listen = %q\ntls_cert = %q\ntls_key = %q\n", tlsAddr, certFile, keyFile),
	}))
	startPublisher(t, gw, "live/tls", "sample.flv", false)
	waitLive(t, gw, "live/tls")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := client.Get("https://" + tlsAddr + "/live/tls.flv")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("https: %d", resp.StatusCode)
	}
	time.AfterFunc(1500*time.Millisecond, func() { resp.Body.Close() })
	s, _ := testkit.ReadStream(resp.Body)
	if s == nil || s.CheckPlayable() != nil {
		t.Fatal("https stream not playable")
	}
	if a, v := s.CountMedia(); a == 0 || v == 0 {
		t.Fatalf("https: %d audio %d video", a, v)
	}
	if testkit.HaveFFmpeg() {
		out, err := exec.Command("ffprobe", "-v", "error", "-tls_verify", "0", "-show_entries", "stream=codec_name", "-of", "csv",
			"https://"+tlsAddr+"/live/tls.flv").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "h264") {
			t.Fatalf("ffprobe over https: %v %s", err, out)
		}
	}
}

// The streams API: bearer token, per-stream detail, CORS allow-list.
func TestStreamsAPIAndCORS(t *testing.T) {
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"auth": "api_token = \"t0ken\"\n",
		"http": "cors_origins = [\"https://player.example\"]\n",
	}))
	gw.APIToken = "t0ken"
	startPublisher(t, gw, "live/api", "sample.flv", false)
	waitLive(t, gw, "live/api")
	leave := make(chan struct{})
	done := make(chan testkit.Play, 1)
	go func() { done <- testkit.PlayFLV(context.Background(), gw.URL("/live/api.flv"), leave) }()
	attached(t, gw, 1)
	if got := status(t, gw.URL("/api/v1/streams")); got != 401 {
		t.Fatalf("API without token: %d", got)
	}
	if got := status(t, gw.URL("/api/v1/streams"), "Authorization", "Bearer wrong"); got != 401 {
		t.Fatalf("API with a wrong token: %d", got)
	}
	time.Sleep(2500 * time.Millisecond) // a bitrate window
	req, _ := http.NewRequest(http.MethodGet, gw.URL("/api/v1/streams/live/api"), nil)
	req.Header.Set("Authorization", "Bearer t0ken")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("API detail: %v %v", resp, err)
	}
	var d struct {
		Key         string  `json:"key"`
		BitrateKbps float64 `json:"bitrate_kbps"`
		UptimeSec   float64 `json:"uptime_seconds"`
		Codecs      struct {
			Video, Audio  string
			Width, Height int
		} `json:"codecs"`
		Viewers []struct {
			Remote string `json:"remote"`
		} `json:"viewers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if d.Key != "live/api" || d.Codecs.Video != "h264" || d.Codecs.Audio != "aac" || d.Codecs.Width != 320 || d.Codecs.Height != 240 ||
		d.BitrateKbps < 100 || d.BitrateKbps > 1000 || d.UptimeSec < 2 || len(d.Viewers) != 1 || !strings.HasPrefix(d.Viewers[0].Remote, "127.0.0.1:") {
		t.Fatalf("detail: %+v", d)
	}
	// CORS: the listed origin is echoed, another gets no header.
	for origin, want := range map[string]string{"https://player.example": "https://player.example", "https://evil.example": ""} {
		req, _ := http.NewRequest(http.MethodHead, gw.URL("/live/api.flv"), nil)
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != want {
			t.Fatalf("origin %s: allow %q, want %q", origin, got, want)
		}
	}
	close(leave)
	<-done
}

// SIGHUP reloads limits without dropping the viewers already playing.
func TestSIGHUPReloadsLimits(t *testing.T) {
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(nil))
	startPublisher(t, gw, "live/h", "sample.flv", false)
	waitLive(t, gw, "live/h")
	leave, first := playing(gw, "/live/h.flv")
	attached(t, gw, 1)
	// Rewrite the config the process runs with: max_viewers = 1.
	path := gw.ConfigPath()
	cfg, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg = []byte(strings.Replace(string(cfg), "[limits]\n", "[limits]\nmax_viewers = 1\n", 1))
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := gw.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !waitFor(3*time.Second, func() bool { return strings.Contains(gw.Stderr(), `msg=reloaded`) }) {
		t.Fatalf("no reload:\n%s", gw.Stderr())
	}
	if got := status(t, gw.URL("/live/h.flv")); got != 503 {
		t.Fatalf("second viewer after the reload: %d, want 503", got)
	}
	time.Sleep(time.Second)
	close(leave)
	p := <-first
	if p.Status != 200 || !p.Left() || p.Stream.CheckPlayable() != nil {
		t.Fatalf("first viewer across the reload: %d %v", p.Status, p.Err)
	}
}

// A deliberately slow viewer beside fast ones: it is skipped forward or
// dropped (counted), and the fast ones keep playing in real time.
func TestSlowViewerBesideFastOnes(t *testing.T) {
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"http": "send_buffer = 8192\nwrite_timeout = \"2s\"\nlag_disconnect = \"3s\"\n",
		"pool": "max_lag = \"1s\"\n",
	}))
	startPublisher(t, gw, "live/slow", "sample.flv", false)
	waitLive(t, gw, "live/slow")

	// The slow viewer: a tiny receive buffer, 1 KB a second.
	slow, err := net.Dial("tcp", gw.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	_ = slow.(*net.TCPConn).SetReadBuffer(4096)
	if _, err := io.WriteString(slow, "GET /live/slow.flv HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	defer readSlowly(slow, slow)()

	const fast = 5
	const play = 6 * time.Second
	plays := make(chan testkit.Play, fast)
	for range fast {
		go func() { plays <- playFor(gw.URL("/live/slow.flv"), play) }()
	}
	for range fast {
		p := <-plays
		checkPlayed(t, p, "fast viewer beside a slow one")
		// A fast viewer got the whole time in media (less the GOP head
		// start it began with, within a second).
		if span := p.Stream.VideoSpan(); span < play-1500*time.Millisecond {
			t.Fatalf("fast viewer got %s of video in %s\n%s", span, play, gw.Stderr())
		}
	}
	ctx := context.Background()
	skips, _ := gw.Metric(ctx, "flvgw_viewer_skips_total")
	lagDrops, _ := gw.Metric(ctx, `flvgw_viewers_dropped_total{reason="lag"}`)
	writeDrops, _ := gw.Metric(ctx, `flvgw_viewers_dropped_total{reason="write_timeout"}`)
	if skips+lagDrops+writeDrops == 0 {
		t.Fatal("the slow viewer was neither skipped nor dropped")
	}
	t.Logf("slow viewer: skips %v, dropped for lag %v, for write timeout %v", skips, lagDrops, writeDrops)
}

// Out of file descriptors, flvgw keeps running: connections wait in the
// listen backlog (a warning is logged) while every viewer already playing
// goes on, and new requests are served once descriptors are freed.
// fasthttp's Serve returns on such an accept error, which used to end
// flvgw and every viewer with it.
func TestOutOfFileDescriptors(t *testing.T) {
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(nil))
	startPublisher(t, gw, "live/fd", "sample.flv", false)
	waitLive(t, gw, "live/fd")
	leave, viewer := playing(gw, "/live/fd.flv")
	waitSubscribers(t, gw, 1, 10*time.Second, "the viewer before")

	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", gw.PID()))
	if err != nil {
		t.Skipf("cannot count flvgw's descriptors: %v", err)
	}
	limit := len(fds) + 8
	if out, err := exec.Command("prlimit", fmt.Sprintf("--pid=%d", gw.PID()), fmt.Sprintf("--nofile=%d:%d", limit, limit)).CombinedOutput(); err != nil {
		t.Skipf("prlimit: %v %s", err, out)
	}
	var conns []net.Conn
	for range 40 {
		c, err := net.Dial("tcp", gw.HTTPAddr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(gw.Stderr(), "accept failed") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(gw.Stderr(), "accept failed") {
		t.Fatalf("no accept failure logged with %d descriptors allowed\n%s", limit, gw.Stderr())
	}
	time.Sleep(500 * time.Millisecond) // a while out of descriptors
	select {
	case <-gw.Exited():
		t.Fatalf("flvgw exited when out of descriptors: %v\n%s", gw.ExitErr(), gw.Stderr())
	default:
	}
	for _, c := range conns {
		c.Close()
	}
	// A new connection (not a kept-alive one) must be served again.
	healthz := func() error {
		c, err := net.DialTimeout("tcp", gw.HTTPAddr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
			return err
		}
		head, err := io.ReadAll(c)
		if !strings.HasPrefix(string(head), "HTTP/1.1 200") {
			return fmt.Errorf("answer %q: %v", head, err)
		}
		return nil
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		err := healthz()
		if err == nil {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("flvgw did not serve a new connection after descriptors were freed: %v\n%s", err, gw.Stderr())
		}
	}
	// Logged before the accept that served the request returned, but read
	// from flvgw's stderr a moment later.
	for end := time.Now().Add(5 * time.Second); !strings.Contains(gw.Stderr(), "accepting again"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the recovery was not logged\n%s", gw.Stderr())
		}
	}
	close(leave)
	if p := <-viewer; p.Status != 200 || !p.Left() {
		t.Fatalf("the viewer playing through it: status %d, err %v (ended by flvgw, not by leaving)", p.Status, p.Err)
	}
}

// playing starts a viewer of path on gw; closing leave makes it leave, and
// its play comes on the channel.
func playing(gw *testkit.Gateway, path string) (leave chan struct{}, play <-chan testkit.Play) {
	leave = make(chan struct{})
	done := make(chan testkit.Play, 1)
	go func() { done <- testkit.PlayFLV(context.Background(), gw.URL(path), leave) }()
	return leave, done
}

// A second SIGTERM while flvgw shuts down (here waiting out its grace for
// a request still being sent) ends it at once, with status 1 and a
// warning: before, flvgw kept the signal and went on waiting.
func TestSignalDuringShutdownExitsAtOnce(t *testing.T) {
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"http": "drain_timeout = \"0s\"\nread_timeout = \"30s\"\n",
	}))
	slow, err := net.Dial("tcp", gw.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := io.WriteString(slow, "GET /live/x.flv HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the request is read in part
	if err := gw.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !waitFor(5*time.Second, func() bool { return strings.Contains(gw.Stderr(), `msg="shutting down"`) }) {
		t.Fatalf("no shutdown on SIGTERM\n%s", gw.Stderr())
	}
	gw.FailedExitExpected()
	if err := gw.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gw.Exited():
	case <-time.After(15 * time.Second):
		t.Fatal("no exit")
	}
	var exit *exec.ExitError
	if err := gw.ExitErr(); !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1", err)
	}
	if !strings.Contains(gw.Stderr(), `msg="exiting before the shutdown finished" signal=terminated`) {
		t.Fatalf("no warning for the second signal\n%s", gw.Stderr())
	}
}

// The callbacks get the request's query: an encoder's stream key after
// the stream name (rtmp://host/live/keyed?key=...), a viewer's URL's
// query, so that on_publish and on_play can check them; the stream is
// named without it.
func TestCallbacksGetTheQuery(t *testing.T) {
	var delay atomic.Int64
	seen := make(chan access.Request, 4)
	hook := callbackServer(t, map[string]bool{"keyed": true}, &delay, seen)
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"auth": fmt.Sprintf("on_play = %q\n", hook),
		"rtmp": fmt.Sprintf("on_publish = %q\n", hook),
	}))
	pub := &testkit.Publisher{Addr: gw.RTMPAddr, App: "live", Stream: "keyed?key=abc123", Tags: loadTags(t, "sample.flv"), Loop: true}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = pub.Run(ctx) }()
	waitLive(t, gw, "live/keyed")
	if got := <-seen; got.Action != "publish" || got.Stream != "keyed" || got.Query != "key=abc123" {
		t.Fatalf("on_publish got %+v, want stream keyed with query key=abc123", got)
	}
	checkPlayed(t, playFor(gw.URL("/live/keyed.flv?session=s1&user=u2"), time.Second), "viewer")
	if got := <-seen; got.Action != "play" || got.Stream != "keyed" || got.Query != "session=s1&user=u2" {
		t.Fatalf("on_play got %+v, want stream keyed with query session=s1&user=u2", got)
	}
}
