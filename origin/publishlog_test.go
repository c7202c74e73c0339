package origin

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"flvgw/gateway/access"
)

// awaitLog polls logs until it holds want, and fails the test if it does
// not within 10 s.
func awaitLog(t *testing.T, logs *logBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s in the log:\n%s", want, logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The query on a publish or play name (?expires=..&token=.. under
// rtmp.publish_secret, an encoder's ?key=..) is a credential: the origin
// logs the stream's name without it, for a publish started, a publish
// refused and a play refused.
func TestOriginLogsNoStreamNameQuery(t *testing.T) {
	logs := &logBuffer{}
	s, addr, cancel, served := startOriginLogging(t, slog.New(slog.NewTextHandler(logs, nil)))
	defer func() { cancel(); <-served }()
	cfg := DefaultConfig()
	cfg.PublishSecret = "publish-secret"
	s.SetConfig(cfg)
	query := access.Query(cfg.PublishSecret, "live/signed", time.Now().Add(time.Hour))
	_, token, _ := strings.Cut(query, "token=")

	first := rtmpClient(t, addr)
	if err := first.command(first.streamID, "publish", 0, nil, "signed?"+query, "live"); err != nil {
		t.Fatal(err)
	}
	if code := awaitStatus(t, first, "first publish"); code != "NetStream.Publish.Start" {
		t.Fatalf("first publish: %s, want NetStream.Publish.Start", code)
	}
	second := rtmpClient(t, addr) // refused: the key is live
	if err := second.command(second.streamID, "publish", 0, nil, "signed?"+query, "live"); err != nil {
		t.Fatal(err)
	}
	if code := awaitStatus(t, second, "second publish"); code != "NetStream.Publish.Failed" {
		t.Fatalf("second publish: %s, want NetStream.Publish.Failed", code)
	}
	player := rtmpClient(t, addr)
	if err := player.play("signed?" + query); err != nil {
		t.Fatal(err)
	}
	awaitLog(t, logs, `msg="publish refused"`)
	awaitLog(t, logs, `msg="rtmp play refused"`)
	got := logs.String()
	if !strings.Contains(got, `app=live stream=signed key=live/signed`) {
		t.Errorf("the publish is not logged with its stream's name:\n%s", got)
	}
	if strings.Contains(got, token) || strings.Contains(got, "expires=") {
		t.Errorf("the log holds the stream name's query:\n%s", got)
	}
}

// An on_publish callback that answers after more than rtmp.read_timeout
// (within rtmp.callback_timeout) allows the publish, and the publish
// goes on: the read timeout counts from the publish's start, not from
// the last read before the callback was asked.
func TestSlowOnPublishCallbackAllows(t *testing.T) {
	const readTimeout = 300 * time.Millisecond
	asked := make(chan struct{}, 1)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked <- struct{}{}
		time.Sleep(3 * readTimeout) // the slowness under test
		w.WriteHeader(http.StatusNoContent)
	}))
	defer cb.Close()
	defer http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	s, addr, cancel, served := startOrigin(t)
	defer func() { cancel(); <-served }()
	cfg := DefaultConfig()
	cfg.ReadTimeout = readTimeout
	cfg.OnPublish = cb.URL
	cfg.CallbackTimeout = 10 * time.Second
	s.SetConfig(cfg)

	sub, err := s.pool.Subscribe("live/slowauth", true) // a viewer waiting
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	p := rtmpClient(t, addr)
	if err := p.command(p.streamID, "publish", 0, nil, "slowauth", "live"); err != nil {
		t.Fatal(err)
	}
	if code := awaitStatus(t, p, "publish"); code != "NetStream.Publish.Start" {
		t.Fatalf("publish: %s, want NetStream.Publish.Start", code)
	}
	<-asked
	for _, body := range [][]byte{testAVCSeq, testAVCKey} {
		if err := p.write(mediaStreamChunk, msgVideo, p.streamID, body); err != nil {
			t.Fatalf("the origin ended the publish its callback allowed: %v", err)
		}
	}
	ctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	if err := sub.Entry().WaitReady(ctx); err != nil {
		t.Fatalf("the publish's media did not reach its entry (%s): %v", sub.Entry().State(), err)
	}
}
