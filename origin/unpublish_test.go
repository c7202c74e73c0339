package origin

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	amf0 "github.com/yutopp/go-amf0"

	"flvgw/pool"
)

// Bodies of a minimal H.264 stream: sequence header, keyframe.
var (
	testAVCSeq = []byte{0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 0}
	testAVCKey = []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65}
)

// awaitStatus reads p's messages until an onStatus arrives, and returns
// its code.
func awaitStatus(t *testing.T, p *rtmpPlayer, what string) string {
	t.Helper()
	for {
		msg, err := p.readMessage()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if msg.typeID != msgCommandAMF0 {
			continue
		}
		if name, _, args, err := decodeCommand(msg); err == nil && name == "onStatus" {
			return statusCode(args)
		}
	}
}

// rtmpClient connects to the origin at addr as a client (connect,
// createStream done), with 60 s for all it does on the connection, which
// the test's cleanup closes.
func rtmpClient(t *testing.T, addr string) *rtmpPlayer {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	p, err := dialRTMP(conn, "live", "rtmp://"+addr+"/live", time.Now().Add(10*time.Second), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	return p
}

// A publisher that deletes its stream (RTMP deleteStream, what an encoder
// sends when it stops) has stopped publishing, also while it keeps its
// connection: the entry's viewers end at once rather than at
// rtmp.read_timeout, the key is free, and the connection may publish it
// again. closeStream, sent on the publishing stream, does the same and
// keeps the stream, which publishes again.
func TestDeleteStreamEndsThePublish(t *testing.T) {
	for _, stop := range []string{"deleteStream", "closeStream"} {
		t.Run(stop, func(t *testing.T) { testStopPublish(t, stop) })
	}
}

func testStopPublish(t *testing.T, stop string) {
	s, addr, cancel, served := startOrigin(t)
	defer func() { cancel(); <-served }()
	cfg := DefaultConfig()
	cfg.ReadTimeout = 10 * time.Minute // the connection itself stays
	s.SetConfig(cfg)

	p := rtmpClient(t, addr)
	publishOn := func(streamID uint32, what string) {
		t.Helper()
		if err := p.command(streamID, "publish", 0, nil, "del", "live"); err != nil {
			t.Fatal(err)
		}
		if code := awaitStatus(t, p, what); code != "NetStream.Publish.Start" {
			t.Fatalf("%s: %s, want NetStream.Publish.Start", what, code)
		}
		for _, body := range [][]byte{testAVCSeq, testAVCKey} {
			if err := p.write(mediaStreamChunk, msgVideo, streamID, body); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
	}
	subscribe := func(what string) *pool.Subscription {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if sub, err := s.pool.Subscribe("live/del", false); err == nil {
				ctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
				err := sub.Entry().WaitReady(ctx)
				stop()
				if err == nil {
					return sub
				}
				sub.Close()
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: live/del never became ready", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	publishOn(p.streamID, "first publish")
	sub := subscribe("first publish")
	defer sub.Close()
	var err error
	if stop == "deleteStream" {
		err = p.command(0, "deleteStream", 0, nil, float64(p.streamID))
	} else {
		err = p.command(p.streamID, "closeStream", 0, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-sub.Entry().Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("the entry is %s 20 s after its publisher sent %s, want it ended",
			sub.Entry().State(), stop)
	}

	id := float64(p.streamID)
	if stop == "deleteStream" {
		if err := p.command(0, "createStream", 3, nil); err != nil {
			t.Fatal(err)
		}
		res, err := p.awaitResult(3)
		if err != nil {
			t.Fatalf("createStream after deleteStream: %v", err)
		}
		id, _ = res.(float64)
	}
	publishOn(uint32(id), "publish again on the same connection")
	again := subscribe("publish again")
	defer again.Close()
	if again.Entry() == sub.Entry() {
		t.Fatal("the second publish fed the ended entry")
	}
}

// A publisher that stops sending media but keeps its connection busy with
// RTMP control messages (an encoder whose capture stalled, still
// acknowledging and answering pings) feeds nobody: rtmp.read_timeout
// counts from its last audio, video or data message, so its viewers end
// rather than wait on a stream nobody feeds for as long as the
// connection lives.
func TestPublisherSendingNoMediaIsDropped(t *testing.T) {
	logs := &logBuffer{}
	s, addr, cancel, served := startOriginLogging(t, slog.New(slog.NewTextHandler(logs, nil)))
	defer func() { cancel(); <-served }()
	cfg := DefaultConfig()
	cfg.ReadTimeout = 500 * time.Millisecond
	s.SetConfig(cfg)

	p := rtmpClient(t, addr)
	if err := p.command(p.streamID, "publish", 0, nil, "quiet", "live"); err != nil {
		t.Fatal(err)
	}
	if code := awaitStatus(t, p, "publish"); code != "NetStream.Publish.Start" {
		t.Fatalf("publish: %s, want NetStream.Publish.Start", code)
	}
	for _, body := range [][]byte{testAVCSeq, testAVCKey} {
		if err := p.write(mediaStreamChunk, msgVideo, p.streamID, body); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := s.pool.Subscribe("live/quiet", false)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	// From here on, a Window Acknowledgement Size every 50 ms, no media.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if p.write(2, 5, 0, []byte{0, 0x4c, 0x4b, 0x40}) != nil {
					return
				}
			}
		}
	}()
	select {
	case <-sub.Entry().Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("the entry is %s 10 s after its publisher's last media, with rtmp.read_timeout 500ms",
			sub.Entry().State())
	}
	const why = "no media for rtmp.read_timeout"
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), why) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), why) {
		t.Fatalf("the publish's end is not logged as %q:\n%s", why, logs)
	}
}

// A publish on a second stream of a connection that already publishes (an
// encoder publishing several renditions over one connection) is refused
// with NetStream.Publish.Failed, and the connection's first publish goes
// on: the refusal does not end the connection and its viewers with it.
func TestSecondPublishOnAConnectionLeavesTheFirst(t *testing.T) {
	logs := &logBuffer{}
	s, addr, cancel, served := startOriginLogging(t, slog.New(slog.NewTextHandler(logs, nil)))
	defer func() { cancel(); <-served }()

	p := rtmpClient(t, addr)
	if err := p.command(p.streamID, "publish", 0, nil, "first", "live"); err != nil {
		t.Fatal(err)
	}
	if code := awaitStatus(t, p, "first publish"); code != "NetStream.Publish.Start" {
		t.Fatalf("first publish: %s, want NetStream.Publish.Start", code)
	}
	for _, body := range [][]byte{testAVCSeq, testAVCKey} {
		if err := p.write(mediaStreamChunk, msgVideo, p.streamID, body); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := s.pool.Subscribe("live/first", false)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	if err := sub.Entry().WaitReady(ctx); err != nil {
		t.Fatal(err)
	}

	if err := p.command(0, "createStream", 3, nil); err != nil {
		t.Fatal(err)
	}
	res, err := p.awaitResult(3)
	if err != nil {
		t.Fatalf("createStream: %v", err)
	}
	second, _ := res.(float64)
	for range 3 { // each refused, the refusal logged once
		if err := p.command(uint32(second), "publish", 0, nil, "second", "live"); err != nil {
			t.Fatal(err)
		}
		if code := awaitStatus(t, p, "second publish"); code != "NetStream.Publish.Failed" {
			t.Fatalf("second publish: %s, want NetStream.Publish.Failed", code)
		}
	}
	// The connection answers on, and its first publish is live.
	if err := p.command(0, "createStream", 4, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := p.awaitResult(4); err != nil {
		t.Fatalf("the connection ended with the refusal: %v", err)
	}
	if state := sub.Entry().State(); state != pool.StateLive {
		t.Fatalf("the first publish's entry is %s after the second publish was refused, want live", state)
	}
	if got := strings.Count(logs.String(), `msg="publish refused"`); got != 1 {
		t.Fatalf("the refusal is logged %d times:\n%s", got, logs)
	}
}

// A publisher whose stream a new one took over (pool.publisher_takeover)
// is cut at its next tag, and its connection's end is logged as the
// takeover's, at info: not as a failure, nor as "no media" for a key it
// no longer feeds. The new publisher's stream goes on.
func TestTakenOverPublisherEndsQuietly(t *testing.T) {
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	pcfg := pool.DefaultConfig()
	pcfg.PublisherTakeover = 200 * time.Millisecond
	p, err := pool.New(pcfg, quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	s := NewServer(DefaultConfig(), p, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	defer func() { cancel(); <-served }()
	addr := ln.Addr().String()

	publish := func(what string) *rtmpPlayer {
		t.Helper()
		c := rtmpClient(t, addr)
		if err := c.command(c.streamID, "publish", 0, nil, "over", "live"); err != nil {
			t.Fatal(err)
		}
		if code := awaitStatus(t, c, what); code != "NetStream.Publish.Start" {
			t.Fatalf("%s: %s, want NetStream.Publish.Start", what, code)
		}
		for _, body := range [][]byte{testAVCSeq, testAVCKey} {
			if err := c.write(mediaStreamChunk, msgVideo, c.streamID, body); err != nil {
				t.Fatal(err)
			}
		}
		return c
	}
	old := publish("first publish")
	time.Sleep(2 * pcfg.PublisherTakeover) // the first falls silent
	publish("the takeover")
	sub, err := p.Subscribe("live/over", false)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// The old publisher wakes up: its next tag ends its connection.
	_ = old.write(mediaStreamChunk, msgVideo, old.streamID, testAVCKey)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), `msg="publish ended" key=live/over`) {
		if time.Now().After(deadline) {
			t.Fatalf("the taken-over publisher's end was not logged:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := logs.String(); !strings.Contains(got, `level=INFO msg="publish ended" key=live/over`) ||
		!strings.Contains(got, "by=takeover") || strings.Contains(got, "level=WARN") {
		t.Fatalf("the taken-over publisher's end, want one info line by=takeover and no warning:\n%s", got)
	}
	if st := sub.Entry().State(); st != pool.StateLive {
		t.Fatalf("the new publisher's entry is %s after the old one left, want live", st)
	}
}

// An AMF3 command (type 17) or data message (type 15), a format byte of 0
// and then AMF0 values, is read as the AMF0 message it carries: a publish
// sent so is answered, and onMetaData sent so reaches the entry. go-rtmp
// refused both, and its refusal ended the connection.
func TestAMF3WrappedCommandsArePublishes(t *testing.T) {
	logs := &logBuffer{}
	s, addr, cancel, served := startOriginLogging(t, slog.New(slog.NewTextHandler(logs, nil)))
	defer func() { cancel(); <-served }()
	p := rtmpClient(t, addr)
	amf3 := func(typeID uint8, values ...any) {
		t.Helper()
		var buf bytes.Buffer
		buf.WriteByte(0) // the AMF3 message's format byte: AMF0 values follow
		enc := amf0.NewEncoder(&buf)
		for _, v := range values {
			if err := enc.Encode(v); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.write(mediaStreamChunk, typeID, p.streamID, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	amf3(msgCommandAMF3, "publish", 0.0, nil, "amf3", "live")
	if code := awaitStatus(t, p, "publish in an AMF3 command"); code != "NetStream.Publish.Start" {
		t.Fatalf("publish in an AMF3 command: %s, want NetStream.Publish.Start", code)
	}
	amf3(msgDataAMF3, "@setDataFrame", "onMetaData", map[string]any{"width": 640.0, "height": 360.0, "videocodecid": 7.0})
	for _, body := range [][]byte{testAVCSeq, testAVCKey} {
		if err := p.write(mediaStreamChunk, msgVideo, p.streamID, body); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		snap, ok := s.pool.Lookup("live/amf3")
		if ok && snap.Codecs.Width == 640 && snap.Codecs.Height == 360 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("live/amf3 after onMetaData in an AMF3 data message: %+v, %v; want 640x360 from it\n%s", snap, ok, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// onMetaData sent as a data message of its own (not through
// @setDataFrame, as some encoders and relays send it) is the stream's
// metadata, as nginx-rtmp and SRS take it: viewers get it as the script
// tag of an FLV file, and the streams API its codecs. go-rtmp dropped it
// as an unknown data message.
func TestBareOnMetaDataIsMetadata(t *testing.T) {
	for _, typeID := range []uint8{msgDataAMF0, msgDataAMF3} {
		t.Run(fmt.Sprintf("type_%d", typeID), func(t *testing.T) {
			s, addr, cancel, served := startOrigin(t)
			defer func() { cancel(); <-served }()
			p := rtmpClient(t, addr)
			name := fmt.Sprintf("bare%d", typeID)
			publishAs(t, p, name)
			var meta bytes.Buffer
			if typeID == msgDataAMF3 {
				meta.WriteByte(0) // the AMF3 message's format byte: AMF0 values follow
			}
			enc := amf0.NewEncoder(&meta)
			for _, v := range []any{"onMetaData", map[string]any{"width": 640.0, "height": 360.0, "videocodecid": 7.0}} {
				if err := enc.Encode(v); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.write(mediaStreamChunk, typeID, p.streamID, meta.Bytes()); err != nil {
				t.Fatal(err)
			}
			for _, body := range [][]byte{testAVCSeq, testAVCKey} {
				if err := p.write(mediaStreamChunk, msgVideo, p.streamID, body); err != nil {
					t.Fatal(err)
				}
			}
			_, r := readyReader(t, s.pool, "live/"+name)
			got := readTags(t, r, nil, 3, "onMetaData, the sequence header and the keyframe")
			wantBody := meta.Bytes()
			if typeID == msgDataAMF3 {
				wantBody = wantBody[1:]
			}
			if got[0].Type != pool.TagScript || !bytes.Equal(got[0].Body, wantBody) {
				t.Fatalf("the viewer's first tag: type %d, %q; want the script tag %q", got[0].Type, got[0].Body, wantBody)
			}
			if snap, _ := s.pool.Lookup("live/" + name); snap.Codecs.Width != 640 || snap.Codecs.Height != 360 {
				t.Fatalf("live/%s's codecs %+v, want 640x360 from its onMetaData", name, snap.Codecs)
			}
		})
	}
}

// A connection that publishes and closes its stream again and again
// without sending media is refused at the publish after
// maxEmptyPublishes such, and closed: each publish would count as a step
// for rtmp.read_timeout and cost a log line and an rtmp.on_publish call at
// the peer's rate. Publishes that carry media may repeat as they like.
func TestRepeatedPublishesWithoutMediaEndTheConnection(t *testing.T) {
	_, addr, cancel, served := startOrigin(t)
	defer func() { cancel(); <-served }()
	p := rtmpClient(t, addr)
	publish := func(what string, media bool) {
		t.Helper()
		if err := p.command(p.streamID, "publish", 0, nil, "loop", "live"); err != nil {
			t.Fatal(err)
		}
		if code := awaitStatus(t, p, what); code != "NetStream.Publish.Start" {
			t.Fatalf("%s: %s, want NetStream.Publish.Start", what, code)
		}
		if media {
			for _, body := range [][]byte{testAVCSeq, testAVCKey} {
				if err := p.write(mediaStreamChunk, msgVideo, p.streamID, body); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
			}
		}
		if err := p.command(p.streamID, "closeStream", 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 * maxEmptyPublishes {
		publish(fmt.Sprintf("publish %d, with media", i), true)
	}
	for i := range maxEmptyPublishes {
		publish(fmt.Sprintf("publish %d without media", i), false)
	}
	if err := p.command(p.streamID, "publish", 0, nil, "loop", "live"); err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := p.readMessage()
		if err != nil {
			break // closed
		}
		if msg.typeID != msgCommandAMF0 {
			continue
		}
		if name, _, args, err := decodeCommand(msg); err == nil && name == "onStatus" && statusCode(args) == "NetStream.Publish.Start" {
			t.Fatalf("publish %d in a row without media started", maxEmptyPublishes+1)
		}
	}
}
