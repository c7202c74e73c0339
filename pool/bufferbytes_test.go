package pool

import (
	"bytes"
	"context"
	"testing"
)

// bigVideo is a video tag body of n bytes: a keyframe or an inter frame.
func bigVideo(key bool, n int) []byte {
	b := bytes.Repeat([]byte{0x55}, n)
	copy(b, avcInter[:5])
	if key {
		copy(b, avcKey[:5])
	}
	return b
}

// heldSlots counts the ring's slots that hold a tag.
func heldSlots(e *Entry) int {
	n := 0
	for i := range e.ring {
		if e.ring[i].Load() != nil {
			n++
		}
	}
	return n
}

// publishedWithin starts live/a, with its headers and a small GOP, on a
// pool whose entries hold bufferBytes; ts is the stream's next timestamp.
func publishedWithin(t *testing.T, bufferBytes int) (p *Pool, pub *Publisher, ts uint32) {
	t.Helper()
	cfg := testConfig()
	cfg.BufferTags = 1024
	cfg.BufferBytes = bufferBytes
	p = newTestPool(t, cfg, nil)
	pub, err := p.Publish("live/a", "test")
	must(t, err)
	t.Cleanup(func() { pub.Close(nil) })
	return p, pub, startStream(t, pub)
}

// pool.buffer_bytes bounds what an entry holds when its tags are huge: the
// oldest go, their slots emptied for the collector, long before
// buffer_tags; a reader that was behind them skips to the newest keyframe.
func TestBufferBytesBoundsTheBuffer(t *testing.T) {
	p, pub, ts := publishedWithin(t, 1<<20)
	sub, err := p.Subscribe("live/a", false)
	must(t, err)
	defer sub.Close()
	r := sub.NewReader()
	_, err = r.Next(context.Background(), nil) // primed; it reads no more for now
	must(t, err)
	// Three GOPs of ten 100 KB video tags: 3 MB against 1 MiB.
	for range 3 {
		for i := range 10 {
			must(t, pub.WriteTag(TagVideo, ts, bigVideo(i == 0, 100<<10)))
			ts += 40
		}
	}
	s, ok := p.Lookup("live/a")
	if !ok {
		t.Fatal("no entry")
	}
	if s.BufferedBytes > 1<<20 || s.Buffered > 10 {
		t.Fatalf("buffered %d tags of %d bytes, want at most %d bytes", s.Buffered, s.BufferedBytes, 1<<20)
	}
	if n := heldSlots(sub.Entry()); n != s.Buffered {
		t.Fatalf("%d slots hold a tag, want the %d buffered: the others must let theirs go", n, s.Buffered)
	}
	bufs, err := r.Next(context.Background(), nil)
	must(t, err)
	if r.Skips() != 1 {
		t.Fatalf("skips %d, want 1", r.Skips())
	}
	if first := bufs[0]; first[0] != TagVideo || first[11]>>4 != 1 {
		t.Fatal("after its tags went, the reader did not restart at a keyframe")
	}
	// A new viewer starts at that keyframe too: the GOP fits the bound.
	sub2, err := p.Subscribe("live/a", false)
	must(t, err)
	defer sub2.Close()
	bufs, err = sub2.NewReader().Next(context.Background(), nil)
	must(t, err)
	if len(bufs) != 3+10 {
		t.Fatalf("a new viewer got %d buffers, want the headers and the GOP of 10", len(bufs))
	}
}

// A GOP larger than pool.buffer_bytes cannot be the GOP cache: its
// keyframe went, so a new viewer waits for the next keyframe rather than
// start on inter frames.
func TestGOPOverBufferBytesWaitsForTheNextKeyframe(t *testing.T) {
	p, pub, ts := publishedWithin(t, 1<<20)
	for i := range 20 { // one GOP of 2 MB
		must(t, pub.WriteTag(TagVideo, ts, bigVideo(i == 0, 100<<10)))
		ts += 40
	}
	sub, err := p.Subscribe("live/a", false)
	must(t, err)
	defer sub.Close()
	r := sub.NewReader()
	bufs, err := r.Poll(nil)
	must(t, err)
	if len(bufs) != 3 { // FLV header, the two sequence headers
		t.Fatalf("a new viewer got %d buffers before the next keyframe, want the 3 headers only", len(bufs))
	}
	must(t, pub.WriteTag(TagVideo, ts, bigVideo(false, 1000)))
	must(t, pub.WriteTag(TagVideo, ts+40, bigVideo(true, 1000)))
	bufs, err = r.Poll(nil)
	must(t, err)
	if len(bufs) != 1 || bufs[0][11]>>4 != 1 {
		t.Fatalf("got %d buffers, want the keyframe alone", len(bufs))
	}
}

// pool.max_buffered_bytes bounds the entries' buffers together: each
// holds at most its equal share, which shrinks as entries come and grows
// as they go, and the pool's count of what they hold follows them to 0.
func TestMaxBufferedBytesIsSharedByTheEntries(t *testing.T) {
	cfg := testConfig()
	cfg.BufferTags = 1024
	cfg.BufferBytes = 4 << 20
	cfg.MaxBufferedBytes = 4 << 20
	p := newTestPool(t, cfg, nil)
	if s := p.Stats(); s.EntryShare != 4<<20 {
		t.Fatalf("share with no entry %d, want buffer_bytes", s.EntryShare)
	}
	var pubs []*Publisher
	var next []uint32
	for i, key := range []string{"live/a", "live/b", "live/c", "live/d"} {
		pub, err := p.Publish(key, "test")
		must(t, err)
		pubs = append(pubs, pub)
		next = append(next, startStream(t, pub))
		if got, want := p.Stats().EntryShare, int64(4<<20/(i+1)); got != want {
			t.Fatalf("share with %d entries %d, want %d", i+1, got, want)
		}
	}
	// Each feeds 2 MB in GOPs of ten 50 KB tags: 8 MB against 4 MiB.
	for range 4 {
		for j, pub := range pubs {
			for i := range 10 {
				must(t, pub.WriteTag(TagVideo, next[j], bigVideo(i == 0, 50<<10)))
				next[j] += 40
			}
		}
	}
	s := p.Stats()
	if s.BufferedBytes > 4<<20 {
		t.Fatalf("the entries hold %d bytes together, want at most %d", s.BufferedBytes, 4<<20)
	}
	var sum int64
	for _, key := range []string{"live/a", "live/b", "live/c", "live/d"} {
		snap, ok := p.Lookup(key)
		if !ok {
			t.Fatalf("no entry %s", key)
		}
		if snap.BufferedBytes > 1<<20 {
			t.Fatalf("%s holds %d bytes, over its share of %d", key, snap.BufferedBytes, 1<<20)
		}
		if snap.BufferedBytes < 500<<10 {
			t.Fatalf("%s holds %d bytes, want its newest GOP (500 KB) kept", key, snap.BufferedBytes)
		}
		sum += int64(snap.BufferedBytes)
	}
	if sum != s.BufferedBytes {
		t.Fatalf("the pool counts %d bytes held, the entries %d", s.BufferedBytes, sum)
	}
	// Three go: the one left may hold all of it again.
	for _, pub := range pubs[1:] {
		pub.Close(nil)
	}
	if got := p.Stats().EntryShare; got != 4<<20 {
		t.Fatalf("share with one entry left %d, want %d", got, 4<<20)
	}
	for range 4 {
		for i := range 10 {
			must(t, pubs[0].WriteTag(TagVideo, next[0], bigVideo(i == 0, 50<<10)))
			next[0] += 40
		}
	}
	if snap, _ := p.Lookup("live/a"); snap.BufferedBytes < 2<<20 {
		t.Fatalf("the one entry left holds %d bytes, want its 2 MB since", snap.BufferedBytes)
	}
	pubs[0].Close(nil)
	if s := p.Stats(); s.BufferedBytes != 0 {
		t.Fatalf("with no entry the pool counts %d bytes held, want 0", s.BufferedBytes)
	}
}
