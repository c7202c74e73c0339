package test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"flvgw/test/testkit"
)

// freezingRelay relays one TCP connection to target until freeze is
// called; from then on it moves no byte either way and closes nothing, as
// a connection whose network went away looks to flvgw: no FIN, no RST,
// just silence.
type freezingRelay struct {
	addr   string
	frozen chan struct{}
	freeze func()
}

func startFreezingRelay(t *testing.T, target string) *freezingRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &freezingRelay{addr: ln.Addr().String(), frozen: make(chan struct{})}
	r.freeze = sync.OnceFunc(func() { close(r.frozen) })
	done := make(chan struct{})
	var conns []net.Conn
	var mu sync.Mutex
	t.Cleanup(func() {
		close(done)
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	go func() {
		in, err := ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", target)
		if err != nil {
			in.Close()
			return
		}
		mu.Lock()
		conns = append(conns, in, out)
		mu.Unlock()
		pipe := func(dst, src net.Conn) {
			buf := make([]byte, 32<<10)
			for {
				n, err := src.Read(buf)
				select {
				case <-r.frozen:
					<-done // hold both ends open, silent
					return
				default:
				}
				if n > 0 {
					if _, werr := dst.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}
		go pipe(out, in)
		go pipe(in, out)
	}()
	return r
}

// An encoder whose connection went half-dead (no close reached flvgw)
// reconnects and publishes the same key at once: it is refused as busy
// while the dead publisher is within pool.publisher_takeover of its last
// media, and then takes the stream over, as OBS's retries find. The
// viewer playing all along is never ended: it gets the new publisher's
// media on the same response, its timestamps rising across the change.
func TestReconnectingEncoderTakesOverFromItsDeadConnection(t *testing.T) {
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"pool": "publisher_takeover = \"1s\"\n",
		"rtmp": "read_timeout = \"30s\"\n", // the dead connection outlives the test
	}))
	relay := startFreezingRelay(t, gw.RTMPAddr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dead := &testkit.Publisher{Addr: relay.addr, App: "live", Stream: "enc", Tags: loadTags(t, "sample.flv"), Loop: true}
	go func() { _ = dead.Run(ctx) }()
	waitLive(t, gw, "live/enc")

	resp, err := http.Get(gw.URL("/live/enc.flv"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	type seen struct {
		at  time.Time
		tag testkit.Tag
	}
	tags := make(chan seen, 4096)
	ended := make(chan error, 1)
	go func() {
		tr, err := testkit.NewTagReader(resp.Body)
		if err != nil {
			ended <- err
			return
		}
		for {
			tag, err := tr.Next()
			if err != nil {
				ended <- err
				return
			}
			tags <- seen{time.Now(), tag}
		}
	}()
	time.Sleep(time.Second)
	relay.freeze()

	// The encoder's retries, every 300 ms as a publisher's would be.
	frozeAt := time.Now()
	var takenAt time.Time
	retries := 0
	for takenAt.IsZero() {
		if time.Since(frozeAt) > 15*time.Second {
			t.Fatalf("no retry took the stream over in 15 s (%d tried)\n%s", retries, gw.Stderr())
		}
		retries++
		pub := &testkit.Publisher{Addr: gw.RTMPAddr, App: "live", Stream: "enc", Tags: loadTags(t, "sample.flv"), Loop: true}
		result := make(chan error, 1)
		go func() { result <- pub.Run(ctx) }()
		select {
		case <-result:
			time.Sleep(300 * time.Millisecond) // refused: busy
		case <-time.After(1500 * time.Millisecond):
			takenAt = time.Now() // publishing
		}
	}
	if retries < 2 {
		t.Errorf("the first retry, %s after the freeze, took the stream over; want it refused within publisher_takeover", time.Since(frozeAt))
	}
	time.Sleep(3 * time.Second)

	select {
	case err := <-ended:
		t.Fatalf("the viewer's stream ended: %v", err)
	default:
	}
	var all []testkit.Tag
	var after int
	for len(tags) > 0 {
		s := <-tags
		all = append(all, s.tag)
		if s.at.After(takenAt) && s.tag.Type == 9 {
			after++
		}
	}
	if after < 25 {
		t.Fatalf("%d video tags reached the viewer in the 3 s after the takeover, want a second's worth at least", after)
	}
	if err := (&testkit.Stream{HasAudio: true, HasVideo: true, Tags: all}).CheckPlayable(); err != nil {
		t.Fatalf("the viewer's stream across the takeover: %v", err)
	}
	if n, err := gw.Metric(context.Background(), "flvgw_publisher_takeovers_total"); err != nil || n != 1 {
		t.Fatalf("flvgw_publisher_takeovers_total %v, %v; want 1", n, err)
	}
	if !strings.Contains(gw.Stderr(), `msg="publisher taken over" component=pool stream=live/enc`) {
		t.Fatalf("the takeover was not logged\n%s", gw.Stderr())
	}
}
