package origin

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// Shared-object messages (types 19 and 16, AMF0 and AMF3), which Flash
// clients send and flvgw does not serve, are ignored, with a debug log,
// on the connection's control stream and on its publishing stream, as
// nginx-rtmp and SRS ignore them; the publish goes on. go-rtmp refused
// them ("Not implemented"), which ended the connection.
func TestSharedObjectMessagesAreIgnored(t *testing.T) {
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, addr, cancel, served := startOriginLogging(t, log)
	defer func() { cancel(); <-served }()

	p := rtmpClient(t, addr)
	publishAs(t, p, "so")
	// A shared object "so" with a Use event (type 1) and no data: its
	// name, version, persistence, then its events.
	so := []byte{0, 2, 's', 'o', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}
	amf3 := append([]byte{0}, so...)
	send := func(typeID uint8, body []byte) {
		t.Helper()
		if err := p.write(commandChunkID, typeID, 0, body); err != nil {
			t.Fatal(err)
		}
		if err := p.write(mediaStreamChunk, typeID, p.streamID, body); err != nil {
			t.Fatal(err)
		}
	}
	send(19, so)
	send(16, amf3)
	for _, body := range [][]byte{testAVCSeq, testAVCKey} {
		if err := p.write(mediaStreamChunk, msgVideo, p.streamID, body); err != nil {
			t.Fatal(err)
		}
	}
	// An answer to a command sent after them: the origin read past them
	// and kept the connection.
	if err := p.command(0, "createStream", 5, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := p.awaitResult(5); err != nil {
		t.Fatalf("after shared-object messages: %v\n%s", err, logs.String())
	}
	_, r := readyReader(t, s.pool, "live/so")
	if got := readTags(t, r, nil, 2, "live/so"); !bytes.Equal(got[1].Body, testAVCKey) {
		t.Fatalf("live/so's viewer got %x, want the keyframe", got[1].Body)
	}
	got := logs.String()
	if n := strings.Count(got, `level=DEBUG msg="shared object message ignored"`); n != 4 {
		t.Fatalf("%d shared object messages logged ignored, want 4:\n%s", n, got)
	}
	if strings.Contains(got, "publish ended") || strings.Contains(got, "level=WARN") {
		t.Fatalf("the publish ended or warned:\n%s", got)
	}
}
