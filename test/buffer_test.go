package test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"flvgw/test/testkit"
)

// A publisher of huge tags (128 KB video frames, 26 Mbps) to flvgw with
// pool.buffer_bytes = 1 MiB: the stream's entry never holds more than that
// in the streams API, and a viewer still plays it, from a keyframe, well
// formed.
func TestHugeTagsStayWithinBufferBytes(t *testing.T) {
	const limit = 1 << 20
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"pool": fmt.Sprintf("buffer_bytes = %d\n", limit),
	}))
	tags := []testkit.Tag{{Type: 9, Body: []byte{0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 0}, SeqHeader: true}}
	for i := range 50 {
		body := make([]byte, 128<<10)
		body[0], body[1] = 0x27, 1
		if i%10 == 0 {
			body[0] = 0x17
		}
		tags = append(tags, testkit.Tag{Type: 9, Timestamp: uint32(i * 40), Body: body, Keyframe: i%10 == 0})
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := &testkit.Publisher{Addr: gw.RTMPAddr, App: "live", Stream: "huge", Tags: tags, Loop: true}
	go func() { _ = pub.Run(ctx) }()
	if !waitFor(10*time.Second, func() bool {
		s, _ := gw.Streams(context.Background())
		return len(s) == 1 && s[0].TagsIn > 20
	}) {
		t.Fatal("the publish never reached the stream's entry")
	}
	played := make(chan testkit.Play, 1)
	go func() { played <- playFor(gw.URL("/live/huge.flv"), 3*time.Second) }()
	most, polls := 0, 0
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); polls++ {
		s, err := gw.Streams(context.Background())
		if err != nil || len(s) != 1 {
			t.Fatalf("streams: %+v, %v", s, err)
		}
		if s[0].BufferedBytes > limit || s[0].Buffered > 9 {
			t.Fatalf("the entry holds %d tags of %d bytes, over pool.buffer_bytes (%d)", s[0].Buffered, s[0].BufferedBytes, limit)
		}
		most = max(most, s[0].BufferedBytes)
		time.Sleep(50 * time.Millisecond)
	}
	if most < limit/2 {
		t.Fatalf("the entry held at most %d bytes in %d looks: the stream did not fill its buffer", most, polls)
	}
	p := <-played
	if p.Status != 200 || p.Stream == nil {
		t.Fatalf("viewer: status %d, %v", p.Status, p.Err)
	}
	if err := p.Stream.CheckPlayable(); err != nil {
		t.Fatal(err)
	}
	if _, v := p.Stream.CountMedia(); v < 20 {
		t.Fatalf("the viewer got %d video tags in 3 s, want about 75", v)
	}
}
