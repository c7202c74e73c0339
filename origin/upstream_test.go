package origin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/yutopp/go-rtmp/handshake"
	"go.uber.org/goleak"

	"flvgw/gateway/access"
	"flvgw/pool"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// serve runs handler on a loopback listener until the test ends.
func serve(t *testing.T, handler func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); handler(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// httpFLV serves the test clip (or a status) over HTTP on loopback.
func httpFLV(t *testing.T, status int) string {
	t.Helper()
	clip, err := os.ReadFile("../test/testdata/sample.flv")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if status != http.StatusOK {
			http.Error(w, "no", status)
			return
		}
		_, _ = w.Write(clip)
		<-r.Context().Done()
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

func newPull(t *testing.T, cfg EdgeConfig, ups ...Upstream) *pool.Pool {
	t.Helper()
	return newPullWith(t, pool.DefaultConfig(), cfg, ups...)
}

// newPullWith is newPull with a pool configured by pcfg.
func newPullWith(t *testing.T, pcfg pool.Config, cfg EdgeConfig, ups ...Upstream) *pool.Pool {
	t.Helper()
	if err := ValidateUpstreams(ups); err != nil {
		t.Fatal(err)
	}
	p, err := pool.New(pcfg, quiet(), NewResolver(ups, cfg, quiet()).Resolve)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// subscribeReady subscribes to live/x of p (closed at the test's
// cleanup) and waits up to 10 s for it to be ready.
func subscribeReady(t *testing.T, p *pool.Pool) (*pool.Subscription, error) {
	t.Helper()
	sub, err := p.Subscribe("live/x", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return sub, sub.Entry().WaitReady(ctx)
}

// resolverPool returns a resolver over ups and a pool pulling through it,
// closed when the test ends.
func resolverPool(t *testing.T, ups []Upstream, cfg EdgeConfig) (*Resolver, *pool.Pool) {
	t.Helper()
	r := NewResolver(ups, cfg, quiet())
	p, err := pool.New(pool.DefaultConfig(), quiet(), r.Resolve)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return r, p
}

func fastEdge() EdgeConfig {
	return EdgeConfig{PullTimeout: 2 * time.Second, RetryBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
}

// A handshake error and an early end each move the pull to the next
// upstream; the third one serves.
func TestFailoverAcrossBrokenUpstreams(t *testing.T) {
	garbage := serve(t, func(c net.Conn) { _, _ = c.Write([]byte("HTTP/1.0 400 not rtmp\r\n\r\n")) })
	early := serve(t, func(c net.Conn) {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\n\r\n")
	})
	good := httpFLV(t, http.StatusOK)
	p := newPull(t, fastEdge(),
		Upstream{Name: "garbage", URL: "rtmp://" + garbage},
		Upstream{Name: "early", URL: "http://" + early},
		Upstream{Name: "good", URL: "http://" + good},
	)
	if _, err := subscribeReady(t, p); err != nil {
		t.Fatalf("no stream after failover: %v", err)
	}
	snap, _ := p.Lookup("live/x")
	if !strings.HasPrefix(snap.Source, "good ") {
		t.Fatalf("source %q, want the third upstream", snap.Source)
	}
}

// Each upstream's attempts are counted by how they went, every configured
// upstream at zero from the start; a reload keeps the counts of the names
// it keeps and drops the others.
func TestAttemptsAreCountedPerUpstream(t *testing.T) {
	dead := func() string {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		defer ln.Close()
		return ln.Addr().String()
	}()
	garbage := serve(t, func(c net.Conn) {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\n\r\n<html>not FLV</html>")
		_, _ = io.Copy(io.Discard, c)
	})
	missing := httpFLV(t, http.StatusNotFound)
	good := httpFLV(t, http.StatusOK)
	ups := []Upstream{
		{Name: "dead", URL: "http://" + dead},
		{Name: "garbage", URL: "http://" + garbage},
		{Name: "missing", URL: "http://" + missing},
		{Name: "good", URL: "http://" + good},
	}
	if err := ValidateUpstreams(ups); err != nil {
		t.Fatal(err)
	}
	r, p := resolverPool(t, ups, fastEdge())
	want := []pool.UpstreamAttempts{{Upstream: "dead"}, {Upstream: "garbage"}, {Upstream: "missing"}, {Upstream: "good"}}
	if got := r.Attempts(); !slices.Equal(got, want) {
		t.Fatalf("before any pull: %+v, want every upstream at zero %+v", got, want)
	}
	start := time.Now()
	if _, err := subscribeReady(t, p); err != nil {
		t.Fatalf("no stream: %v", err)
	}
	took := time.Since(start)
	want = []pool.UpstreamAttempts{{Upstream: "dead", Unreachable: 1}, {Upstream: "garbage", Malformed: 1},
		{Upstream: "missing", NotFound: 1}, {Upstream: "good", Played: 1}}
	got := r.Attempts()
	// The played attempt's time to its first tag: one, in the bucket of
	// its time, which is within the pull's.
	ft := got[3].FirstTag
	if ft.Sum <= 0 || ft.Sum > took {
		t.Fatalf("good's time to the first tag %s, want within the pull's %s", ft.Sum, took)
	}
	var one pool.FirstTagTimes
	one.Observe(ft.Sum)
	if ft != one {
		t.Fatalf("good's times to the first tag %+v, want its one attempt %+v", ft, one)
	}
	got[3].FirstTag = pool.FirstTagTimes{}
	if !slices.Equal(got, want) {
		t.Fatalf("after a pull through them: %+v, want %+v", got, want)
	}
	want[3].FirstTag = ft // kept by the reload below, as the counts are
	if n := p.Stats().UpstreamFailures; n != 3 {
		t.Fatalf("%d failures summed, want 3", n)
	}
	r.Update([]Upstream{{Name: "new", URL: "http://" + dead}, {Name: "good", URL: "http://" + good}}, fastEdge())
	want = []pool.UpstreamAttempts{{Upstream: "new"}, want[3]}
	if got := r.Attempts(); !slices.Equal(got, want) {
		t.Fatalf("after a reload: %+v, want %+v", got, want)
	}
}

// An https upstream is pulled over TLS, its certificate checked: against
// ca_file's certificates, or the system's roots without one (which do not
// know a test server's, so that pull fails, counted as unreachable).
func TestPullOverHTTPS(t *testing.T) {
	clip, err := os.ReadFile("../test/testdata/sample.flv")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(clip)
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(srv.URL, "https://")

	ups := []Upstream{{Name: "tls", URL: "https://" + addr, CAFile: ca}}
	p := newPull(t, fastEdge(), ups...)
	if _, err := subscribeReady(t, p); err != nil {
		t.Fatalf("no stream over https with the server's CA: %v", err)
	}
	if snap, _ := p.Lookup("live/x"); snap.TagsIn == 0 || !strings.HasPrefix(snap.Source, "tls https://") {
		t.Fatalf("entry %+v, want tags from the https upstream", snap)
	}

	untrusted := []Upstream{{Name: "untrusted", URL: "https://" + addr}}
	r, p2 := resolverPool(t, untrusted, fastEdge())
	sub, err := p2.Subscribe("live/x", false)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	<-sub.Entry().Done()
	if err := sub.Entry().Err(); !errors.Is(err, pool.ErrUpstreamUnreachable) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("pull from an upstream whose certificate no root signs: %v, want unreachable for its certificate", err)
	}
	if a := r.Attempts()[0]; a.Unreachable == 0 || a.Played != 0 {
		t.Fatalf("attempts %+v, want unreachable ones only", a)
	}
}

// A pull from an https upstream that is cancelled once its TLS handshake
// is done (the pool closing, its entry dropped) ends at once: the cancel
// closes the connection under the TLS one, armed before the handshake (it
// read the variable that the pull's goroutine reassigned to the TLS
// connection after the handshake, a data race under -race).
func TestHTTPSPullIsCancelledAfterItsHandshake(t *testing.T) {
	shaken := make(chan struct{}, 1)
	addr, ca := tlsUpstream(t, func(c *tls.Conn) {
		// Signalled once the handshake is done, before the request is
		// read: the cancel then has no part in the pull's request.
		if c.Handshake() == nil {
			select {
			case shaken <- struct{}{}:
			default:
			}
		}
		_, _ = io.Copy(io.Discard, c) // never answers
	})
	cfg := fastEdge()
	cfg.PullTimeout = time.Minute
	ups := []Upstream{{Name: "tls", URL: "https://" + addr, CAFile: ca}}
	if err := ValidateUpstreams(ups); err != nil {
		t.Fatal(err)
	}
	p, err := pool.New(pool.DefaultConfig(), quiet(), NewResolver(ups, cfg, quiet()).Resolve)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	sub, err := p.Subscribe("live/x", false)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	select {
	case <-shaken:
	case <-time.After(10 * time.Second):
		t.Fatal("no TLS handshake with the upstream")
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		p.Close() // cancels the pull and waits for it
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the pull did not end when cancelled")
	}
}

// tlsUpstream serves each connection to a loopback TLS listener with
// handle, and gives its address and a ca_file that trusts it.
func tlsUpstream(t *testing.T, handle func(c *tls.Conn)) (addr, caFile string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	srv.StartTLS() // for its certificate and a TLS config that uses it
	t.Cleanup(srv.Close)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.TLS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c.(*tls.Conn))
			}()
		}
	}()
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return ln.Addr().String(), caFile
}

// An attempt's share of pull_timeout bounds all of it: a TLS handshake
// that takes most of the share leaves the response head only the rest,
// not a share of its own. The upstream here finishes its handshake after
// 70% of pull_timeout and then never answers.
func TestAttemptShareBoundsTheWholeAttempt(t *testing.T) {
	cfg := fastEdge() // pull_timeout 2 s, one upstream: the whole of it
	addr, ca := tlsUpstream(t, func(c *tls.Conn) {
		time.Sleep(cfg.PullTimeout * 7 / 10)
		if c.Handshake() == nil {
			_, _ = io.Copy(io.Discard, c)
		}
	})
	p := newPull(t, cfg, Upstream{Name: "slow", URL: "https://" + addr, CAFile: ca})
	start := time.Now()
	err := pullEnds(t, p, 20*time.Second)
	// 2 s when the handshake and the head share the deadline; 3.4 s when
	// the head had a share of its own after the handshake's 1.4 s.
	if d := time.Since(start); d > cfg.PullTimeout*27/20 {
		t.Fatalf("the pull ended after %s; pull_timeout is %s", d.Round(time.Millisecond), cfg.PullTimeout)
	}
	if !errors.Is(err, pool.ErrUpstreamNotFound) {
		t.Fatalf("ended with %v, want a silent upstream's not found", err)
	}
}

// ca_file is checked at load: readable, with a PEM certificate, and only
// for an https upstream.
func TestUpstreamCAFileIsChecked(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		u    Upstream
		want string
	}{
		{Upstream{Name: "a", URL: "https://127.0.0.1:1", CAFile: filepath.Join(dir, "missing.pem")}, "ca_file"},
		{Upstream{Name: "a", URL: "https://127.0.0.1:1", CAFile: junk}, "no PEM certificate"},
		{Upstream{Name: "a", URL: "http://127.0.0.1:1", CAFile: junk}, "only an https upstream"},
		{Upstream{Name: "a", URL: "rtmps://127.0.0.1:1"}, "scheme must be rtmp, http or https"},
	} {
		if err := ValidateUpstreams([]Upstream{tc.u}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error saying %q", tc.u, err, tc.want)
		}
	}
}

// An upstream that could not be reached is tried after the others by the
// pulls that follow, for edge.unreachable_cooldown; then it has its place
// back.
func TestUnreachableUpstreamIsTriedLast(t *testing.T) {
	dead := func() string {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		defer ln.Close()
		return ln.Addr().String()
	}()
	good := httpFLV(t, http.StatusOK)
	ups := []Upstream{{Name: "dead", URL: "http://" + dead}, {Name: "good", URL: "http://" + good}}
	cfg := fastEdge()
	cfg.UnreachableCooldown = time.Second
	r, p := resolverPool(t, ups, cfg)
	pull := func(key string) {
		t.Helper()
		sub, err := p.Subscribe(key, false)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sub.Entry().WaitReady(ctx); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
	}
	check := func(when string, deadTried, played uint64) {
		t.Helper()
		if a := r.Attempts(); a[0].Unreachable != deadTried || a[1].Played != played {
			t.Fatalf("%s: %+v, want dead tried %d times and good played %d", when, a, deadTried, played)
		}
	}
	pull("live/a")
	check("first pull", 1, 1)
	if a := r.Attempts(); !a[0].TriedLast || a[1].TriedLast {
		t.Fatalf("after dead failed: %+v, want dead tried last, good not", a)
	}
	start := time.Now()
	pull("live/b")
	if time.Since(start) < cfg.UnreachableCooldown {
		check("a pull within the cooldown: good first", 1, 2)
	}
	time.Sleep(time.Until(start.Add(cfg.UnreachableCooldown)))
	pull("live/c")
	check("a pull after the cooldown: dead first again", 2, 3)
	if !r.Attempts()[0].TriedLast {
		t.Fatal("dead is not tried last after it failed again")
	}
	r.Update(ups, cfg) // a reload, which may have fixed dead's URL
	if r.Attempts()[0].TriedLast {
		t.Fatal("dead is still tried last after a reload")
	}
}

// An upstream that was reached and took the pull, but ended it before
// any tag (an RTMP play or an HTTP 200 cut short: that stream's source
// going away there), keeps its place in the order: only one that could
// not be reached is tried last for edge.unreachable_cooldown.
func TestUpstreamEndingBeforeItsFirstTagIsNotTriedLast(t *testing.T) {
	endsRTMP := serve(t, func(c net.Conn) { _, _, _ = acceptPlay(c) }) // then hangs up
	endsHTTP := serve(t, func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\n\r\n")
		}
	})
	good := httpFLV(t, http.StatusOK)
	cfg := fastEdge()
	cfg.UnreachableCooldown = time.Minute
	for _, ends := range []Upstream{{Name: "ends", URL: "rtmp://" + endsRTMP}, {Name: "ends", URL: "http://" + endsHTTP}} {
		t.Run(ends.URL[:strings.Index(ends.URL, ":")], func(t *testing.T) {
			ups := []Upstream{ends, {Name: "good", URL: "http://" + good}}
			r, p := resolverPool(t, ups, cfg)
			if _, err := subscribeReady(t, p); err != nil {
				t.Fatal(err)
			}
			if a := r.Attempts(); a[0].Played+a[0].NotFound+a[0].Unreachable+a[0].Malformed != 1 || a[1].Played != 1 {
				t.Fatalf("attempts %+v, want one of %s and good played", a, ends.URL)
			} else if a[0].TriedLast {
				t.Fatalf("attempts %+v: an upstream that took the pull and ended it is tried last", a)
			}
		})
	}
}

// An upstream that answers the pull with onMetaData and the sequence
// headers and then nothing (as SRS answers for a publisher that is still
// connected but sends nothing) has not delivered the stream: within its
// share of pull_timeout the next upstream is tried, which has it. Before,
// its headers counted as the stream's start: the pull waited
// pull_timeout for its media, ended as a stream that went away, and every
// new pull tried it first again, so the upstream with the stream was
// never asked.
func TestUpstreamSendingOnlyHeadersIsFailedOver(t *testing.T) {
	s := &flvStream{t: t}
	s.buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\n\r\n")
	s.buf.Write(pool.Tracks{Audio: true, Video: true}.Header())
	s.tag(pool.TagScript, 0, onMetaData(t)).tag(pool.TagVideo, 0, spliceAVCSeq).tag(pool.TagAudio, 0, spliceAACSeq)
	headersOnly := serve(t, func(c net.Conn) {
		if readRequest(c) == nil {
			_, _ = c.Write(s.buf.Bytes())
			_, _ = io.Copy(io.Discard, c) // silent until the pull hangs up
		}
	})
	good := httpFLV(t, http.StatusOK)
	r, p := resolverPool(t, []Upstream{{Name: "headers", URL: "http://" + headersOnly}, {Name: "good", URL: "http://" + good}}, fastEdge())
	if _, err := subscribeReady(t, p); err != nil {
		t.Fatalf("no stream: %v", err)
	}
	if snap, _ := p.Lookup("live/x"); !strings.HasPrefix(snap.Source, "good ") {
		t.Fatalf("source %q, want the upstream that has the stream", snap.Source)
	}
	if a := r.Attempts(); a[0].Played != 0 || a[0].NotFound != 1 || a[1].Played != 1 {
		t.Fatalf("attempts %+v, want headers not found (silent) and good played", a)
	}
}

// Before the first frame the pull holds the newest onMetaData and
// sequence header of each kind, however many script tags (cue points, a
// repeated onMetaData) come between: an upstream's sequence header
// followed by a dozen of them still reaches the entry with the first
// frame, and the other script tags do not.
func TestHeldHeadersKeepEachKind(t *testing.T) {
	cue := []byte("\x02\x00\x0aonCuePoint\x05")
	meta := onMetaData(t) // one encoding: a map's keys come in any order
	s := &flvStream{t: t}
	s.buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\n\r\n")
	s.buf.Write(pool.Tracks{Audio: true, Video: true}.Header())
	s.tag(pool.TagVideo, 0, spliceAVCSeq).tag(pool.TagAudio, 0, spliceAACSeq)
	for range 12 {
		s.tag(pool.TagScript, 0, cue).tag(pool.TagScript, 0, meta)
	}
	s.tag(pool.TagVideo, 0, spliceAVCKey).tag(pool.TagAudio, 0, spliceAACRaw)
	up := serve(t, func(c net.Conn) {
		if readRequest(c) == nil {
			_, _ = c.Write(s.buf.Bytes())
			_, _ = io.Copy(io.Discard, c)
		}
	})
	p := newPull(t, fastEdge(), Upstream{Name: "u", URL: "http://" + up})
	sub, err := subscribeReady(t, p)
	if err != nil {
		t.Fatalf("no stream: %v", err)
	}
	bufs, err := sub.NewReader().Poll(nil)
	if err != nil {
		t.Fatal(err)
	}
	// The FLV header, onMetaData, the two sequence headers, the keyframe
	// and the audio frame: nothing else, and none of them missing.
	var got []string
	for _, b := range bufs[1:] {
		switch body := b[11 : len(b)-4]; {
		case b[0] == pool.TagScript && bytes.Equal(body, meta):
			got = append(got, "onMetaData")
		case b[0] == pool.TagVideo && bytes.Equal(body, spliceAVCSeq):
			got = append(got, "avc header")
		case b[0] == pool.TagAudio && bytes.Equal(body, spliceAACSeq):
			got = append(got, "aac header")
		case b[0] == pool.TagVideo && bytes.Equal(body, spliceAVCKey):
			got = append(got, "keyframe")
		case b[0] == pool.TagAudio && bytes.Equal(body, spliceAACRaw):
			got = append(got, "audio")
		default:
			got = append(got, fmt.Sprintf("other %d", b[0]))
		}
	}
	if want := []string{"onMetaData", "avc header", "aac header", "keyframe", "audio"}; !slices.Equal(got, want) {
		t.Fatalf("a viewer got %q, want %q", got, want)
	}
}

// The same upstream, reconnected to within reconnect_window after its
// stream broke, answers with headers only (its publisher connected but
// silent). The window still closes: before, the headers made the entry
// live again, which ended the window, and the pull's end began another,
// so the viewers were held, with nothing to play, for as long as the
// upstream kept answering so.
func TestHeadersOnlyDoNotExtendTheReconnectWindow(t *testing.T) {
	headers := &flvStream{t: t}
	headers.buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\n\r\n")
	headers.buf.Write(pool.Tracks{Audio: true, Video: true}.Header())
	headers.tag(pool.TagScript, 0, onMetaData(t)).tag(pool.TagVideo, 0, spliceAVCSeq).tag(pool.TagAudio, 0, spliceAACSeq)
	windowClosesAgainst(t, headers.buf.Bytes(), 500*time.Millisecond, 10*time.Second)
}

// The same upstream, reconnected to within reconnect_window, answers
// with its headers and one keyframe (a cached GOP: its publisher's
// connection half-dead, the origin still serving what it holds) and then
// nothing. The frame made the entry live again, which ended the window,
// and the stall that followed began a new one: the viewers were held, on
// a frozen picture, for as long as the upstream answered so. A window
// starts afresh only as the source feeds for it again.
func TestOneFrameDoesNotExtendTheReconnectWindow(t *testing.T) {
	cached := &flvStream{t: t}
	cached.buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\n\r\n")
	cached.buf.Write(pool.Tracks{Audio: true, Video: true}.Header())
	cached.tag(pool.TagScript, 0, onMetaData(t)).tag(pool.TagVideo, 0, spliceAVCSeq).tag(pool.TagAudio, 0, spliceAACSeq)
	cached.tag(pool.TagVideo, 0, spliceAVCKey)
	windowClosesAgainst(t, cached.buf.Bytes(), 300*time.Millisecond, 8*time.Second)
}

// windowClosesAgainst pulls from an upstream that sends a stream joined
// mid-way and hangs up, then answers each reconnect with again and stays
// silent until the pull (edge.pull_timeout = pullTimeout) hangs up. With
// a reconnect window of 1 s, the entry must end within the given time,
// its window closed.
func windowClosesAgainst(t *testing.T, again []byte, pullTimeout, within time.Duration) {
	t.Helper()
	stream, _ := joinedMidStream(t, 0, 1)
	var conns atomic.Int32
	up := serve(t, func(c net.Conn) {
		if readRequest(c) != nil {
			return
		}
		if conns.Add(1) == 1 {
			_, _ = c.Write(stream) // then hangs up
			return
		}
		_, _ = c.Write(again)
		_, _ = io.Copy(io.Discard, c) // silent until the pull hangs up
	})
	pcfg := pool.DefaultConfig()
	pcfg.ReconnectWindow = time.Second
	cfg := fastEdge()
	cfg.PullTimeout = pullTimeout
	p := newPullWith(t, pcfg, cfg, Upstream{Name: "up", URL: "http://" + up})
	sub, err := subscribeReady(t, p)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-sub.Entry().Done():
	case <-time.After(within):
		t.Fatalf("the entry still holds its viewer %s after its stream broke, with a reconnect window of 1 s (%d connections to the upstream)", within, conns.Load())
	}
	if err := sub.Entry().Err(); !errors.Is(err, pool.ErrNoReconnect) {
		t.Fatalf("the entry ended with %v, want its reconnect window closed", err)
	}
}

func TestPullAnswers(t *testing.T) {
	missing := httpFLV(t, http.StatusNotFound)
	failing := httpFLV(t, http.StatusInternalServerError)
	silentRTMP := serve(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) }) // accepts, never answers
	silentHTTP := serve(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) }) // reads the request, never answers
	dead := func() string {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		defer ln.Close()
		return ln.Addr().String()
	}()
	for _, tc := range []struct {
		name    string
		ups     []Upstream
		want    error
		not     error // what the end must not read as too
		atLeast time.Duration
		within  time.Duration
	}{
		{"404 at once", []Upstream{{Name: "m", URL: "http://" + missing}}, pool.ErrUpstreamNotFound, nil, 0, 500 * time.Millisecond},
		{"unreachable within pull_timeout", []Upstream{{Name: "d", URL: "http://" + dead}, {Name: "d2", URL: "rtmp://" + dead}},
			pool.ErrUpstreamUnreachable, nil, time.Second, 3 * time.Second},
		{"server error is not 'not found'", []Upstream{{Name: "f", URL: "http://" + failing}}, pool.ErrUpstreamUnreachable, nil, time.Second, 3 * time.Second},
		// Not read as unreachable too, which the viewer's answer is told by
		// first: it would get 502.
		{"silence counts as not found", []Upstream{{Name: "s", URL: "rtmp://" + silentRTMP}},
			pool.ErrUpstreamNotFound, pool.ErrUpstreamUnreachable, time.Second, 3 * time.Second},
		{"a silent HTTP upstream counts as not found", []Upstream{{Name: "s", URL: "http://" + silentHTTP}},
			pool.ErrUpstreamNotFound, pool.ErrUpstreamUnreachable, time.Second, 3 * time.Second},
		{"one is silent, one is down: 404", []Upstream{{Name: "s", URL: "http://" + silentHTTP}, {Name: "d", URL: "http://" + dead}},
			pool.ErrUpstreamNotFound, pool.ErrUpstreamUnreachable, time.Second, 3 * time.Second},
		{"one lacks it, one is down: 404", []Upstream{{Name: "m", URL: "http://" + missing}, {Name: "d", URL: "http://" + dead}},
			pool.ErrUpstreamNotFound, pool.ErrUpstreamUnreachable, time.Second, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPull(t, fastEdge(), tc.ups...)
			start := time.Now()
			sub, err := p.Subscribe("live/x", false)
			if err != nil {
				t.Fatal(err)
			}
			<-sub.Entry().Done()
			d := time.Since(start)
			sub.Close()
			if !errors.Is(sub.Entry().Err(), tc.want) {
				t.Fatalf("ended with %v, want %v", sub.Entry().Err(), tc.want)
			}
			if tc.not != nil && errors.Is(sub.Entry().Err(), tc.not) {
				t.Fatalf("ended with %v, which reads as %v too (a viewer would get 502, not 404)", sub.Entry().Err(), tc.not)
			}
			if d < tc.atLeast || d > tc.within {
				t.Fatalf("answered after %s, want between %s and %s", d, tc.atLeast, tc.within)
			}
			if n := p.Stats().Entries; n != 0 {
				t.Fatalf("%d entries left", n)
			}
		})
	}
}

// Apps route streams to upstreams; an app nobody serves is not pulled.
func TestAppRouting(t *testing.T) {
	ups := []Upstream{{Name: "a", URL: "http://127.0.0.1:1", Apps: []string{"live"}}, {Name: "b", URL: "rtmp://127.0.0.1:2", Apps: []string{"tv"}}}
	if err := ValidateUpstreams(ups); err != nil {
		t.Fatal(err)
	}
	r := NewResolver(ups, fastEdge(), quiet()).Resolve
	if src := r("live/x"); src == nil || len(src.(*pull).upstreams) != 1 || src.(*pull).upstreams[0].Name != "a" {
		t.Fatalf("live/x: %+v", src)
	}
	if src := r("radio/x"); src != nil {
		t.Fatalf("radio/x routed to %+v", src)
	}
}

// An RTMP upstream that completes the handshake and then sends a chunk
// claiming a 16 MB message ends its entry as malformed, without retries.
func TestMalformedRTMPUpstream(t *testing.T) {
	bad := serve(t, func(c net.Conn) {
		if err := handshake.HandshakeWithClient(c, c, &handshake.Config{}); err != nil {
			return
		}
		_, _ = c.Write(append([]byte{0x04}, type0(0, 0xffffff, msgVideo, 1)...))
		_, _ = io.Copy(io.Discard, c)
	})
	p := newPull(t, fastEdge(), Upstream{Name: "bad", URL: "rtmp://" + bad}, Upstream{Name: "bad2", URL: "rtmp://" + bad})
	if err := pullEnds(t, p, 3*time.Second); !errors.Is(err, ErrMalformedRTMP) {
		t.Fatalf("ended with %v", err)
	}
}

// A pull whose upstreams each broke the protocol before any tag counts
// each of them in flvgw_upstream_failures_total, the last one too, which
// ends the pull: one such upstream is one failed attempt, two are two.
func TestEveryMalformedAttemptIsCounted(t *testing.T) {
	bad := serve(t, func(c net.Conn) {
		if err := handshake.HandshakeWithClient(c, c, &handshake.Config{}); err != nil {
			return
		}
		_, _ = c.Write(append([]byte{0x04}, type0(0, 0xffffff, msgVideo, 1)...))
		_, _ = io.Copy(io.Discard, c)
	})
	for n := 1; n <= 2; n++ {
		var ups []Upstream
		for i := range n {
			ups = append(ups, Upstream{Name: fmt.Sprintf("bad%d", i), URL: "rtmp://" + bad})
		}
		p := newPull(t, fastEdge(), ups...)
		if err := pullEnds(t, p, 3*time.Second); !errors.Is(err, ErrMalformedRTMP) {
			t.Fatalf("%d upstreams: ended with %v", n, err)
		}
		if got := p.Stats().UpstreamFailures; got != uint64(n) {
			t.Fatalf("%d malformed upstreams, each asked once: %d failed attempts counted, want %d", n, got, n)
		}
	}
}

// pullEnds has a viewer of live/x on p start its pull, and returns the
// entry's error once it ends; it fails the test if it does not within d.
func pullEnds(t *testing.T, p *pool.Pool, d time.Duration) error {
	t.Helper()
	sub, err := p.Subscribe("live/x", false)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	select {
	case <-sub.Entry().Done():
		return sub.Entry().Err()
	case <-time.After(d):
		t.Fatalf("the pull did not end within %s", d)
		return nil
	}
}

// A pull that plays longer than pull_timeout still answers what its
// upstream asks of it: acknowledgements of the bytes it read (nginx-rtmp
// and SRS ask for one every few MB) and pongs. Each write to the upstream
// has a deadline of its own; the one set for the setup, long past by
// then, must not fail them.
func TestLongPullAcknowledgesAndAnswersPings(t *testing.T) {
	const pullTimeout = 300 * time.Millisecond
	type answers struct{ acksLate, pongs int }
	got := make(chan answers, 1)
	finish := make(chan struct{})
	up := serve(t, func(c net.Conn) {
		dialed := time.Now()
		srv, _, err := acceptPlay(c)
		if err != nil {
			return
		}
		var (
			mu sync.Mutex
			a  answers
		)
		go func() {
			for {
				msg, err := srv.cr.next()
				if err != nil {
					return
				}
				mu.Lock()
				switch {
				case msg.typeID == msgAck && time.Since(dialed) > pullTimeout:
					a.acksLate++
				case msg.typeID == msgUserControl && len(msg.payload) >= 2 && binary.BigEndian.Uint16(msg.payload) == userControlPong:
					a.pongs++
				}
				mu.Unlock()
			}
		}()
		if srv.control(msgWindowAckSize, u32(4096)) != nil || srv.write(6, msgVideo, 1, []byte{0x17, 0, 0, 0, 0, 1, 2, 3}) != nil {
			return
		}
		// Media every 10 ms throughout (the pull's stall bound is
		// pullTimeout), a ping after 4 × pullTimeout, the answers 200 ms
		// later; then media until the test is done with the pull.
		keyframe := append([]byte{0x17, 1, 0, 0, 0}, make([]byte, 1024)...)
		pingAt, reportAt := dialed.Add(4*pullTimeout), dialed.Add(4*pullTimeout+200*time.Millisecond)
		for pinged, reported := false, false; ; time.Sleep(10 * time.Millisecond) {
			select {
			case <-finish:
				return
			default:
			}
			if srv.write(6, msgVideo, 1, keyframe) != nil {
				return
			}
			if !pinged && time.Now().After(pingAt) {
				pinged = true
				if srv.control(msgUserControl, append(binary.BigEndian.AppendUint16(nil, userControlPing), u32(1)...)) != nil {
					return
				}
			}
			if !reported && time.Now().After(reportAt) {
				reported = true
				mu.Lock()
				got <- a
				mu.Unlock()
			}
		}
	})
	defer close(finish)
	p := newPull(t, EdgeConfig{PullTimeout: pullTimeout, RetryBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond},
		Upstream{Name: "up", URL: "rtmp://" + up})
	sub, err := p.Subscribe("live/x", false)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var a answers
	select {
	case a = <-got:
	case <-sub.Entry().Done():
		t.Fatalf("the pull ended while its upstream played: %v", sub.Entry().Err())
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream's play did not run its course")
	}
	select {
	case <-sub.Entry().Done():
		t.Fatalf("the pull ended while its upstream played: %v", sub.Entry().Err())
	default:
	}
	if a.acksLate == 0 || a.pongs != 1 {
		t.Fatalf("after pull_timeout the upstream got %d acknowledgements and %d pongs, want some and 1", a.acksLate, a.pongs)
	}
}

// An HTTP-FLV upstream whose response head does not end is cut at 64 KiB
// as malformed, rather than read for as long as pull_timeout allows.
func TestEndlessResponseHead(t *testing.T) {
	endless := serve(t, func(c net.Conn) {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Endless: ")
		line := bytes.Repeat([]byte{'a'}, 64<<10)
		for range 64 {
			if _, err := c.Write(line); err != nil {
				return
			}
		}
	})
	p := newPull(t, fastEdge(), Upstream{Name: "endless", URL: "http://" + endless})
	if err := pullEnds(t, p, 5*time.Second); !errors.Is(err, ErrMalformedFLV) {
		t.Fatalf("ended with %v, want a malformed response", err)
	}
}

// An HTTP-FLV upstream that answers 200 with something that is not FLV
// (a proxy's maintenance page) is a broken upstream like one that fails
// the RTMP handshake: the pull fails over to the next one, which serves.
func TestFailoverPastUpstreamThatIsNotFLV(t *testing.T) {
	html := serve(t, func(c net.Conn) {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html><body>Down for maintenance</body></html>\n")
	})
	good := httpFLV(t, http.StatusOK)
	p := newPull(t, fastEdge(),
		Upstream{Name: "html", URL: "http://" + html},
		Upstream{Name: "good", URL: "http://" + good},
	)
	if _, err := subscribeReady(t, p); err != nil {
		t.Fatalf("no stream from the second upstream: %v", err)
	}
	if snap, _ := p.Lookup("live/x"); !strings.HasPrefix(snap.Source, "good ") {
		t.Fatalf("source %q, want the second upstream", snap.Source)
	}
}

// An upstream's query and play_secret go with every pull's request: in
// the HTTP-FLV path's query, and in the RTMP play name's (stream?query,
// which nginx-rtmp and SRS hand to their play hooks); play_secret signs
// the stream's key as flvgw -sign does, so an upstream flvgw with the
// same auth.play_secret lets the pull in.
func TestPullSendsItsQuery(t *testing.T) {
	asked := make(chan string, 4)
	httpUp := serve(t, func(c net.Conn) {
		line, _ := bufio.NewReader(c).ReadString('\n')
		asked <- strings.TrimSuffix(line, "\r\n")
		_, _ = io.WriteString(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
	})
	rtmpUp := serve(t, func(c net.Conn) {
		srv, txn, played, err := acceptPlayOf(c)
		if err != nil {
			return
		}
		asked <- played
		_ = srv.command(0, "_error", txn, nil, map[string]any{"level": "error", "code": "NetStream.Play.StreamNotFound"})
	})
	for _, tc := range []struct {
		url, before, after string
	}{
		{"http://" + httpUp, "GET /live/x.flv?", " HTTP/1.1"},
		{"rtmp://" + rtmpUp, "x?", ""},
	} {
		p := newPull(t, fastEdge(), Upstream{Name: "up", URL: tc.url, Query: "key=a%2Bb", PlaySecret: "s3cret"})
		if err := pullEnds(t, p, 10*time.Second); !errors.Is(err, pool.ErrUpstreamNotFound) {
			t.Fatalf("%s: the pull ended with %v, want the upstream's not found", tc.url, err)
		}
		got := <-asked
		query, ok := strings.CutPrefix(got, tc.before)
		if query, ok = strings.CutSuffix(query, tc.after); !ok {
			t.Fatalf("%s: asked for %q, want %q, a query, then %q", tc.url, got, tc.before, tc.after)
		}
		v, err := url.ParseQuery(query)
		if err != nil || v.Get("key") != "a+b" || !strings.HasPrefix(query, "key=a%2Bb&") {
			t.Fatalf("%s: query %q (%v), want key=a%%2Bb first, as configured", tc.url, query, err)
		}
		if err := access.Check("s3cret", "live/x", v.Get("expires"), v.Get("token"), time.Now()); err != nil {
			t.Fatalf("%s: query %q is not signed for live/x with the upstream's secret: %v", tc.url, query, err)
		}
	}
}

// An [[upstream]] query carries a key (nginx-rtmp's on_play, SRS's
// hooks), which is never logged: one that does not validate is refused
// with an error that names the setting and what is wrong with it, not
// its value, which `flvgw -check` prints and a reload logs.
func TestInvalidUpstreamQueryIsNotEchoed(t *testing.T) {
	for _, query := range []string{"?key=s3cretkey", "key=s3cretkey x", "key=s3cretkey\r\nX: 1", "key=s3cretkey#", "key=s3c%rtkey", "key=s3cretkey;a=b"} {
		err := ValidateUpstreams([]Upstream{{Name: "up", URL: "http://x:1", Query: query}})
		if err == nil || !strings.Contains(err.Error(), "upstream[0].query") {
			t.Fatalf("query %q: %v, want an error naming upstream[0].query", query, err)
		}
		for _, part := range []string{"s3cretkey", "s3c", "%rt", "rtk"} {
			if strings.Contains(err.Error(), part) {
				t.Fatalf("query %q: the error gives the query away: %v", query, err)
			}
		}
	}
}

// An [[upstream]] url is refused without its value in the error, which
// flvgw -check prints and a reload logs: one with user info (which no
// pull sends, while the URL is logged and shown in the streams API) or a
// key in its query may be carrying a credential.
func TestInvalidUpstreamURLIsNotEchoed(t *testing.T) {
	for _, u := range []string{
		"http://puller:s3cretkey@x:1",
		"rtmp://puller:s3cretkey@x:1",
		"http://puller:s3cretkey%zz@x:1",
		"ftp://puller:s3cretkey@x:1",
		"rtmp://x:1/live?key=s3cretkey",
		"http://x:1?key=s3cretkey",
		"http://x/?key=s3cretkey",
	} {
		err := ValidateUpstreams([]Upstream{{Name: "up", URL: u}})
		if err == nil || !strings.Contains(err.Error(), "upstream[0].url") {
			t.Errorf("url %q: %v, want an error naming upstream[0].url", u, err)
			continue
		}
		for _, part := range []string{"s3cretkey", "puller"} {
			if strings.Contains(err.Error(), part) {
				t.Errorf("url %q: the error gives it away: %v", u, err)
			}
		}
	}
}

// With edge.not_found_ttl, a stream that every upstream said it lacks is
// answered as not found at once for that long, without asking them again
// (players retrying an offline stream cost the origins nothing); after
// it, or without it, a new viewer starts a new pull. Another stream is
// asked for as before.
func TestNotFoundIsRememberedForItsTTL(t *testing.T) {
	for _, ttl := range []time.Duration{0, 600 * time.Millisecond} {
		t.Run(fmt.Sprintf("not_found_ttl=%s", ttl), func(t *testing.T) {
			var asked atomic.Int32
			up := serve(t, func(c net.Conn) {
				if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
					asked.Add(1)
					_, _ = io.WriteString(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
				}
			})
			cfg := fastEdge()
			cfg.NotFoundTTL = ttl
			p := newPull(t, cfg, Upstream{Name: "up", URL: "http://" + up})
			if err := pullEnds(t, p, 10*time.Second); !errors.Is(err, pool.ErrUpstreamNotFound) {
				t.Fatalf("first pull: %v, want not found", err)
			}
			again, err := p.Subscribe("live/x", false)
			if err == nil {
				defer again.Close()
			}
			switch {
			case ttl > 0 && !errors.Is(err, pool.ErrNotFound):
				t.Fatalf("a viewer within not_found_ttl: %v, want %v at once", err, pool.ErrNotFound)
			case ttl == 0 && err != nil:
				t.Fatalf("a second viewer without not_found_ttl: %v, want a new pull", err)
			}
			if ttl == 0 {
				waitUntil(t, func() bool { return asked.Load() == 2 }, "the second pull's request")
				return
			}
			if n := asked.Load(); n != 1 {
				t.Fatalf("the upstream was asked %d times, want once", n)
			}
			other, err := p.Subscribe("live/y", false) // another stream: asked for
			if err != nil {
				t.Fatalf("another stream: %v", err)
			}
			other.Close()
			time.Sleep(ttl)
			if err := pullEnds(t, p, 10*time.Second); !errors.Is(err, pool.ErrUpstreamNotFound) {
				t.Fatalf("a pull after not_found_ttl: %v, want the upstream asked and not found", err)
			}
			waitUntil(t, func() bool { return asked.Load() == 3 }, "live/y's request and the pull after not_found_ttl")
		})
	}
}

// waitUntil fails the test unless cond holds within 10 s.
func waitUntil(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// notFoundUpstream answers every pull 404, after hold for the first one
// (nil: at once), and counts the requests.
func notFoundUpstream(t *testing.T, hold chan struct{}) (addr string, asked *atomic.Int32) {
	asked = new(atomic.Int32)
	addr = serve(t, func(c net.Conn) {
		if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
			if asked.Add(1) == 1 && hold != nil {
				<-hold
			}
			_, _ = io.WriteString(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
		}
	})
	return addr, asked
}

// A reload forgets what the upstreams lacked, including what a pull that
// started before it learns after it: its upstreams and its not_found_ttl
// may be gone.
func TestNotFoundOfAPullFromBeforeAReloadIsForgotten(t *testing.T) {
	hold := make(chan struct{})
	up, asked := notFoundUpstream(t, hold)
	cfg := fastEdge()
	cfg.NotFoundTTL = time.Minute
	ups := []Upstream{{Name: "up", URL: "http://" + up}}
	r, p := resolverPool(t, ups, cfg)
	sub, err := p.Subscribe("live/x", false)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	waitUntil(t, func() bool { return asked.Load() == 1 }, "the pull's request")
	r.Update(ups, cfg) // a reload while the pull waits for its answer
	close(hold)
	select {
	case <-sub.Entry().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the pull did not end")
	}
	if err := sub.Entry().Err(); !errors.Is(err, pool.ErrUpstreamNotFound) {
		t.Fatalf("the pull: %v, want not found", err)
	}
	again, err := p.Subscribe("live/x", false)
	if err != nil {
		t.Fatalf("a viewer after the reload: %v, want a new pull", err)
	}
	defer again.Close()
	waitUntil(t, func() bool { return asked.Load() == 2 }, "the new pull's request")
}

// not_found_ttl remembers a stream only when every upstream lacked it: a
// pull that ran out of pull_timeout while one upstream could not be
// reached (which may have it) is asked for again by the next viewer,
// whether the other upstream answered 404 or stayed silent.
func TestNotFoundIsNotRememberedWhileAnUpstreamIsUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()
	for _, silent := range []bool{false, true} {
		t.Run(fmt.Sprintf("silent=%v", silent), func(t *testing.T) {
			var asked atomic.Int32
			up := serve(t, func(c net.Conn) {
				br := bufio.NewReader(c)
				if _, err := br.ReadString('\n'); err != nil {
					return
				}
				asked.Add(1)
				if silent {
					_, _ = io.Copy(io.Discard, br)
					return
				}
				_, _ = io.WriteString(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
			})
			cfg := fastEdge()
			cfg.PullTimeout = 400 * time.Millisecond
			cfg.NotFoundTTL = time.Minute
			p := newPull(t, cfg, Upstream{Name: "up", URL: "http://" + up}, Upstream{Name: "down", URL: "http://" + down})
			err := pullEnds(t, p, 10*time.Second)
			if err == nil {
				t.Fatal("the pull played")
			}
			n := asked.Load()
			again, err := p.Subscribe("live/x", false)
			if err != nil {
				t.Fatalf("a viewer after a pull with an unreachable upstream: %v, want a new pull", err)
			}
			defer again.Close()
			waitUntil(t, func() bool { return asked.Load() > n }, "the new pull's request")
		})
	}
}

// A stream remembered as missing is answered not found at once, as the
// pull that found it missing was, also to a viewer that would wait for a
// publisher (http.publish_wait): it does not wait publish_wait, nor hold
// an entry meanwhile.
func TestRememberedNotFoundDoesNotWaitForAPublisher(t *testing.T) {
	up, asked := notFoundUpstream(t, nil)
	cfg := fastEdge()
	cfg.NotFoundTTL = time.Minute
	p := newPull(t, cfg, Upstream{Name: "up", URL: "http://" + up})
	if err := pullEnds(t, p, 10*time.Second); !errors.Is(err, pool.ErrUpstreamNotFound) {
		t.Fatalf("first pull: %v, want not found", err)
	}
	sub, err := p.Subscribe("live/x", true)
	if err == nil {
		state := sub.Entry().State()
		sub.Close()
		t.Fatalf("a waiting viewer within not_found_ttl got an entry (%s), want %v at once", state, pool.ErrNotFound)
	}
	if !errors.Is(err, pool.ErrNotFound) {
		t.Fatalf("a waiting viewer within not_found_ttl: %v, want %v", err, pool.ErrNotFound)
	}
	if n := asked.Load(); n != 1 {
		t.Fatalf("the upstream was asked %d times, want once", n)
	}
}

// A pull restarted within pool.reconnect_window whose upstream lacks the
// stream for a moment (its publisher not back yet) does not leave it
// remembered as missing (edge.not_found_ttl) once the stream is back: a
// new viewer after the entry ended plays it, not 404.
func TestRestartedPullDoesNotRememberItsStreamMissing(t *testing.T) {
	clip, err := os.ReadFile("../test/testdata/sample.flv")
	if err != nil {
		t.Fatal(err)
	}
	var asked atomic.Int32
	up := serve(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := br.ReadString('\n'); err != nil {
			return
		}
		switch asked.Add(1) {
		case 1: // the stream, which then ends: the pull restarts
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\n\r\n")
			_, _ = c.Write(clip)
		case 2: // its publisher not back yet
			_, _ = io.WriteString(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
		default: // back
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\n\r\n")
			_, _ = c.Write(clip)
			_, _ = io.Copy(io.Discard, br)
		}
	})
	pcfg := pool.DefaultConfig()
	pcfg.ReconnectWindow = 10 * time.Second
	pcfg.IdleTimeout = 50 * time.Millisecond
	cfg := fastEdge()
	cfg.NotFoundTTL = time.Minute
	p := newPullWith(t, pcfg, cfg, Upstream{Name: "up", URL: "http://" + up})
	sub, err := p.Subscribe("live/x", false)
	if err != nil {
		t.Fatal(err)
	}
	e := sub.Entry()
	waitUntil(t, func() bool { return asked.Load() >= 3 && e.State() == pool.StateLive }, "the restarted pull to play")
	sub.Close()
	select {
	case <-e.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the idle entry did not end")
	}
	again, err := p.Subscribe("live/x", false)
	if err != nil {
		t.Fatalf("a viewer of the stream back upstream: %v, want a new pull", err)
	}
	again.Close()
}

// A pull restarted within pool.reconnect_window after a reload goes
// through the upstreams of the reloaded file, not those it started
// with: an operator who moved the edge from one upstream to another
// (and reloaded) keeps the viewers when the old one goes away, rather
// than retrying only the old one until the window closes.
func TestRestartAfterAReloadTakesTheNewUpstreams(t *testing.T) {
	clip, err := os.ReadFile("../test/testdata/sample.flv")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var oldAsked atomic.Int32
	old := serve(t, func(c net.Conn) {
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			return
		}
		if oldAsked.Add(1) == 1 { // the stream, until the upstream goes away
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\n\r\n")
			_, _ = c.Write(clip)
			<-release
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
	})
	var newAsked atomic.Int32
	next := serve(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := br.ReadString('\n'); err != nil {
			return
		}
		newAsked.Add(1)
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\n\r\n")
		_, _ = c.Write(clip)
		_, _ = io.Copy(io.Discard, br)
	})
	pcfg := pool.DefaultConfig()
	pcfg.ReconnectWindow = time.Minute
	r := NewResolver([]Upstream{{Name: "old", URL: "http://" + old}}, fastEdge(), quiet())
	p, err := pool.New(pcfg, quiet(), r.Resolve)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	sub, err := subscribeReady(t, p)
	if err != nil {
		t.Fatal(err)
	}
	r.Update([]Upstream{{Name: "new", URL: "http://" + next}}, fastEdge())
	close(release) // the old upstream goes away: the pull restarts
	waitUntil(t, func() bool {
		snap, _ := p.Lookup("live/x")
		return sub.Entry().State() == pool.StateLive && strings.HasPrefix(snap.Source, "new ")
	}, "the restarted pull to play from the reloaded upstream")
	if n := oldAsked.Load(); n != 1 {
		t.Errorf("the old upstream was asked %d times, want once (before the reload)", n)
	}
}

// An attempt cut short by its entry's end is no upstream's failure: the
// entry ended (dropped, evicted) as the upstream's first tag came, before
// the pull's context was cancelled, and the upstream is counted in neither
// flvgw_upstream_attempts_total nor flvgw_upstream_failures_total.
func TestAttemptCutByTheEntrysEndIsNotCounted(t *testing.T) {
	good := httpFLV(t, http.StatusOK)
	ups := []Upstream{{Name: "good", URL: "http://" + good}}
	if err := ValidateUpstreams(ups); err != nil {
		t.Fatal(err)
	}
	r := NewResolver(ups, fastEdge(), quiet())
	p, err := pool.New(pool.DefaultConfig(), quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	pub, err := p.Publish("live/x", "test")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(nil)
	// The entry ends; the pull's context is not cancelled yet (the pool
	// cancels it just after, which this run does not see).
	p.Drop("live/x")
	if err := r.Resolve("live/x").Run(context.Background(), pub); !errors.Is(err, pool.ErrEnded) {
		t.Fatalf("pull into an ended entry: %v, want ErrEnded", err)
	}
	want := []pool.UpstreamAttempts{{Upstream: "good"}}
	if got := r.Attempts(); !slices.Equal(got, want) {
		t.Fatalf("after an attempt cut by the entry's end: %+v, want %+v", got, want)
	}
	if n := p.Stats().UpstreamFailures; n != 0 {
		t.Fatalf("%d failures summed, want 0", n)
	}
}

// An HTTP-FLV upstream's empty tag (DataSize 0, which FLV does not
// forbid) is dropped, as an empty RTMP message is, and the stream plays;
// it is no malformed stream that would end the entry for every viewer.
func TestEmptyFLVTagFromAnUpstreamIsDropped(t *testing.T) {
	clip, err := os.ReadFile("../test/testdata/sample.flv")
	if err != nil {
		t.Fatal(err)
	}
	empty := []byte{8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 11} // audio, no data, PreviousTagSize 11
	body := slices.Concat(clip[:13], empty, clip[13:])            // after the FLV header and PreviousTagSize0
	up := serve(t, func(c net.Conn) {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\n\r\n")
		_, _ = c.Write(body)
		_, _ = io.Copy(io.Discard, c)
	})
	p := newPull(t, fastEdge(), Upstream{Name: "empty", URL: "http://" + up})
	if _, err := subscribeReady(t, p); err != nil {
		t.Fatalf("no stream from an upstream that sent an empty tag: %v", err)
	}
}
