package pool

import (
	"context"
	"io"
	"net"
	"strconv"
	"testing"
)

// BenchmarkFanout measures the per-viewer cost of the fan-out path: one
// source appends a tag, each of the viewers takes it with Next and hands
// the shared bytes to a vectored write (to io.Discard, so the kernel's
// copy is left out). Report: ns and allocations per tag per viewer.
func BenchmarkFanout(b *testing.B) {
	for _, viewers := range []int{1, 100, 1000} {
		b.Run("viewers="+strconv.Itoa(viewers), func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.MaxLag = 0
			p, err := New(cfg, quietLog(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			pub, err := p.Publish("live/bench", "bench")
			if err != nil {
				b.Fatal(err)
			}
			_ = pub.WriteTag(TagVideo, 0, avcSeq)
			_ = pub.WriteTag(TagAudio, 0, aacSeq)
			_ = pub.WriteTag(TagVideo, 0, avcKey)
			readers := make([]*Reader, viewers)
			bufs := make([][][]byte, viewers)
			outs := make([]net.Buffers, viewers)
			ctx := context.Background()
			for i := range readers {
				sub, err := p.Subscribe("live/bench", false)
				if err != nil {
					b.Fatal(err)
				}
				defer sub.Close()
				readers[i] = sub.NewReader()
				bufs[i] = make([][]byte, 0, MaxBatch+2)
				if _, err := readers[i].Next(ctx, bufs[i][:0]); err != nil { // prime
					b.Fatal(err)
				}
			}
			body := make([]byte, 1200) // a 240 kbps video frame at 25 fps
			body[0], body[1] = 0x27, 1
			b.ReportAllocs()
			b.ResetTimer()
			for n := 0; n < b.N; n++ {
				if err := pub.WriteTag(TagVideo, uint32(n), body); err != nil {
					b.Fatal(err)
				}
				for i, r := range readers {
					batch, err := r.Next(ctx, bufs[i][:0])
					if err != nil {
						b.Fatal(err)
					}
					outs[i] = batch
					if _, err := outs[i].WriteTo(io.Discard); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(viewers), "ns/tag/viewer")
		})
	}
}
