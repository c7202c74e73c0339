package test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"flvgw/test/testkit"
)

func upstreamConfig(name, url string) string {
	return fmt.Sprintf("[[upstream]]\nname = %q\nurl = %q\n", name, url)
}

// nginxPublish publishes the test clip to nginx-rtmp with ffmpeg (or the
// Go publisher without ffmpeg) until the test ends.
func nginxPublish(t *testing.T, n *testkit.Nginx, stream string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	if testkit.UseFFmpeg(t) {
		cmd, err := testkit.FFmpegPublish(ctx, "testdata/sample.flv", "rtmp://"+n.RTMPAddr+"/live/"+stream, true)
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = cmd.Wait(); close(done) }()
	} else {
		pub := &testkit.Publisher{Addr: n.RTMPAddr, App: "live", Stream: stream, Tags: loadTags(t, "sample.flv"), Loop: true}
		go func() { _ = pub.Run(ctx); close(done) }()
	}
	stop = sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	// nginx answers StreamNotFound until the publish is in.
	if !waitFor(15*time.Second, func() bool { return n.Publishing(context.Background(), stream) }) {
		t.Fatalf("nginx never saw the publish of %s", stream)
	}
	time.Sleep(500 * time.Millisecond) // a keyframe or two in
	return stop
}

// playFor plays url for d and returns what the viewer got.
func playFor(url string, d time.Duration) testkit.Play {
	leave := make(chan struct{})
	time.AfterFunc(d, func() { close(leave) })
	return testkit.PlayFLV(context.Background(), url, leave)
}

func checkPlayed(t *testing.T, p testkit.Play, what string) {
	t.Helper()
	if p.Status != http.StatusOK || p.Stream == nil {
		t.Fatalf("%s: status %d, %v", what, p.Status, p.Err)
	}
	if err := p.Stream.CheckPlayable(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if a, v := p.Stream.CountMedia(); a == 0 || v == 0 {
		t.Fatalf("%s: %d audio, %d video tags", what, a, v)
	}
}

// 100 viewers of one stream on the gateway make one play session on the
// foreign origin (nginx-rtmp), and all of them play.
func TestEdgeOnePullForManyViewers(t *testing.T) {
	n := testkit.StartNginx(t)
	nginxPublish(t, n, "one")
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"rtmp":  "listen = \"\"\n",
		"extra": upstreamConfig("nginx", "rtmp://"+n.RTMPAddr),
	}))
	baseline := goroutines(t, gw)
	const viewers = 100
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leave := make(chan struct{})
	plays := make(chan testkit.Play, viewers)
	start := make(chan struct{})
	for range viewers {
		go func() {
			<-start // all at once
			plays <- testkit.PlayFLV(ctx, gw.URL("/live/one.flv"), leave)
		}()
	}
	close(start)
	waitSubscribers(t, gw, viewers, 20*time.Second, "viewers did not attach")
	time.Sleep(time.Second)
	players, err := n.Players(ctx, "one")
	if err != nil {
		t.Fatal(err)
	}
	if players != 1 {
		t.Fatalf("nginx sees %d playing clients for %d gateway viewers, want 1", players, viewers)
	}
	if s, err := gw.Metric(ctx, "flvgw_upstream_sessions_total"); err != nil || s != 1 {
		t.Fatalf("upstream sessions %v (%v), want 1", s, err)
	}
	streams, err := gw.Streams(ctx)
	if err != nil || len(streams) != 1 || !strings.Contains(streams[0].Source, "rtmp://"+n.RTMPAddr) {
		t.Fatalf("API: %+v %v", streams, err)
	}
	close(leave)
	for range viewers {
		p := <-plays
		if p.Status != 200 || p.Stream == nil || !p.Left() {
			t.Fatalf("viewer: %d %v", p.Status, p.Err)
		}
		if err := p.Stream.CheckPlayable(); err != nil {
			t.Fatal(err)
		}
	}
	// After the idle timeout the pull stops: nginx loses its player.
	if !waitFor(10*time.Second, func() bool {
		p, err := n.Players(ctx, "one")
		return err == nil && p == 0
	}) {
		t.Fatal("pull not stopped after the last viewer left and idle_timeout passed")
	}
	if s, _ := gw.Streams(ctx); len(s) != 0 {
		t.Fatalf("entries after idle stop: %+v", s)
	}
	// Unknown on the origin: 404 promptly, nothing left behind.
	start2 := time.Now()
	if p := testkit.PlayFLV(ctx, gw.URL("/live/missing.flv"), nil); p.Status != 404 {
		t.Fatalf("missing stream: %d", p.Status)
	}
	if d := time.Since(start2); d > 3*time.Second {
		t.Fatalf("404 took %s", d)
	}
	if s, _ := gw.Streams(ctx); len(s) != 0 {
		t.Fatalf("entries after a 404: %+v", s)
	}
	checkNoLeak(t, gw, baseline)
}

// Gateway B pulls HTTP-FLV from gateway A; A sees one session from B.
func TestTieredGateways(t *testing.T) {
	a := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(nil))
	startPublisher(t, a, "live/tier", "sample.flv", testkit.UseFFmpeg(t))
	waitLive(t, a, "live/tier")
	b := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"rtmp":  "listen = \"\"\n",
		"extra": upstreamConfig("gateway-a", "http://"+a.HTTPAddr),
	}))
	const viewers = 10
	plays := make(chan testkit.Play, viewers)
	for range viewers {
		go func() { plays <- playFor(b.URL("/live/tier.flv"), 3*time.Second) }()
	}
	ctx := context.Background()
	if !waitFor(10*time.Second, func() bool {
		s, err := b.Metric(ctx, "flvgw_subscribers")
		return err == nil && s == viewers
	}) {
		t.Fatalf("viewers on B did not attach\n%s", b.Stderr())
	}
	streams, err := a.Streams(ctx)
	if err != nil || len(streams) != 1 || streams[0].Subscribers != 1 {
		t.Fatalf("A's streams with %d viewers on B: %+v %v", viewers, streams, err)
	}
	for range viewers {
		checkPlayed(t, <-plays, "viewer on B")
	}
}

// Tiers across untrusted networks pull over TLS: an edge pulls from an
// upstream flvgw's HTTPS listener, checking its certificate with
// ca_file; an edge without the CA is refused by the check (502), and its
// log says why.
func TestTieredGatewaysOverHTTPS(t *testing.T) {
	certFile, keyFile, _ := selfSigned(t, t.TempDir())
	tlsAddr := testkit.FreePort(t)
	a := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"http": fmt.Sprintf("tls_listen = %q\ntls_cert = %q\ntls_key = %q\n", tlsAddr, certFile, keyFile),
	}))
	startPublisher(t, a, "live/tls", "sample.flv", false)
	waitLive(t, a, "live/tls")
	b := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"rtmp":  "listen = \"\"\n",
		"extra": upstreamConfig("gateway-a", "https://"+tlsAddr) + fmt.Sprintf("ca_file = %q\n", certFile),
	}))
	checkPlayed(t, playFor(b.URL("/live/tls.flv"), 2*time.Second), "viewer of a stream pulled over https")
	if s, err := b.Streams(context.Background()); err != nil || len(s) != 1 || !strings.HasPrefix(s[0].Source, "gateway-a https://") {
		t.Fatalf("B's streams: %+v %v", s, err)
	}
	c := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"rtmp":  "listen = \"\"\n",
		"edge":  "pull_timeout = \"1s\"\n",
		"extra": upstreamConfig("gateway-a", "https://"+tlsAddr),
	}))
	if p := testkit.PlayFLV(context.Background(), c.URL("/live/tls.flv"), nil); p.Status != http.StatusBadGateway {
		t.Fatalf("an edge that does not trust the upstream's certificate: %d, want 502", p.Status)
	}
	if !strings.Contains(c.Stderr(), "certificate") {
		t.Fatalf("the refused certificate is not logged:\n%s", c.Stderr())
	}
}

// checkPlayedAcross checks a viewer that played across a change of its
// stream's source (what) and then left: its response ended cleanly, it
// is playable, and the new source's frames arrived (the clip restarts at
// 0 s; spliced, it goes on past the first source's time).
func checkPlayedAcross(t *testing.T, p testkit.Play, what string) {
	t.Helper()
	if p.Status != 200 || !p.Left() {
		t.Fatalf("viewer across %s: %d %v", what, p.Status, p.Err)
	}
	if err := p.Stream.CheckPlayable(); err != nil {
		t.Fatalf("across %s: %v", what, err)
	}
	if _, v := p.Stream.CountMedia(); v < 25*3 {
		t.Fatalf("only %d video tags across %s", v, what)
	}
}

// A tier of gateways whose upper tier signs its URLs (auth.play_secret):
// an edge whose [[upstream]] has the same play_secret signs its pulls and
// plays; one without it is refused by the upstream, and its viewer gets
// 502, not a stream.
func TestSignedPullFromAnUpstream(t *testing.T) {
	a := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"auth": "play_secret = \"s3cret\"\n",
	}))
	startPublisher(t, a, "live/signed", "sample.flv", testkit.UseFFmpeg(t))
	waitLive(t, a, "live/signed")
	signing := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"rtmp":  "listen = \"\"\n",
		"extra": upstreamConfig("gateway-a", "http://"+a.HTTPAddr) + "play_secret = \"s3cret\"\n",
	}))
	unsigned := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"rtmp":  "listen = \"\"\n",
		"edge":  "pull_timeout = \"1s\"\n",
		"extra": upstreamConfig("gateway-a", "http://"+a.HTTPAddr),
	}))
	checkPlayed(t, playFor(signing.URL("/live/signed.flv"), 2*time.Second), "viewer of an edge that signs its pulls")
	if p := playFor(unsigned.URL("/live/signed.flv"), 10*time.Second); p.Status != http.StatusBadGateway {
		t.Fatalf("viewer of an edge that does not sign its pulls: %d %v, want 502", p.Status, p.Err)
	}
	if !strings.Contains(a.Stderr(), "status=403") {
		t.Fatalf("the upstream did not refuse the unsigned pull:\n%s", a.Stderr())
	}
}

// A stream published to a node is served from there, never pulled: on an
// edge that also takes publishes, a publisher of a stream its viewers
// pull from an upstream stops the pull, and the viewers play on from the
// publisher, spliced on, on the same responses. Before, the publisher was
// refused as busy for as long as the pull ran.
func TestPublishTakesAStreamFromItsPull(t *testing.T) {
	a := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(nil))
	useFFmpeg := testkit.UseFFmpeg(t)
	startPublisher(t, a, "live/local", "sample.flv", useFFmpeg)
	waitLive(t, a, "live/local")
	b := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"extra": upstreamConfig("gateway-a", "http://"+a.HTTPAddr),
	}))
	const viewers = 3
	leave := make(chan struct{})
	plays := make(chan testkit.Play, viewers)
	for range viewers {
		go func() { plays <- testkit.PlayFLV(context.Background(), b.URL("/live/local.flv"), leave) }()
	}
	ctx := context.Background()
	waitSubscribers(t, b, viewers, 10*time.Second, "viewers on B")
	time.Sleep(time.Second)
	startPublisher(t, b, "live/local", "sample.flv", useFFmpeg)
	if !waitFor(10*time.Second, func() bool { return strings.Contains(b.Stderr(), `msg="pull stopped for a publisher"`) }) {
		t.Fatalf("the publisher to B did not take live/local from its pull:\n%s", b.Stderr())
	}
	// A loses B's pull, its one viewer.
	if !waitFor(10*time.Second, func() bool {
		s, err := a.Streams(ctx)
		return err == nil && len(s) == 1 && s[0].Subscribers == 0
	}) {
		s, err := a.Streams(ctx)
		t.Fatalf("A still serves B's pull: %+v %v", s, err)
	}
	time.Sleep(2500 * time.Millisecond)
	streams, err := b.Streams(ctx)
	if err != nil || len(streams) != 1 || strings.Contains(streams[0].Source, a.HTTPAddr) {
		t.Fatalf("B's streams after the publish: %+v %v", streams, err)
	}
	close(leave)
	for range viewers {
		checkPlayedAcross(t, <-plays, "the pull's stop")
	}
}

// The first upstream refuses connections; the second serves.
func TestFailoverToNextUpstream(t *testing.T) {
	a := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(nil))
	startPublisher(t, a, "live/fo", "sample.flv", false)
	waitLive(t, a, "live/fo")
	dead := testkit.FreePort(t) // nothing listens here
	b := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"rtmp":  "listen = \"\"\n",
		"edge":  "pull_timeout = \"1s\"\nretry_backoff = \"50ms\"\n",
		"extra": upstreamConfig("dead", "http://"+dead) + upstreamConfig("alive", "http://"+a.HTTPAddr),
	}))
	p := playFor(b.URL("/live/fo.flv"), 2*time.Second)
	checkPlayed(t, p, "viewer after failover")
	if !strings.Contains(b.Stderr(), "upstream=dead") {
		t.Fatalf("the refused attempt is not logged:\n%s", b.Stderr())
	}
	// Each upstream's attempts, by result: the operator sees which one fails.
	checkAttempts(t, b, map[string]float64{"dead/unreachable": 1, "dead/played": 0, "alive/played": 1, "alive/not_found": 0})
	for upstream, want := range map[string]float64{"dead": 1, "alive": 0} { // edge.unreachable_cooldown
		series := fmt.Sprintf("flvgw_upstream_tried_last{upstream=%q}", upstream)
		if got, err := b.Metric(context.Background(), series); err != nil || got != want {
			t.Errorf("%s = %v (%v), want %v", series, got, err, want)
		}
	}
	if p := testkit.PlayFLV(context.Background(), b.URL("/live/nobody.flv"), nil); p.Status != http.StatusNotFound {
		t.Fatalf("a stream no upstream has: %d, want 404", p.Status)
	}
	// The pull asks both until pull_timeout, as dead may have it (dead
	// last: it was unreachable a moment ago).
	if n, d := attempts(t, b, "alive", "not_found"), attempts(t, b, "dead", "unreachable"); n < 1 || d < 2 {
		t.Errorf("after a 404: %v attempts of alive lacking the stream, %v of dead unreachable; want at least 1 and 2", n, d)
	}
	checkAttempts(t, b, map[string]float64{"alive/played": 1, "dead/not_found": 0, "alive/unreachable": 0})
	// Every upstream unreachable: 502 within pull_timeout, nothing left.
	c := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"rtmp":  "listen = \"\"\n",
		"edge":  "pull_timeout = \"1s\"\nretry_backoff = \"50ms\"\n",
		"extra": upstreamConfig("dead", "http://"+dead) + upstreamConfig("dead-rtmp", "rtmp://"+dead),
	}))
	start := time.Now()
	if p := testkit.PlayFLV(context.Background(), c.URL("/live/fo.flv"), nil); p.Status != http.StatusBadGateway {
		t.Fatalf("all upstreams down: %d, want 502", p.Status)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("502 after %s, want within pull_timeout (1s)", d)
	}
	if s, _ := c.Streams(context.Background()); len(s) != 0 {
		t.Fatalf("entries after a 502: %+v", s)
	}
}

// attempts reads gw's flvgw_upstream_attempts_total of upstream and result.
func attempts(t *testing.T, gw *testkit.Gateway, upstream, result string) float64 {
	t.Helper()
	series := fmt.Sprintf("flvgw_upstream_attempts_total{result=%q,upstream=%q}", result, upstream)
	n, err := gw.Metric(context.Background(), series)
	if err != nil {
		t.Errorf("%s: %v", series, err)
	}
	return n
}

// checkAttempts compares gw's flvgw_upstream_attempts_total with want, keyed
// "upstream/result"; the played attempts are also the count of
// flvgw_upstream_first_tag_seconds.
func checkAttempts(t *testing.T, gw *testkit.Gateway, want map[string]float64) {
	t.Helper()
	for key, n := range want {
		upstream, result, _ := strings.Cut(key, "/")
		if got := attempts(t, gw, upstream, result); got != n {
			t.Errorf("%s attempts of %s: %v, want %v", result, upstream, got, n)
		}
		if result != "played" {
			continue
		}
		series := fmt.Sprintf("flvgw_upstream_first_tag_seconds_count{upstream=%q}", upstream)
		if got, err := gw.Metric(context.Background(), series); err != nil || got != n {
			t.Errorf("%s: %v (%v), want %v", series, got, err, n)
		}
	}
}

// The upstream dies mid-stream. Restarted within reconnect_window, the
// viewers keep their connection and go on receiving well-formed FLV with
// rising timestamps; not restarted, they end cleanly while the gateway
// serves other streams.
func TestUpstreamKilledMidStream(t *testing.T) {
	httpA, rtmpA := testkit.FreePort(t), testkit.FreePort(t)
	configA := testkit.BaseConfig(map[string]string{
		"http": fmt.Sprintf("listen = %q\n", httpA),
		"rtmp": fmt.Sprintf("listen = %q\n", rtmpA),
	})
	a := testkit.StartGateway(t, gatewayBin, configA)
	startPublisher(t, a, "live/up", "sample.flv", false)
	waitLive(t, a, "live/up")
	b := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"pool":  "reconnect_window = \"6s\"\n",
		"edge":  "pull_timeout = \"2s\"\nretry_backoff = \"100ms\"\n",
		"extra": upstreamConfig("a", "http://"+httpA),
	}))
	// A stream of B's own, to show the others are untouched.
	startPublisher(t, b, "local/own", "sample.flv", false)
	waitLive(t, b, "local/own")

	const viewers = 5
	leave := make(chan struct{})
	plays := make(chan testkit.Play, viewers)
	for range viewers {
		go func() { plays <- testkit.PlayFLV(context.Background(), b.URL("/live/up.flv"), leave) }()
	}
	ctx := context.Background()
	if !waitFor(10*time.Second, func() bool {
		s, err := b.Metric(ctx, "flvgw_subscribers")
		return err == nil && s == viewers
	}) {
		t.Fatal("viewers did not attach")
	}
	time.Sleep(time.Second)
	a.Kill()
	time.Sleep(1500 * time.Millisecond)
	a2 := testkit.StartGateway(t, gatewayBin, configA)
	startPublisher(t, a2, "live/up", "sample.flv", false)
	time.Sleep(3 * time.Second) // playing again from the restarted upstream
	close(leave)
	for range viewers {
		p := <-plays
		if p.Status != 200 || !p.Left() || p.Stream == nil {
			t.Fatalf("viewer across the upstream restart: %d %v", p.Status, p.Err)
		}
		if err := p.Stream.CheckPlayable(); err != nil {
			t.Fatalf("across the restart: %v", err)
		}
		// Media from after the restart arrived: more than the ~2.5 s before it.
		if _, v := p.Stream.CountMedia(); v < 25*4 {
			t.Fatalf("only %d video tags across the restart", v)
		}
	}
	if !strings.Contains(b.Stderr(), "source lost, viewers kept") {
		t.Fatalf("reconnect not logged:\n%s", b.Stderr())
	}

	// Now the upstream dies for good: viewers end cleanly after the window.
	plays2 := make(chan testkit.Play, viewers)
	for range viewers {
		go func() { plays2 <- testkit.PlayFLV(context.Background(), b.URL("/live/up.flv"), nil) }()
	}
	if !waitFor(10*time.Second, func() bool {
		s, err := b.Metric(ctx, "flvgw_subscribers")
		return err == nil && s == viewers
	}) {
		t.Fatal("viewers did not attach the second time")
	}
	a2.Kill()
	killed := time.Now()
	own := make(chan testkit.Play, 1)
	go func() { own <- playFor(b.URL("/local/own.flv"), 3*time.Second) }()
	for range viewers {
		p := <-plays2
		if p.Status != 200 || p.Err != nil {
			t.Fatalf("viewer after the upstream died: %d %v", p.Status, p.Err)
		}
		if err := p.Stream.CheckPlayable(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(killed); d > 6*time.Second+4*time.Second {
			t.Fatalf("ended %s after the upstream died, window 6s", d)
		}
	}
	checkPlayed(t, <-own, "B's own stream while the upstream was gone")
}

// max_entries: idle entries are evicted first (the origin loses that
// player); with every entry watched a new stream gets 503 + Retry-After
// and the viewers already playing are untouched.
func TestEdgeLRUEviction(t *testing.T) {
	n := testkit.StartNginx(t)
	for _, s := range []string{"s1", "s2", "s3"} {
		nginxPublish(t, n, s)
	}
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"rtmp":  "listen = \"\"\n",
		"pool":  "max_entries = 2\nidle_timeout = \"1m\"\n",
		"extra": upstreamConfig("nginx", "rtmp://"+n.RTMPAddr),
	}))
	ctx := context.Background()
	checkPlayed(t, playFor(gw.URL("/live/s1.flv"), 1500*time.Millisecond), "s1")
	// s1 is idle now but still pulled (idle_timeout is long).
	if p, _ := n.Players(ctx, "s1"); p != 1 {
		t.Fatalf("idle s1: nginx players %d, want 1 (kept for idle_timeout)", p)
	}
	var streams []testkit.StreamInfo
	if !waitFor(3*time.Second, func() bool {
		streams, _ = gw.Streams(ctx)
		return len(streams) == 1 && streams[0].State == "idle"
	}) {
		t.Fatalf("after the viewer left: %+v", streams)
	}
	// A returning viewer reuses the running pull.
	checkPlayed(t, playFor(gw.URL("/live/s1.flv"), time.Second), "s1 again")
	if s, _ := gw.Metric(ctx, "flvgw_upstream_sessions_total"); s != 1 {
		t.Fatalf("upstream sessions %v after a viewer came back, want 1", s)
	}
	// The gateway notices the viewer left at its next write.
	if !waitFor(3*time.Second, func() bool {
		streams, _ = gw.Streams(ctx)
		return len(streams) == 1 && streams[0].State == "idle"
	}) {
		t.Fatalf("after the second viewer left: %+v", streams)
	}
	leave := make(chan struct{})
	var wg sync.WaitGroup
	results := make(map[string]testkit.Play)
	var mu sync.Mutex
	for _, s := range []string{"s2", "s3"} {
		wg.Go(func() {
			p := testkit.PlayFLV(ctx, gw.URL("/live/"+s+".flv"), leave)
			mu.Lock()
			results[s] = p
			mu.Unlock()
		})
		if !waitFor(10*time.Second, func() bool {
			st, _ := gw.Streams(ctx)
			for _, e := range st {
				if e.Key == "live/"+s && e.Subscribers == 1 {
					return true
				}
			}
			return false
		}) {
			st, _ := gw.Streams(ctx)
			mu.Lock()
			t.Fatalf("%s did not start: entries %+v, results %+v\n%s", s, st, results, gw.Stderr())
		}
	}
	// s3 took the place of idle s1: its pull stopped.
	if !waitFor(5*time.Second, func() bool { p, _ := n.Players(ctx, "s1"); return p == 0 }) {
		t.Fatal("evicted s1 still pulled from nginx")
	}
	if ev, _ := gw.Metric(ctx, "flvgw_evictions_total"); ev != 1 {
		t.Fatalf("evictions %v, want 1", ev)
	}
	// Both entries watched: a new stream is refused, politely.
	resp, err := http.Get(gw.URL("/live/s1.flv"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("full pool: %d %v", resp.StatusCode, resp.Header)
	}
	time.Sleep(time.Second)
	close(leave)
	wg.Wait()
	for s, p := range results {
		checkPlayed(t, p, s+" while the pool was full")
	}
}

// An upstream that sends a broken tag ends that entry with a logged
// error; the viewers of it end cleanly and other streams play on.
func TestMalformedUpstreamEndsOnlyItsEntry(t *testing.T) {
	clip, err := os.ReadFile("testdata/sample.flv")
	if err != nil {
		t.Fatal(err)
	}
	s, err := testkit.ReadFile("testdata/sample.flv")
	if err != nil {
		t.Fatal(err)
	}
	// Cut the clip after about a second of tags, at a tag boundary.
	cut := 13
	for _, tag := range s.Tags {
		if tag.Timestamp > 1000 {
			break
		}
		cut += 11 + len(tag.Body) + 4
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "video/x-flv")
		_, _ = w.Write(clip[:cut])
		w.(http.Flusher).Flush()
		time.Sleep(300 * time.Millisecond)
		// A tag of type 7 with a size past the end: not FLV.
		_, _ = w.Write([]byte{7, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0})
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	// A reconnect window must not make flvgw retry a source that broke
	// the protocol.
	b := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"pool":  "reconnect_window = \"10s\"\n",
		"log":   "level = \"debug\"\n",
		"extra": upstreamConfig("broken", "http://"+ln.Addr().String()),
	}))
	startPublisher(t, b, "local/fine", "sample.flv", false)
	waitLive(t, b, "local/fine")
	fine := make(chan testkit.Play, 1)
	go func() { fine <- playFor(b.URL("/local/fine.flv"), 3*time.Second) }()

	started := time.Now()
	p := testkit.PlayFLV(context.Background(), b.URL("/live/bad.flv"), nil)
	if d := time.Since(started); d > 5*time.Second {
		t.Fatalf("viewer of a malformed upstream ended after %s: retried\n%s", d, b.Stderr())
	}
	if p.Status != 200 || p.Err != nil {
		t.Fatalf("viewer of the broken upstream: %d %v (want a clean end)", p.Status, p.Err)
	}
	if err := p.Stream.CheckPlayable(); err != nil {
		t.Fatal(err)
	}
	if !waitFor(2*time.Second, func() bool { return strings.Contains(b.Stderr(), "malformed") }) {
		t.Fatalf("malformed upstream not logged:\n%s", b.Stderr())
	}
	checkPlayed(t, <-fine, "another stream during the broken pull")
	if s, _ := b.Streams(context.Background()); len(s) != 1 || s[0].Key != "local/fine" {
		t.Fatalf("entries: %+v", s)
	}
}

// The embedded publisher leaves and comes back within reconnect_window:
// the viewers keep their connection and get well-formed FLV whose
// timestamps keep rising across the splice.
func TestRepublishWithinReconnectWindow(t *testing.T) {
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"pool": "reconnect_window = \"5s\"\n",
	}))
	useFFmpeg := testkit.UseFFmpeg(t)
	stop := startPublisher(t, gw, "live/re", "sample.flv", useFFmpeg)
	waitLive(t, gw, "live/re")
	const viewers = 3
	leave := make(chan struct{})
	plays := make(chan testkit.Play, viewers)
	for range viewers {
		go func() { plays <- testkit.PlayFLV(context.Background(), gw.URL("/live/re.flv"), leave) }()
	}
	if !waitFor(5*time.Second, func() bool {
		s, err := gw.Metric(context.Background(), "flvgw_subscribers")
		return err == nil && s == viewers
	}) {
		t.Fatal("viewers did not attach")
	}
	time.Sleep(1500 * time.Millisecond)
	stop()
	time.Sleep(time.Second)
	startPublisher(t, gw, "live/re", "sample.flv", useFFmpeg)
	time.Sleep(2500 * time.Millisecond)
	close(leave)
	for range viewers {
		checkPlayedAcross(t, <-plays, "the republish")
	}
	if !strings.Contains(gw.Stderr(), "source lost, viewers kept") {
		t.Fatalf("reconnect not logged:\n%s", gw.Stderr())
	}
}

// A stream past 4 h 39 min on a foreign origin pulls and plays with its
// 32-bit timestamps: nginx-rtmp sends them in the extended timestamp field
// of its headers of format 0. The pull client read them before go-rtmp
// was patched; this guards it. (nginx-rtmp sends later messages with
// small deltas, so its format 3 chunks seldom repeat the field: origin's
// TestGoRTMPWritesRepeatedExtendedTimestamps has the pull client's reader
// read that framing.)
func TestEdgePullsPastTheExtendedTimestamp(t *testing.T) {
	n := testkit.StartNginx(t)
	exited := publishExtended(t, "rtmp://"+n.RTMPAddr+"/live/late")
	if !waitFor(15*time.Second, func() bool { return n.Publishing(context.Background(), "late") }) {
		t.Fatal("nginx never saw the publish")
	}
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"rtmp":  "listen = \"\"\n",
		"extra": upstreamConfig("nginx", "rtmp://"+n.RTMPAddr),
	}))
	p := playFor(gw.URL("/live/late.flv"), 3*time.Second)
	checkPlayed(t, p, "viewer")
	checkExtended(t, p.Stream)
	select {
	case <-exited:
		t.Fatal("ffmpeg's publish to nginx ended")
	default:
	}
}
