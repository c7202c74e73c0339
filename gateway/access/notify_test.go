package access

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// A notification is the event as JSON, POSTed; Wait returns once it is
// answered.
func TestNotifierPostsTheEvent(t *testing.T) {
	got := make(chan Event, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev Event
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s with %q, want a JSON POST", r.Method, r.Header.Get("Content-Type"))
		}
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			t.Error(err)
		}
		got <- ev
	}))
	defer srv.Close()
	n := NewNotifier(4, slog.New(slog.DiscardHandler))
	want := Event{Action: "play_done", App: "live", Stream: "s", Client: "127.0.0.1:5000", Query: "k=v",
		Bytes: 12345, DurationMS: 678, Reason: "viewer write: broken pipe"}
	n.Notify("auth.on_play_done", srv.URL, time.Second, want)
	n.Wait()
	select {
	case ev := <-got:
		if ev != want {
			t.Fatalf("posted %+v, want %+v", ev, want)
		}
	default:
		t.Fatal("Wait returned before the post was answered")
	}
	if n.Sent() != 1 || n.Failed() != 0 || n.Dropped() != 0 {
		t.Fatalf("sent %d, failed %d, dropped %d; want 1, 0, 0", n.Sent(), n.Failed(), n.Dropped())
	}
}

// A stalled service holds at most maxInFlight posts; the events beyond
// them are dropped, counted and logged (not each one), and Notify never
// waits for the service.
func TestNotifierDropsWhatAStalledServiceCannotTake(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	}))
	defer srv.Close()
	var log strings.Builder
	var mu sync.Mutex
	n := NewNotifier(2, slog.New(slog.NewTextHandler(lockedWriter{&mu, &log}, nil)))
	for i := range 2 + 9 {
		n.Notify("rtmp.on_publish_done", srv.URL, time.Minute, Event{Action: "publish_done", Stream: string(rune('a' + i))})
	}
	<-arrived // the two posts in flight reached the service
	<-arrived
	if d := n.Dropped(); d != 9 {
		t.Fatalf("%d dropped, want 9 (2 in flight of 11)", d)
	}
	close(release)
	n.Wait()
	mu.Lock()
	lines := strings.Count(log.String(), "notification dropped")
	mu.Unlock()
	if lines != 4 { // at the 1st, 2nd, 4th and 8th drop
		t.Fatalf("%d log lines for 9 drops, want 4:\n%s", lines, log.String())
	}
	// Room again once the posts are answered.
	n.Notify("rtmp.on_publish_done", srv.URL, time.Minute, Event{Action: "publish_done"})
	n.Wait()
	if d := n.Dropped(); d != 9 {
		t.Fatalf("%d dropped after the service answered, want still 9", d)
	}
}

// A service that answers too late, or not with a 2xx, is a failed post,
// counted and logged; nothing else happens.
func TestNotifierCountsFailedPosts(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
			return
		}
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer srv.Close()
	defer close(release)
	var log strings.Builder
	var mu sync.Mutex
	n := NewNotifier(4, slog.New(slog.NewTextHandler(lockedWriter{&mu, &log}, nil)))
	n.Notify("auth.on_play_done", srv.URL+"/slow", 50*time.Millisecond, Event{Action: "play_done", Stream: "a"})
	n.Notify("auth.on_play_done", srv.URL+"/error", time.Second, Event{Action: "play_done", Stream: "b"})
	n.Wait()
	if f, sent := n.Failed(), n.Sent(); f != 2 || sent != 0 {
		t.Fatalf("%d failed and %d sent, want 2 and 0", f, sent)
	}
	mu.Lock()
	defer mu.Unlock()
	if c := strings.Count(log.String(), `msg="notification failed" callback=auth.on_play_done action=play_done`); c != 2 {
		t.Fatalf("%d failure lines, want 2:\n%s", c, log.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
