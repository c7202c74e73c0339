package origin

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	amf0 "github.com/yutopp/go-amf0"

	"flvgw/pool"
)

// readRequest reads an HTTP request's head from c, so that a fake
// upstream closing the connection does not reset it with the request
// unread (a reset can drop bytes the pull has not read yet).
func readRequest(c net.Conn) error {
	_, err := http.ReadRequest(bufio.NewReader(c))
	return err
}

// flvStream builds an FLV byte stream from tags.
type flvStream struct {
	t   *testing.T
	buf bytes.Buffer
}

func (s *flvStream) tag(typ uint8, ts uint32, body []byte) *flvStream {
	s.t.Helper()
	tag, err := pool.NewTag(typ, ts, body)
	if err != nil {
		s.t.Fatal(err)
	}
	s.buf.Write(tag.Data)
	return s
}

var (
	spliceAVCSeq   = []byte{0x17, 0, 0, 0, 0, 1, 2, 3}
	spliceAVCKey   = []byte{0x17, 1, 0, 0, 0, 9, 9}
	spliceAVCInter = []byte{0x27, 1, 0, 0, 0, 8}
	spliceAACSeq   = []byte{0xaf, 0, 0x12, 0x10}
	spliceAACRaw   = []byte{0xaf, 1, 0x21}
)

func onMetaData(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := amf0.NewEncoder(&b)
	if err := enc.Encode("onMetaData"); err != nil {
		t.Fatal(err)
	}
	if err := enc.Encode(amf0.ECMAArray{"videocodecid": 7.0, "audiocodecid": 10.0}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// joinedMidStream is what an HTTP-FLV upstream such as flvgw sends a
// player joining a stream that has run for a while: the response head,
// the FLV header, onMetaData and the sequence headers as cached (stamped
// at the stream's start, 0), then a GOP on the stream's running clock from
// start on, its keyframe's body ending in mark. It returns the bytes and
// the timestamp after the GOP.
func joinedMidStream(t *testing.T, start uint32, mark byte) ([]byte, uint32) {
	s := &flvStream{t: t}
	s.buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\n\r\n")
	s.buf.Write(pool.Tracks{Audio: true, Video: true}.Header())
	s.tag(pool.TagScript, 0, onMetaData(t)).tag(pool.TagVideo, 0, spliceAVCSeq).tag(pool.TagAudio, 0, spliceAACSeq)
	ts := start
	s.tag(pool.TagVideo, ts, append(bytes.Clone(spliceAVCKey), mark))
	for range 10 {
		ts += 40
		s.tag(pool.TagAudio, ts, spliceAACRaw).tag(pool.TagVideo, ts, spliceAVCInter)
	}
	return s.buf.Bytes(), ts + 40
}

// An HTTP-FLV upstream's connection breaks while its stream goes on (a
// network blip between edge and upstream). The pull reconnects within
// reconnect_window and joins the upstream's stream again, which opens, as
// any join does, with onMetaData and sequence headers stamped 0 and then
// media an hour into the stream. The viewers' time must go on from where
// the first connection left it, not jump by the upstream stream's age.
func TestPullReconnectSplicesOnMediaClock(t *testing.T) {
	const hour = 3_600_000
	first, next := joinedMidStream(t, hour, 1)
	second, _ := joinedMidStream(t, next, 2)
	cut := make(chan struct{})
	var conns atomic.Int32
	up := serve(t, func(c net.Conn) {
		if readRequest(c) != nil {
			return
		}
		if conns.Add(1) == 1 {
			_, _ = c.Write(first)
			<-cut
			return
		}
		_, _ = c.Write(second)
		_, _ = io.Copy(io.Discard, c) // until the pull hangs up
	})
	ups := []Upstream{{Name: "up", URL: "http://" + up}}
	pcfg := pool.DefaultConfig()
	pcfg.ReconnectWindow = 10 * time.Second
	p := newPullWith(t, pcfg, fastEdge(), ups...)
	sub, err := subscribeReady(t, p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := sub.NewReader()
	var lastVideo uint32
	cutDone := false
	for {
		batch, err := r.Next(ctx, nil)
		if err != nil {
			t.Fatalf("viewer ended before the second connection's keyframe: %v", err)
		}
		for _, b := range batch {
			if len(b) < 16 || b[0] != pool.TagVideo {
				continue
			}
			ts := uint32(b[4])<<16 | uint32(b[5])<<8 | uint32(b[6]) | uint32(b[7])<<24
			body := b[11 : len(b)-4]
			if len(body) == len(spliceAVCKey)+1 && body[len(body)-1] == 2 {
				if jump := int64(ts) - int64(lastVideo); jump < 0 || jump > 1000 {
					t.Fatalf("across the reconnect the video time went from %d to %d ms (a jump of %d ms)", lastVideo, ts, jump)
				}
				return
			}
			if body[1] != 0 { // not a sequence header
				lastVideo = ts
			}
		}
		if !cutDone {
			cutDone = true
			close(cut) // the viewer plays the first connection: break it
		}
	}
}
