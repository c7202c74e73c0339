package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"flvgw/origin"
	"flvgw/pool"
	"flvgw/test/testkit"
)

// logCount counts a component's log records by message ("viewer ended"
// by message and status), so that a test can hold its counters against
// what it logged as happening.
type logCount struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *logCount) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCount) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *logCount) WithGroup(string) slog.Handler            { return c }

func (c *logCount) Handle(_ context.Context, r slog.Record) error {
	key := r.Message
	if key == "viewer ended" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "status" {
				key += " " + a.Value.String()
			}
			return true
		})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[key]++
	return nil
}

func (c *logCount) get(msg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[msg]
}

// chaosNode is a gateway with its pool (and embedded origin, for the
// relay) whose log is counted.
type chaosNode struct {
	name     string
	pool     *pool.Pool
	gw       *Server
	httpAddr string
	rtmpAddr string
	logs     *logCount
}

const chaosToken = "chaos-t0ken"

// startChaosNode starts a gateway and its embedded origin over a pool,
// which also pulls what resolve's resolver finds, if resolve is not nil.
func startChaosNode(t *testing.T, name string, gcfg Config, pol Policy, pcfg pool.Config, resolve func(log *slog.Logger) pool.Resolver) *chaosNode {
	t.Helper()
	logs := &logCount{}
	log := slog.New(logs)
	var resolver pool.Resolver
	if resolve != nil {
		resolver = resolve(log)
	}
	p, err := pool.New(pcfg, log, resolver)
	if err != nil {
		t.Fatal(err)
	}
	gw := NewServer(gcfg, pol, p, log)
	httpLn := loopback(t)
	n := &chaosNode{name: name, pool: p, gw: gw, httpAddr: httpLn.Addr().String(), logs: logs}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = gw.Serve(ctx, httpLn) })
	wg.Go(func() { p.Run(ctx) })
	rtmpLn := loopback(t)
	n.rtmpAddr = rtmpLn.Addr().String()
	org := origin.NewServer(origin.DefaultConfig(), p, log)
	wg.Go(func() { _ = org.Serve(ctx, rtmpLn) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		p.Close()
	})
	return n
}

// chaosSeed is the seed of TestCountsReturnToBaselineAfterChaos; set
// FLVGW_CHAOS_SEED to replay another.
const chaosSeed = 20260101

// The gateway's counts return to where they started after a storm of
// lifecycle transitions, on a relay with its embedded origin and on an
// edge pulling from it (with a dead upstream before it, so every pull
// fails over): viewers joining and leaving at random moments (while
// waiting, in the GOP cache, after it, never reading, HEAD), publishers
// starting, stopping, coming back within pool.reconnect_window and after
// it, going silent and being taken over, streams dropped through the API,
// idle entries evicted. Once everyone has left, every gauge is back at
// zero, the streams API lists nothing, no goroutine is left over, and the
// counters match what the logs say happened.
func TestCountsReturnToBaselineAfterChaos(t *testing.T) {
	seed := uint64(chaosSeed)
	if s := os.Getenv("FLVGW_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("FLVGW_CHAOS_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (FLVGW_CHAOS_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	failf := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d: %s", seed, fmt.Sprintf(format, args...))
	}

	gcfg := testConfig()
	gcfg.PublishWait = 300 * time.Millisecond
	gcfg.StartTimeout = 2 * time.Second
	gcfg.WriteTimeout = time.Second
	pcfg := pool.DefaultConfig()
	pcfg.MaxEntries = 6
	pcfg.IdleTimeout = 200 * time.Millisecond
	pcfg.ReconnectWindow = 400 * time.Millisecond
	pcfg.PublisherTakeover = 300 * time.Millisecond
	// on_play takes its time, and says no now and then.
	onPlay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := time.Now().UnixNano()
		time.Sleep(time.Duration(n%150) * time.Millisecond)
		if n%7 == 0 {
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	defer onPlay.Close()
	pol := Policy{Limits: DefaultLimits(), Auth: DefaultAuth()}
	pol.Auth.APIToken = chaosToken
	pol.Auth.OnPlay = onPlay.URL
	pol.Limits.MaxViewers = 12
	pol.Limits.MaxViewersPerStream = 4
	relay := startChaosNode(t, "relay", gcfg, pol, pcfg, nil)

	dead := loopback(t)
	deadAddr := dead.Addr().String()
	dead.Close() // refuses connections: every pull fails over
	edgeCfg := origin.DefaultEdgeConfig()
	edgeCfg.PullTimeout = 2 * time.Second
	edgeCfg.RetryBackoff = 50 * time.Millisecond
	edgeCfg.MaxBackoff = 200 * time.Millisecond
	// The edge delivers with fasthttp's stream writer, the relay by
	// hijacked sessions and writer groups.
	ecfg := gcfg
	ecfg.Delivery = DeliveryStreamWriter
	epol := pol
	epol.Auth.OnPlay = ""
	edge := startChaosNode(t, "edge", ecfg, epol, pcfg, func(log *slog.Logger) pool.Resolver {
		return origin.NewResolver([]origin.Upstream{
			{Name: "dead", URL: "http://" + deadAddr},
			{Name: "relay", URL: "http://" + relay.httpAddr},
		}, edgeCfg, log).Resolve
	})
	nodes := []*chaosNode{relay, edge}

	sample, err := testkit.ReadFile("../test/testdata/sample.flv")
	if err != nil {
		t.Fatal(err)
	}
	// silent: the sample up to its second keyframe, then a tag an hour
	// later, which the publisher waits for without a word.
	var silent []testkit.Tag
	keyframes := 0
	for _, tag := range sample.Tags {
		if tag.Keyframe {
			if keyframes++; keyframes == 2 {
				break
			}
		}
		silent = append(silent, tag)
	}
	last := silent[len(silent)-1]
	last.Timestamp += uint32(time.Hour / time.Millisecond)
	silent = append(silent, last)

	// The baseline, once each node has answered a request (fasthttp
	// starts its clock and a worker).
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for _, n := range nodes {
		if _, err := n.streams(client); err != nil {
			t.Fatal(err)
		}
	}
	baseline := goleak.IgnoreCurrent()

	keys := []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var actors sync.WaitGroup
	type outcome struct {
		mu sync.Mutex
		n  map[string]int
	}
	seen := outcome{n: map[string]int{}}
	note := func(what string) {
		seen.mu.Lock()
		seen.n[what]++
		seen.mu.Unlock()
	}

	// Each actor gets its own generator, seeded from rng, so that the
	// script does not depend on how the actors' goroutines interleave.
	publishFor := func(r *rand.Rand, n *chaosNode, key string) {
		tags, what := sample.Tags, "publish"
		if r.IntN(3) == 0 {
			tags, what = silent, "silent publish"
		}
		life := time.Duration(200+r.IntN(2500)) * time.Millisecond
		pctx, stop := context.WithTimeout(ctx, life)
		defer stop()
		pub := &testkit.Publisher{Addr: n.rtmpAddr, App: "live", Stream: key, Tags: tags, Loop: true}
		err := pub.Run(pctx)
		note(what)
		if err != nil && pctx.Err() == nil {
			note("publish refused or cut")
		}
		if r.IntN(2) == 0 { // comes back, within the reconnect window or after it
			select {
			case <-time.After(time.Duration(r.IntN(800)) * time.Millisecond):
			case <-ctx.Done():
				return
			}
			rctx, stop := context.WithTimeout(ctx, time.Duration(200+r.IntN(1500))*time.Millisecond)
			defer stop()
			_ = (&testkit.Publisher{Addr: n.rtmpAddr, App: "live", Stream: key, Tags: sample.Tags, Loop: true}).Run(rctx)
			note("republish")
		}
	}
	view := func(r *rand.Rand, n *chaosNode, key string) {
		method := "GET"
		if r.IntN(8) == 0 {
			method = "HEAD"
		}
		c, err := net.Dial("tcp", n.httpAddr)
		if err != nil {
			note("dial failed")
			return
		}
		defer c.Close()
		if r.IntN(2) == 0 {
			// A viewer that reads little or nothing: a small window.
			_ = c.(*net.TCPConn).SetReadBuffer(4096)
		}
		proto := "HTTP/1.1"
		if r.IntN(4) == 0 {
			proto = "HTTP/1.0" // a stream delimited by the close, hijacked whatever the delivery
		}
		fmt.Fprintf(c, "%s /live/%s.flv %s\r\nHost: flvgw\r\n\r\n", method, key, proto)
		switch mode := r.IntN(5); {
		case method == "HEAD":
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			note("HEAD " + strings.TrimSpace(line))
		case mode == 0: // leaves at once, perhaps while it waits
			time.Sleep(time.Duration(r.IntN(50)) * time.Millisecond)
			note("left at once")
		case mode == 1: // never reads
			select {
			case <-time.After(time.Duration(r.IntN(2000)) * time.Millisecond):
			case <-ctx.Done():
			}
			note("never read")
		default: // reads some bytes (perhaps only part of the GOP cache), or to the end
			want := int64(1 + r.IntN(400_000))
			_ = c.SetReadDeadline(time.Now().Add(time.Duration(100+r.IntN(3000)) * time.Millisecond))
			stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
			defer stop()
			got, _ := io.CopyN(io.Discard, c, want)
			note(fmt.Sprintf("read (%s)", map[bool]string{true: "all it wanted", false: "cut or ended"}[got == want]))
		}
	}
	drop := func(n *chaosNode, key string) {
		req, _ := http.NewRequest(http.MethodDelete, "http://"+n.httpAddr+"/api/v1/streams/live/"+key, nil)
		req.Header.Set("Authorization", "Bearer "+chaosToken)
		resp, err := client.Do(req)
		if err != nil {
			note("drop failed")
			return
		}
		resp.Body.Close()
		note(fmt.Sprintf("drop %d", resp.StatusCode))
	}

	const steps = 160
	for range steps {
		seed := rng.Uint64()
		key := keys[rng.IntN(len(keys))]
		node := nodes[rng.IntN(len(nodes))]
		r := rand.New(rand.NewPCG(seed, 1))
		switch a := rng.IntN(10); {
		case a < 3:
			// Mostly to the relay; to the edge, a publish takes the
			// stream from its pull.
			if rng.IntN(4) != 0 {
				node = relay
			}
			actors.Go(func() { publishFor(r, node, key) })
		case a < 9:
			actors.Go(func() { view(r, node, key) })
		default:
			actors.Go(func() { drop(node, key) })
		}
		time.Sleep(time.Duration(10+rng.IntN(50)) * time.Millisecond)
	}
	// Everyone leaves: the actors still running end now.
	time.Sleep(500 * time.Millisecond)
	cancel()
	done := make(chan struct{})
	go func() { actors.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		failf("actors still running 20 s after the end")
	}
	t.Logf("what happened: %v", seen.n)

	// Quiescence: idle entries evicted, sessions ended.
	deadline := time.Now().Add(15 * time.Second)
	for _, n := range nodes {
		var why string
		for {
			why = n.drift(client)
			if why == "" || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if why != "" {
			failf("%s after everyone left: %s", n.name, why)
		}
	}
	for _, n := range nodes {
		g, _ := n.gauges()
		var counters []string
		for name, v := range g {
			if strings.HasPrefix(name, "flvgw_") && strings.Contains(name, "_total") && v > 0 {
				counters = append(counters, fmt.Sprintf("%s %v", name, v))
			}
		}
		slices.Sort(counters)
		t.Logf("%s: %s", n.name, strings.Join(counters, ", "))
		n.logs.mu.Lock()
		t.Logf("%s logged: %v", n.name, n.logs.n)
		n.logs.mu.Unlock()
		if why := n.countersDrift(); why != "" {
			failf("%s: %s", n.name, why)
		}
	}
	// auth.on_play's keep-alive connections (http.DefaultTransport's)
	// are the callback service's, not a session's.
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	onPlay.CloseClientConnections()
	var leaked error
	for {
		leaked = goleak.Find(baseline,
			// fasthttp's idle workers end after MaxIdleWorkerDuration
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).workerFunc"))
		if leaked == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if leaked != nil {
		failf("goroutines left after everyone left: %v", leaked)
	}
}

// streams lists n's streams through the API.
func (n *chaosNode) streams(client *http.Client) ([]pool.Snapshot, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+n.httpAddr+"/api/v1/streams", nil)
	req.Header.Set("Authorization", "Bearer "+chaosToken)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Streams []pool.Snapshot `json:"streams"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("streams API: %w", err)
	}
	return body.Streams, nil
}

// gauges gathers n's metrics as /metrics serves them: each series by its
// name and labels.
func (n *chaosNode) gauges() (map[string]float64, error) {
	mfs, err := n.gw.metrics.registry.Gather()
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Gauge != nil:
				out[name] = m.GetGauge().GetValue()
			case m.Counter != nil:
				out[name] = m.GetCounter().GetValue()
			}
		}
	}
	return out, nil
}

// drift says which of n's gauges is not back at its start, "" if none.
func (n *chaosNode) drift(client *http.Client) string {
	g, err := n.gauges()
	if err != nil {
		return err.Error()
	}
	var off []string
	for _, name := range []string{"flvgw_entries", "flvgw_entries_idle", "flvgw_subscribers",
		"flvgw_viewer_connections", "flvgw_writer_groups",
		"flvgw_entries_by_state{state=waiting}", "flvgw_entries_by_state{state=live}",
		"flvgw_entries_by_state{state=idle}", "flvgw_entries_by_state{state=reconnecting}"} {
		if v, ok := g[name]; !ok || v != 0 {
			off = append(off, fmt.Sprintf("%s %v", name, v))
		}
	}
	for name, v := range g {
		if strings.HasPrefix(name, "flvgw_stream_viewers{") {
			off = append(off, fmt.Sprintf("%s %v", name, v))
		}
	}
	// What the gauges are read from, and what shutdown walks.
	n.gw.viewers.mu.Lock()
	if len(n.gw.viewers.perIP) != 0 || len(n.gw.viewers.cancels) != 0 {
		off = append(off, fmt.Sprintf("viewer set holds %d addresses, %d sessions", len(n.gw.viewers.perIP), len(n.gw.viewers.cancels)))
	}
	n.gw.viewers.mu.Unlock()
	n.gw.writers.mu.Lock()
	if len(n.gw.writers.byEntry) != 0 {
		off = append(off, fmt.Sprintf("writer groups of %d entries", len(n.gw.writers.byEntry)))
	}
	n.gw.writers.mu.Unlock()
	n.gw.conns.mu.Lock()
	if len(n.gw.conns.set) != 0 {
		off = append(off, fmt.Sprintf("%d connections tracked", len(n.gw.conns.set)))
	}
	n.gw.conns.mu.Unlock()
	slices.Sort(off)
	streams, err := n.streams(client)
	if err != nil {
		off = append(off, err.Error())
	} else if len(streams) > 0 {
		off = append(off, fmt.Sprintf("streams API lists %+v", streams))
	}
	return strings.Join(off, "; ")
}

// countersDrift holds n's counters against its log, "" if they agree.
func (n *chaosNode) countersDrift() string {
	g, err := n.gauges()
	if err != nil {
		return err.Error()
	}
	refusals := 0.0
	for name, v := range g {
		if strings.HasPrefix(name, "flvgw_refusals_total{") {
			refusals += v
		}
	}
	var off []string
	for _, c := range []struct {
		metric float64
		name   string
		logged int
		msg    string
	}{
		{g["flvgw_viewer_sessions_total"], "flvgw_viewer_sessions_total", n.logs.get("viewer ended 200"), `"viewer ended" status=200`},
		{refusals, "flvgw_refusals_total", n.logs.get("request refused") + n.logs.get("viewer left while waiting"), `"request refused" and "viewer left while waiting"`},
		{g["flvgw_evictions_total"], "flvgw_evictions_total", n.logs.get("entry evicted"), `"entry evicted"`},
		{g["flvgw_publisher_takeovers_total"], "flvgw_publisher_takeovers_total", n.logs.get("publisher taken over"), `"publisher taken over"`},
		{g["flvgw_reconnects_total"], "flvgw_reconnects_total", n.logs.get("source lost, viewers kept"), `"source lost, viewers kept"`},
	} {
		if c.metric != float64(c.logged) {
			off = append(off, fmt.Sprintf("%s %v, but %d logged %s", c.name, c.metric, c.logged, c.msg))
		}
	}
	if n.name == "relay" { // no pulls: every source is a publish
		if s, p := g["flvgw_upstream_sessions_total"], n.logs.get("publish started"); s != float64(p) {
			off = append(off, fmt.Sprintf("flvgw_upstream_sessions_total %v, but %d publishes started", s, p))
		}
	}
	return strings.Join(off, "; ")
}
