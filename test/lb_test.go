package test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"flvgw/test/testkit"
)

// The example load balancer config, etc/nginx-lb.conf, as it is, with its
// three addresses moved to free loopback ports.
func lbConfig(t *testing.T, listen string, nodes ...string) string {
	t.Helper()
	raw, err := os.ReadFile("../etc/nginx-lb.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(raw)
	for old, addr := range map[string]string{
		"listen 127.0.0.1:8000":  "listen " + listen,
		"server 127.0.0.1:8081 ": "server " + nodes[0] + " ",
		"server 127.0.0.1:8082 ": "server " + nodes[1] + " ",
	} {
		if strings.Count(conf, old) != 1 {
			t.Fatalf("etc/nginx-lb.conf: want %q once", old)
		}
		conf = strings.Replace(conf, old, addr, 1)
	}
	return conf
}

// subscribersOf returns key's subscribers on gw (0 without an entry).
func subscribersOf(ctx context.Context, gw *testkit.Gateway, key string) int {
	streams, err := gw.Streams(ctx)
	if err != nil {
		return -1
	}
	for _, s := range streams {
		if s.Key == key {
			return s.Subscribers
		}
	}
	return 0
}

// lbCluster is etc/nginx-lb.conf in front of two flvgw edges that pull
// from one origin flvgw.
type lbCluster struct {
	origin *testkit.Gateway
	edges  []*testkit.Gateway
	lb     string // the balancer's address
}

// startLBCluster starts the origin with the Go publisher on each of keys,
// the two edges, and nginx with etc/nginx-lb.conf in front of them.
// edgeSections adds keys to the edges' config tables (keys the edges do
// not already set).
func startLBCluster(t *testing.T, keys []string, edgeSections map[string]string) lbCluster {
	t.Helper()
	origin := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(nil))
	for _, key := range keys {
		startPublisher(t, origin, key, "sample.flv", false)
	}
	for _, key := range keys {
		waitLive(t, origin, key)
	}
	sections := map[string]string{
		"rtmp":  "listen = \"\"\n",
		"http":  "drain_timeout = \"4s\"\ntrusted_proxies = [\"127.0.0.1\"]\n",
		"pool":  "idle_timeout = \"30s\"\n",
		"extra": upstreamConfig("origin", "http://"+origin.HTTPAddr),
	}
	for table, more := range edgeSections {
		sections[table] += more
	}
	edgeConfig := testkit.BaseConfig(sections)
	edges := []*testkit.Gateway{
		testkit.StartGateway(t, gatewayBin, edgeConfig),
		testkit.StartGateway(t, gatewayBin, edgeConfig),
	}
	lb := testkit.FreePort(t)
	testkit.StartNginxHTTP(t, lbConfig(t, lb, edges[0].HTTPAddr, edges[1].HTTPAddr), lb)
	return lbCluster{origin: origin, edges: edges, lb: lb}
}

// TestLoadBalancerSendsAStreamToOneNode runs etc/nginx-lb.conf in front of
// two flvgw edges that pull from one origin flvgw. Every viewer of a
// stream, each with a query of its own (as signed URLs have), reaches the
// same edge, so the origin serves each stream once for the cluster; the
// streams play through the balancer; the viewer's address reaches the
// edge in X-Forwarded-For; and a new viewer of a stream whose edge is
// draining is sent to the other edge, while the draining edge's viewer
// plays on.
func TestLoadBalancerSendsAStreamToOneNode(t *testing.T) {
	const streams, perStream = 4, 3
	var keys []string
	for i := range streams {
		keys = append(keys, fmt.Sprintf("live/lb%d", i))
	}
	c := startLBCluster(t, keys, nil)
	origin, edges, lb := c.origin, c.edges, c.lb
	ctx := context.Background()

	plays := make(chan testkit.Play, streams*perStream)
	for i := range streams {
		for v := range perStream {
			url := fmt.Sprintf("http://%s/live/lb%d.flv?expires=%d&token=viewer%d", lb, i, time.Now().Unix()+3600, v)
			go func() { plays <- playFor(url, 3*time.Second) }()
		}
	}
	if !waitFor(15*time.Second, func() bool {
		n := 0
		for _, e := range edges {
			s, err := e.Metric(ctx, "flvgw_subscribers")
			if err != nil {
				return false
			}
			n += int(s)
		}
		return n == streams*perStream
	}) {
		t.Fatalf("the viewers did not reach the edges\n%s\n%s", edges[0].Stderr(), edges[1].Stderr())
	}
	home := map[string]*testkit.Gateway{}
	for i := range streams {
		key := fmt.Sprintf("live/lb%d", i)
		on := []int{subscribersOf(ctx, edges[0], key), subscribersOf(ctx, edges[1], key)}
		switch {
		case on[0] == perStream && on[1] == 0:
			home[key] = edges[0]
		case on[1] == perStream && on[0] == 0:
			home[key] = edges[1]
		default:
			t.Fatalf("%s: viewers on the two edges %v, want all %d on one", key, on, perStream)
		}
		if pulls := subscribersOf(ctx, origin, key); pulls != 1 {
			t.Fatalf("%s: the origin serves %d pulls, want 1 for the cluster", key, pulls)
		}
	}
	for range streams * perStream {
		checkPlayed(t, <-plays, "viewer through the balancer")
	}

	// The viewer's own address reaches the edge: nginx adds it to
	// X-Forwarded-For, and the edge reads it there, as http.trusted_proxies
	// lists the balancer. The viewer connects from 127.0.0.2, so it is
	// told from the balancer (127.0.0.1).
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	resp, err := client.Get("http://" + lb + "/live/lb0.flv")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !waitFor(10*time.Second, func() bool {
		return strings.Contains(home["live/lb0"].Stderr(), "remote=127.0.0.2 via=127.0.0.1:")
	}) {
		t.Fatalf("the edge did not see the viewer's address\n%s", home["live/lb0"].Stderr())
	}

	// Drain the edge of live/lb0 with a viewer on it: that viewer plays
	// on, and a new one is sent to the other edge.
	draining := home["live/lb0"]
	other := edges[0]
	if other == draining {
		other = edges[1]
	}
	stay := make(chan testkit.Play, 1)
	go func() { stay <- playFor("http://"+lb+"/live/lb0.flv", 10*time.Second) }()
	if !waitFor(10*time.Second, func() bool { return subscribersOf(ctx, draining, "live/lb0") == 1 }) {
		t.Fatalf("the staying viewer did not reach its edge\n%s", draining.Stderr())
	}
	if err := draining.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !waitFor(5*time.Second, func() bool {
		r, err := http.Get(draining.URL("/readyz"))
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == http.StatusServiceUnavailable
	}) {
		t.Fatal("the edge did not start draining")
	}
	p := playFor("http://"+lb+"/live/lb0.flv", 2*time.Second)
	checkPlayed(t, p, "new viewer while its stream's edge drains")
	if !waitFor(10*time.Second, func() bool { return strings.Contains(other.Stderr(), "stream=live/lb0") }) {
		t.Fatalf("the new viewer did not play from the other edge\n%s", other.Stderr())
	}
	s := <-stay
	if s.Status != http.StatusOK || s.Stream == nil || s.Err != nil || s.Left() {
		t.Fatalf("the viewer on the draining edge: status %d, %v; want a stream that ends cleanly at the drain's end", s.Status, s.Err)
	}
	if err := s.Stream.CheckPlayable(); err != nil {
		t.Fatalf("the viewer on the draining edge: %v", err)
	}
	select {
	case <-draining.Exited():
	case <-time.After(10 * time.Second):
		t.Fatalf("the drained edge did not exit\n%s", draining.Stderr())
	}
}

// TestLoadBalancerPassesOnASlowViewer runs etc/nginx-lb.conf in front of
// flvgw with a slow viewer beside a fast one. nginx does not buffer
// (proxy_buffering off) and bounds its send buffer to each viewer
// (sndbuf), so the slow viewer's backlog comes back to its edge, whose
// slow-viewer policy (http.write_timeout, http.lag_disconnect,
// pool.max_lag; set low here) ends that viewer's session, counted, while
// the fast viewer plays on in real time. With buffering on, nginx reads
// the stream for the slow viewer as fast as the edge sends it and keeps
// the backlog itself (in memory, then in a temporary file), and the edge
// never sees that viewer fall behind.
func TestLoadBalancerPassesOnASlowViewer(t *testing.T) {
	c := startLBCluster(t, []string{"live/slow"}, map[string]string{
		"http": "send_buffer = 8192\nwrite_timeout = \"2s\"\nlag_disconnect = \"3s\"\n",
		"pool": "max_lag = \"1s\"\n",
	})
	ctx := context.Background()
	url := "http://" + c.lb + "/live/slow.flv"

	leave := make(chan struct{})
	fast := make(chan testkit.Play, 1)
	began := time.Now()
	go func() { fast <- testkit.PlayFLV(ctx, url, leave) }()

	// The slow viewer connects from 127.0.0.3, which names it in its
	// edge's log (nginx passes the address in X-Forwarded-For), with a
	// small receive buffer (set before the connection, so that the window
	// it offers is small from the start). It reads its response head,
	// then 1 KB a second: about a thirtieth of what the stream carries.
	dialer := net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)},
		Control: func(_, _ string, rc syscall.RawConn) error {
			var err error
			if cerr := rc.Control(func(fd uintptr) {
				err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			}); cerr != nil {
				return cerr
			}
			return err
		},
	}
	slow, err := dialer.Dial("tcp", c.lb)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := io.WriteString(slow, "GET /live/slow.flv HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(slow, 1024)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("slow viewer: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("slow viewer: %s", resp.Status)
	}
	defer readSlowly(slow, br)()

	// The slow viewer's session on its edge ends for its lag: a write
	// that took nothing for http.write_timeout, or one that came more
	// than http.lag_disconnect after its tags.
	var ended string
	caught := waitFor(40*time.Second, func() bool {
		for _, e := range c.edges {
			for line := range strings.SplitSeq(e.Stderr(), "\n") {
				if strings.Contains(line, `msg="viewer ended"`) && strings.Contains(line, " remote=127.0.0.3 ") {
					ended = line
					return true
				}
			}
		}
		return false
	})
	var skips, lagDrops, writeDrops, subscribers float64
	for _, e := range c.edges {
		s, _ := e.Metric(ctx, "flvgw_viewer_skips_total")
		l, _ := e.Metric(ctx, `flvgw_viewers_dropped_total{reason="lag"}`)
		w, _ := e.Metric(ctx, `flvgw_viewers_dropped_total{reason="write_timeout"}`)
		n, _ := e.Metric(ctx, "flvgw_subscribers")
		skips, lagDrops, writeDrops, subscribers = skips+s, lagDrops+l, writeDrops+w, subscribers+n
	}
	t.Logf("after %s: skips %v, dropped for lag %v, for write timeout %v; %s",
		time.Since(began).Round(time.Millisecond), skips, lagDrops, writeDrops, ended)
	time.Sleep(time.Second) // the fast viewer plays on past the drop
	close(leave)
	p := <-fast
	played := p.Ended.Sub(began)
	if !caught {
		t.Fatalf("the slow viewer's session on its edge did not end in %s (skips %v, dropped for lag %v, for write timeout %v): nginx kept its backlog\n%s\n%s",
			played.Round(time.Second), skips, lagDrops, writeDrops, c.edges[0].Stderr(), c.edges[1].Stderr())
	}
	if !strings.Contains(ended, "i/o timeout") && !strings.Contains(ended, "http.lag_disconnect") || lagDrops+writeDrops == 0 {
		t.Fatalf("the slow viewer's session ended, but not for its lag (dropped for lag %v, for write timeout %v):\n%s",
			lagDrops, writeDrops, ended)
	}
	if subscribers != 1 {
		t.Fatalf("%v viewers on the edges after the slow one was dropped, want the fast one", subscribers)
	}
	checkPlayed(t, p, "fast viewer beside a slow one, through the balancer")
	// The fast viewer got the whole time in media, within a GOP or two
	// (it starts with the GOP cache, and began after the test's clock).
	if span := p.Stream.VideoSpan(); span < played-2*time.Second {
		t.Fatalf("fast viewer through the balancer got %s of video in %s", span, played.Round(time.Millisecond))
	}
}
