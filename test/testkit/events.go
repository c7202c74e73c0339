package testkit

import (
	"encoding/json"
	"net"
	"net/http"
	"testing"

	"flvgw/gateway/access"
)

// EventSink serves an operator's notification endpoint on loopback until
// the test ends: every POSTed access.Event (auth.on_play_done,
// rtmp.on_publish_done) is sent on events, which holds up to 16.
func EventSink(t testing.TB) (url string, events <-chan access.Event) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan access.Event, 16)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev access.Event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			t.Errorf("event sink: %v", err)
		}
		ch <- ev
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/events", ch
}
