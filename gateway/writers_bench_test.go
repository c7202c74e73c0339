package gateway

import (
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"

	"flvgw/pool"
)

// BenchmarkGroupPass measures what a writer group does per tag: for each
// member, Poll its reader and write the chunk to its real loopback socket
// with one non-blocking writev (the kernel's copy included; a goroutine per
// socket drains the other end; a member whose socket is full is finished
// with a blocking write, as its session would). Report: ns and
// allocations per tag per viewer.
func BenchmarkGroupPass(b *testing.B) {
	for _, viewers := range []int{1, 64} {
		b.Run("viewers="+strconv.Itoa(viewers), func(b *testing.B) {
			pcfg := pool.DefaultConfig()
			pcfg.MaxLag = 0
			p, err := pool.New(pcfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			pub, err := p.Publish("live/bench", "bench")
			if err != nil {
				b.Fatal(err)
			}
			_ = pub.WriteTag(pool.TagVideo, 0, []byte{0x17, 0, 0, 0, 0, 1, 2, 3})
			_ = pub.WriteTag(pool.TagAudio, 0, []byte{0xaf, 0, 0x12, 0x10})
			_ = pub.WriteTag(pool.TagVideo, 0, []byte{0x17, 1, 0, 0, 0, 9, 9})
			g := &Server{cfg: testConfig(), metrics: newMetrics(p, newViewerSet(), &writerGroups{}, 0)}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			members := make([]*viewer, viewers)
			for i := range members {
				client, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				defer client.Close()
				go func() { _, _ = io.Copy(io.Discard, client) }()
				server, err := ln.Accept()
				if err != nil {
					b.Fatal(err)
				}
				defer server.Close()
				sub, err := p.Subscribe("live/bench", false)
				if err != nil {
					b.Fatal(err)
				}
				defer sub.Close()
				v := &viewer{conn: server, r: sub.NewReader(), bufs: make([][]byte, 0, keptBatchCap), back: make(chan handback, 1)}
				v.setupRaw()
				members[i] = v
			}
			var scratch iovScratch
			pass := func() {
				for _, v := range members {
					hb, done, _ := g.serveMember(v, &scratch)
					switch {
					case done && hb.pending: // its socket was full: finish as a session would
						if why := g.writePending(v); why != "" {
							b.Fatal(why)
						}
					case done:
						b.Fatalf("member handed back: %+v", hb)
					}
				}
			}
			pass()                     // prime: header, sequence headers, keyframe
			body := make([]byte, 1200) // a 240 kbps video frame at 25 fps
			body[0], body[1] = 0x27, 1
			b.ReportAllocs()
			b.ResetTimer()
			for n := 0; n < b.N; n++ {
				if err := pub.WriteTag(pool.TagVideo, uint32(n), body); err != nil {
					b.Fatal(err)
				}
				pass()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(viewers), "ns/tag/viewer")
		})
	}
}
