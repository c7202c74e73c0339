package origin

import (
	"log/slog"
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
