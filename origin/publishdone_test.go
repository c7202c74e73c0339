package origin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"flvgw/gateway/access"
	"flvgw/pool"
)

// rtmp.on_publish_done gets each publish's end, with its stream, query,
// media bytes and reason: by closeStream, and by the connection's close.
func TestPublishDoneIsPosted(t *testing.T) {
	events := make(chan access.Event, 4)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev access.Event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			t.Error(err)
		}
		events <- ev
	}))
	defer cb.Close()
	defer http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	s, addr, cancel, served := startOrigin(t)
	defer func() { cancel(); <-served }()
	cfg := DefaultConfig()
	cfg.OnPublishDone = cb.URL
	s.SetConfig(cfg)

	next := func() access.Event {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no publish_done posted")
			return access.Event{}
		}
	}
	p := rtmpClient(t, addr)
	publishMedia := func(name string) {
		t.Helper()
		if err := p.command(p.streamID, "publish", 0, nil, name, "live"); err != nil {
			t.Fatal(err)
		}
		if code := awaitStatus(t, p, "publish"); code != "NetStream.Publish.Start" {
			t.Fatalf("publish: %s", code)
		}
		for _, body := range [][]byte{testAVCSeq, testAVCKey} {
			if err := p.write(mediaStreamChunk, msgVideo, p.streamID, body); err != nil {
				t.Fatal(err)
			}
		}
	}
	media := uint64(len(testAVCSeq) + len(testAVCKey))
	waitBytes := func(key string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if snap, ok := s.pool.Lookup(key); ok && snap.TagsIn == 2 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never got its 2 tags", key)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	publishMedia("done?key=k1")
	waitBytes("live/done")
	if err := p.command(p.streamID, "closeStream", 0, nil); err != nil {
		t.Fatal(err)
	}
	ev := next()
	if ev.Action != "publish_done" || ev.App != "live" || ev.Stream != "done" || ev.Query != "key=k1" ||
		ev.Bytes != media || ev.Reason != "closeStream" || ev.Client == "" || ev.DurationMS < 0 {
		t.Fatalf("after closeStream: %+v, want live/done with query key=k1, %d bytes, reason closeStream", ev, media)
	}

	// The stream publishes again, then the connection hangs up.
	publishMedia("again")
	waitBytes("live/again")
	p.conn.Close()
	if ev := next(); ev.Stream != "again" || ev.Query != "" || ev.Bytes != media || ev.Reason != "connection closed" {
		t.Fatalf("after the connection's close: %+v, want live/again, no query, %d bytes, reason connection closed", ev, media)
	}

	// An operator drops the stream: its publish ends with the reason.
	p = rtmpClient(t, addr)
	publishMedia("dropped")
	waitBytes("live/dropped")
	s.pool.Drop("live/dropped")
	for p.write(mediaStreamChunk, msgVideo, p.streamID, testAVCKey) == nil { // refused: the connection ends
		time.Sleep(10 * time.Millisecond)
	}
	if ev := next(); ev.Stream != "dropped" || ev.Bytes != media || ev.Reason != pool.ErrDropped.Error() {
		t.Fatalf("after a drop: %+v, want live/dropped, %d bytes, reason %q", ev, media, pool.ErrDropped)
	}
	select {
	case ev := <-events:
		t.Fatalf("a fourth event: %+v", ev)
	case <-time.After(100 * time.Millisecond):
	}
}
