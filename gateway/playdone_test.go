package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"flvgw/gateway/access"
	"flvgw/test/testkit"
)

// auth.on_play_done gets the end of each viewer's stream that got its
// 200, with the bytes written and why it ended; a refused request is no
// session and posts nothing.
func TestPlayDoneIsPosted(t *testing.T) {
	hook, events := testkit.EventSink(t)
	r := startRelay(t, testConfig())
	stopPub := publish(t, r, "pd")
	defer stopPub()
	waitReady(t, r, "live/pd")
	auth := DefaultAuth()
	auth.OnPlayDone = hook
	r.gw.SetPolicy(Policy{Limits: DefaultLimits(), Auth: auth})

	// play reads n bytes of url's body, then leaves.
	play := func(url string, n int64) (status int, read int64) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		read, _ = io.CopyN(io.Discard, resp.Body, n)
		return resp.StatusCode, read
	}
	next := func() access.Event {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no play_done posted")
			return access.Event{}
		}
	}

	_, read := play("http://"+r.httpAddr+"/live/pd.flv?session=s1", 64<<10)
	ev := next()
	if ev.Action != "play_done" || ev.App != "live" || ev.Stream != "pd" || ev.Query != "session=s1" ||
		ev.Client == "" || ev.Bytes < uint64(read) || ev.Reason == "" || ev.DurationMS < 0 {
		t.Fatalf("posted %+v, want live/pd with query session=s1, at least the %d bytes read, and a reason", ev, read)
	}
	if status, _ := play("http://"+r.httpAddr+"/live/nobody.flv", 1); status != http.StatusNotFound {
		t.Fatalf("unknown stream: %d", status)
	}
	play("http://"+r.httpAddr+"/live/pd.flv", 1024)
	if ev := next(); ev.Query != "" || ev.Stream != "pd" {
		t.Fatalf("the event after a refused request and a second viewer: %+v, want the second viewer's", ev)
	}
}

// A stalled on_play_done service holds no viewer: sessions end, and leave
// their places in the limits, at once, while their posts wait.
func TestStalledPlayDoneHoldsNoViewer(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 8)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	}))
	defer cb.Close()
	defer http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	r := startRelay(t, testConfig())
	defer r.stop() // its Serve waits for the posts as it ends:
	var once sync.Once
	defer once.Do(func() { close(release) }) // they are answered first
	stopPub := publish(t, r, "stall")
	defer stopPub()
	waitReady(t, r, "live/stall")
	auth := DefaultAuth()
	auth.OnPlayDone = cb.URL
	auth.CallbackTimeout = time.Minute
	limits := DefaultLimits()
	limits.MaxViewersPerIP = 1
	r.gw.SetPolicy(Policy{Limits: limits, Auth: auth})

	for i := range 3 {
		resp, err := http.Get("http://" + r.httpAddr + "/live/stall.flv")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.CopyN(io.Discard, resp.Body, 1024)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("viewer %d after the one before left: %d, want 200 (its place is free)", i, resp.StatusCode)
		}
		select {
		case <-arrived: // its post waits at the service now
		case <-time.After(10 * time.Second):
			t.Fatalf("viewer %d: no post", i)
		}
		deadline := time.Now().Add(5 * time.Second)
		for r.gw.Viewers() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("viewer %d still served while its post waits", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	once.Do(func() { close(release) })
}
