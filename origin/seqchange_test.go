package origin

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"flvgw/pool"
)

// The upstream changes resolution mid-stream (a new AVC sequence header,
// then keyframes that need it) while a viewer is behind. The viewer falls
// out of the buffer and skips forward to the newest keyframe: it must get
// the new sequence header before it, or its decoder goes on with the old
// one and shows garbage until the stream ends.
func TestSkippingViewerGetsTheNewSequenceHeader(t *testing.T) {
	seqB := []byte{0x17, 0, 0, 0, 0, 0xb, 0xb, 0xb}
	s := &flvStream{t: t}
	s.buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\n\r\n")
	s.buf.Write(pool.Tracks{Audio: true, Video: true}.Header())
	s.tag(pool.TagScript, 0, onMetaData(t)).tag(pool.TagVideo, 0, spliceAVCSeq).tag(pool.TagAudio, 0, spliceAACSeq)
	s.tag(pool.TagVideo, 0, spliceAVCKey)
	tags := 4
	ts := uint32(0)
	gop := func(n int) {
		for range n {
			ts += 20
			s.tag(pool.TagAudio, ts, spliceAACRaw).tag(pool.TagVideo, ts, spliceAVCInter)
			tags += 2
		}
	}
	gop(3)
	start := s.buf.Len() // what the viewer reads before it falls behind
	// The resolution change: its sequence header and a long GOP that pushes
	// it out of the 64-tag buffer, then the next GOP.
	ts += 20
	s.tag(pool.TagVideo, ts, seqB).tag(pool.TagVideo, ts, spliceAVCKey)
	tags += 2
	gop(100)
	ts += 20
	s.tag(pool.TagVideo, ts, append(bytes.Clone(spliceAVCKey), 3))
	tags++
	gop(3)
	stream := s.buf.Bytes()

	more := make(chan struct{})
	up := serve(t, func(c net.Conn) {
		if readRequest(c) != nil {
			return
		}
		_, _ = c.Write(stream[:start])
		<-more
		_, _ = c.Write(stream[start:])
		_, _ = io.Copy(io.Discard, c) // until the pull hangs up
	})
	ups := []Upstream{{Name: "up", URL: "http://" + up}}
	pcfg := pool.DefaultConfig()
	pcfg.BufferTags = 64
	pcfg.MaxLag = 0 // skip only when out of the buffer
	p := newPullWith(t, pcfg, fastEdge(), ups...)
	sub, err := p.Subscribe("live/x", false)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	e := sub.Entry()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	r := sub.NewReader()
	if _, err := r.Next(ctx, nil); err != nil {
		t.Fatal(err)
	}
	close(more)
	for {
		wake := e.Wake()
		if snap, _ := p.Lookup("live/x"); snap.TagsIn >= uint64(tags) {
			break
		}
		select {
		case <-wake:
		case <-ctx.Done():
			snap, _ := p.Lookup("live/x")
			t.Fatalf("%d of the upstream's %d tags arrived (%s, %v)", snap.TagsIn, tags, snap.State, e.Err())
		}
	}
	batch, err := r.Next(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Skips() != 1 {
		t.Fatalf("skips %d, want 1", r.Skips())
	}
	sawSeqB := false
	for _, b := range batch {
		body := b[11 : len(b)-4]
		if b[0] != pool.TagVideo {
			continue
		}
		if bytes.Equal(body, seqB) {
			sawSeqB = true
		}
		if body[1] == 1 { // the first frame after the skip
			if !sawSeqB {
				t.Fatalf("the viewer skipped to a keyframe at %d ms without the sequence header it needs", uint32(b[4])<<16|uint32(b[5])<<8|uint32(b[6]))
			}
			return
		}
	}
	t.Fatal("no frame after the skip")
}
