package pool

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func tagTimestamp(b []byte) uint32 {
	return uint32(b[4])<<16 | uint32(b[5])<<8 | uint32(b[6]) | uint32(b[7])<<24
}

// viewedStream publishes live/a (first) in a pool with a reconnect window
// of 2 s, with a viewer (closed at cleanup) that has read the stream's
// start (got); ts is where the stream went on.
func viewedStream(t *testing.T) (p *Pool, pub *Publisher, sub *Subscription, r *Reader, ts uint32, got [][]byte) {
	t.Helper()
	cfg := testConfig()
	cfg.ReconnectWindow = 2 * time.Second
	return viewedStreamWith(t, cfg)
}

// viewedStreamWith is viewedStream in a pool with cfg.
func viewedStreamWith(t *testing.T, cfg Config) (p *Pool, pub *Publisher, sub *Subscription, r *Reader, ts uint32, got [][]byte) {
	t.Helper()
	p = newTestPool(t, cfg, nil)
	pub, err := p.Publish("live/a", "first")
	must(t, err)
	ts = startStream(t, pub)
	sub, err = p.Subscribe("live/a", false)
	must(t, err)
	t.Cleanup(sub.Close)
	r = sub.NewReader()
	got, err = r.Next(context.Background(), nil)
	must(t, err)
	return p, pub, sub, r, ts, got
}

// A publisher that leaves and comes back within reconnect_window keeps
// the viewers attached: same entry, timestamps go on rising across the
// splice, the new sequence headers reach them, video resumes at a keyframe.
func TestRepublishWithinWindowKeepsViewers(t *testing.T) {
	p, pub, sub, r, ts, got := viewedStream(t)

	pub.Close(ErrSourceGone)
	if st := sub.Entry().State(); st != StateReconnecting {
		t.Fatalf("state %s after the publisher left with a viewer, want reconnecting", st)
	}
	if err := pub.WriteTag(TagVideo, ts, avcInter); !errors.Is(err, ErrStale) {
		t.Fatalf("old publisher wrote after leaving: %v", err)
	}
	pub2, err := p.Publish("live/a", "second")
	must(t, err)
	if pub2.Entry() != sub.Entry() {
		t.Fatal("the returning publisher got a new entry")
	}
	// The new session restarts its clock at 0 and opens with an inter
	// frame before its keyframe.
	must(t, pub2.WriteTag(TagVideo, 0, avcInter))
	must(t, pub2.WriteTag(TagVideo, 0, avcSeq))
	must(t, pub2.WriteTag(TagAudio, 0, aacSeq))
	feedGOP(t, pub2, 0, 3)
	pub2.Close(nil) // no more viewers' wait: ends (window still open, but reason ok)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		b, err := r.Next(ctx, nil)
		got = append(got, b...)
		if err != nil {
			break
		}
	}
	var last [2]uint32
	sawSeqAfterSplice, sawKeyAfterSplice := false, false
	spliced := false
	for _, b := range got[1:] {
		typ, tts := b[0], tagTimestamp(b)
		if typ == TagAudio || typ == TagVideo {
			if tts < last[typ-TagAudio] {
				t.Fatalf("type %d timestamp %d after %d", typ, tts, last[typ-TagAudio])
			}
			last[typ-TagAudio] = tts
		}
		body := b[11 : len(b)-4]
		if tts >= ts && typ == TagVideo {
			spliced = true
			k, seq := classify(typ, body)
			if seq {
				sawSeqAfterSplice = true
			}
			if !k && !seq && !sawKeyAfterSplice {
				t.Fatal("inter frame after the splice before a keyframe")
			}
			if k {
				sawKeyAfterSplice = true
			}
		}
		if n := binary.BigEndian.Uint32(b[len(b)-4:]); int(n) != len(b)-4 {
			t.Fatal("bad tag size")
		}
	}
	if !spliced || !sawSeqAfterSplice || !sawKeyAfterSplice {
		t.Fatalf("splice: seen %v, sequence header %v, keyframe %v", spliced, sawSeqAfterSplice, sawKeyAfterSplice)
	}
}

// A tag dropped as malformed (ErrBadTag: here an empty body, which some
// encoders send) moves no clock: neither a track's last timestamp within
// a session nor the offset a returning publisher's session is spliced on.
func TestDroppedTagMovesNoClock(t *testing.T) {
	p, pub, _, r, ts, got := viewedStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	last := tagTimestamp(got[len(got)-1])

	next := func() []byte {
		t.Helper()
		b, err := r.Next(ctx, nil)
		must(t, err)
		return b[0]
	}
	if err := pub.WriteTag(TagAudio, ts+100_000, nil); !errors.Is(err, ErrBadTag) {
		t.Fatalf("empty audio tag: %v, want ErrBadTag", err)
	}
	must(t, pub.WriteTag(TagAudio, ts, aacRaw))
	if got := tagTimestamp(next()); got != ts {
		t.Fatalf("audio at %d relayed at %d after a dropped tag at %d", ts, got, ts+100_000)
	}

	pub.Close(ErrSourceGone)
	pub2, err := p.Publish("live/a", "second")
	must(t, err)
	if err := pub2.WriteTag(TagVideo, 50_000, nil); !errors.Is(err, ErrBadTag) {
		t.Fatalf("empty video tag: %v, want ErrBadTag", err)
	}
	must(t, pub2.WriteTag(TagVideo, 0, avcKey))
	want := max(ts, last) + spliceGap
	if got := tagTimestamp(next()); got != want {
		t.Fatalf("the returning session's keyframe at %d, want %d (the splice counted from the dropped tag?)", got, want)
	}
}

// Nobody comes back: viewers end when the window closes.
func TestReconnectWindowExpires(t *testing.T) {
	cfg := testConfig()
	cfg.ReconnectWindow = 100 * time.Millisecond
	p := newTestPool(t, cfg, nil)
	pub, err := p.Publish("live/a", "first")
	must(t, err)
	startStream(t, pub)
	sub, err := p.Subscribe("live/a", false)
	must(t, err)
	defer sub.Close()
	r := sub.NewReader()
	_, err = r.Next(context.Background(), nil)
	must(t, err)
	start := time.Now()
	pub.Close(ErrSourceGone)
	_, err = drain(t, r, 5*time.Second)
	if !errors.Is(err, ErrEnded) || !errors.Is(err, ErrNoReconnect) {
		t.Fatalf("reader ended with %v", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > 2*time.Second {
		t.Fatalf("ended after %s, want about the window", d)
	}
	if n := p.Stats().Entries; n != 0 {
		t.Fatalf("entries %d", n)
	}
}

// Without viewers, or before any viewer started, there is nothing to keep.
func TestNoReconnectWithoutViewers(t *testing.T) {
	cfg := testConfig()
	cfg.ReconnectWindow = time.Hour
	p := newTestPool(t, cfg, nil)
	pub, err := p.Publish("live/a", "first")
	must(t, err)
	startStream(t, pub)
	pub.Close(ErrSourceGone)
	if st := pub.Entry().State(); st != StateClosed {
		t.Fatalf("state %s, want closed", st)
	}
	// A viewer leaving during the reconnect ends it too.
	pub, err = p.Publish("live/a", "again")
	must(t, err)
	startStream(t, pub)
	sub, err := p.Subscribe("live/a", false)
	must(t, err)
	pub.Close(ErrSourceGone)
	sub.Close()
	if st := pub.Entry().State(); st != StateClosed {
		t.Fatalf("state %s after the last viewer left a reconnecting entry, want closed", st)
	}
}

// garbageSource feeds a GOP and then sends what is not FLV, every run.
type garbageSource struct{ runs *atomic.Int32 }

func (s garbageSource) Name() string { return "garbage" }
func (s garbageSource) Run(ctx context.Context, pub *Publisher) error {
	s.runs.Add(1)
	for _, body := range [][]byte{avcSeq, avcKey} {
		if err := pub.WriteTag(TagVideo, 0, body); err != nil {
			return err
		}
	}
	return fmt.Errorf("upstream sent a tag of type 7: %w", ErrBadTag)
}

// A source that sent garbage (ErrBadTag) is not waited for or pulled
// again, whatever reconnect_window allows: its viewers end at once with
// the reason, as they do with no window; a pull restarted on it would
// break the same way all through the window.
func TestMalformedSourceIsNotReconnected(t *testing.T) {
	var runs atomic.Int32
	cfg := testConfig()
	cfg.ReconnectWindow = time.Hour
	p := newTestPool(t, cfg, func(string) Source { return garbageSource{runs: &runs} })
	sub, err := p.Subscribe("live/pulled", false)
	must(t, err)
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	must(t, sub.Entry().WaitReady(ctx))
	_, err = drain(t, sub.NewReader(), 5*time.Second)
	if !errors.Is(err, ErrEnded) || !errors.Is(err, ErrBadTag) {
		t.Fatalf("viewer of a pull that sent garbage ended with %v, want ErrBadTag at once", err)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("pull ran %d times, want 1", n)
	}

	pub, err := p.Publish("live/pushed", "test")
	must(t, err)
	startStream(t, pub)
	sub2, err := p.Subscribe("live/pushed", false)
	must(t, err)
	defer sub2.Close()
	r := sub2.NewReader()
	_, err = r.Next(ctx, nil)
	must(t, err)
	pub.Close(fmt.Errorf("publisher sent a tag of type 7: %w", ErrBadTag))
	if st := sub2.Entry().State(); st != StateClosed {
		t.Fatalf("entry of a publisher that sent garbage: %s, want closed", st)
	}
}

// breakingSource feeds a GOP and then breaks, twice.
type breakingSource struct{ runs *atomic.Int32 }

func (s breakingSource) Name() string { return "breaking" }
func (s breakingSource) Run(ctx context.Context, pub *Publisher) error {
	n := s.runs.Add(1)
	for _, tag := range []struct {
		typ  uint8
		body []byte
	}{{TagVideo, avcSeq}, {TagAudio, aacSeq}, {TagVideo, avcKey}, {TagVideo, avcInter}} {
		if err := pub.WriteTag(tag.typ, 0, tag.body); err != nil {
			return err
		}
	}
	if n <= 2 {
		return ErrSourceGone // the upstream broke mid-stream
	}
	<-ctx.Done()
	return ctx.Err()
}

// A pull that breaks mid-stream is restarted on the same entry.
func TestPullRestartedWithinWindow(t *testing.T) {
	var runs atomic.Int32
	cfg := testConfig()
	cfg.ReconnectWindow = time.Second
	p := newTestPool(t, cfg, func(string) Source { return breakingSource{runs: &runs} })
	sub, err := p.Subscribe("live/a", false)
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	must(t, sub.Entry().WaitReady(ctx))
	r := sub.NewReader()
	for runs.Load() < 3 {
		if _, err := r.Next(ctx, nil); err != nil {
			t.Fatalf("viewer ended across a pull restart: %v", err)
		}
	}
	if st := sub.Entry().State(); st == StateClosed {
		t.Fatal("entry closed")
	}
	if s := p.Stats(); s.UpstreamSessions != 3 {
		t.Fatalf("upstream sessions %d, want 3", s.UpstreamSessions)
	}
	sub.Close()
}

// failingAfterFirst produces a stream once, then every restart fails.
type failingAfterFirst struct{ runs *atomic.Int32 }

func (s failingAfterFirst) Name() string { return "failing" }
func (s failingAfterFirst) Run(ctx context.Context, pub *Publisher) error {
	if s.runs.Add(1) > 1 {
		time.Sleep(10 * time.Millisecond)
		return ErrUpstreamUnreachable
	}
	for _, body := range [][]byte{avcSeq, avcKey} {
		if err := pub.WriteTag(TagVideo, 0, body); err != nil {
			return err
		}
	}
	return ErrSourceGone
}

// failingWindow plays a pull that fails every restart through a
// reconnect window of the given length, and returns how many times it ran
// and why its entry ended.
func failingWindow(t *testing.T, window time.Duration) (runs int32, ended error) {
	t.Helper()
	var n atomic.Int32
	cfg := testConfig()
	cfg.ReconnectWindow = window
	p := newTestPool(t, cfg, func(string) Source { return failingAfterFirst{runs: &n} })
	sub, err := p.Subscribe("live/a", false)
	must(t, err)
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), window+5*time.Second)
	defer cancel()
	must(t, sub.Entry().WaitReady(ctx))
	select {
	case <-sub.Entry().Done():
	case <-ctx.Done():
		t.Fatal("entry never ended after the window")
	}
	return n.Load(), sub.Entry().Err()
}

// Restarted pulls that keep failing are retried until the window closes;
// then the viewers end.
func TestPullRetriesUntilWindowCloses(t *testing.T) {
	n, ended := failingWindow(t, 900*time.Millisecond)
	if !errors.Is(ended, ErrNoReconnect) {
		t.Fatalf("ended with %v", ended)
	}
	// 900ms window: the first run, an at once restart, retries at 0.25
	// and 0.75 s.
	if n < 3 || n > 5 {
		t.Fatalf("pull ran %d times in the window, want about 4 (paced retries)", n)
	}
}

// The pause between restarts of a pull that keeps failing doubles (250
// ms, 500 ms, 1 s, ...): an origin that answers at once that it lacks the
// stream (its publisher not back yet) gets a few requests per stream in a
// window, not four a second. In 3 s: the first run, an at once restart,
// and retries at 0.25, 0.75 and 1.75 s; a fixed 250 ms pace makes 13.
func TestPullRetriesBackOff(t *testing.T) {
	if n, _ := failingWindow(t, 3*time.Second); n < 3 || n > 7 {
		t.Fatalf("pull ran %d times in a 3 s window, want about 5 (retries backing off)", n)
	}
}

// A reader whose next tag is older than max_lag skips to the newest
// keyframe instead of playing ever later.
func TestMaxLagSkipsToNewestKeyframe(t *testing.T) {
	cfg := testConfig()
	cfg.MaxLag = 50 * time.Millisecond
	_, pub, _, r, ts, _ := viewedStreamWith(t, cfg)
	defer pub.Close(nil)
	ts = feedGOP(t, pub, ts, 2) // the reader does not take these in time
	time.Sleep(100 * time.Millisecond)
	feedGOP(t, pub, ts, 2)
	b, err := r.Next(context.Background(), nil)
	must(t, err)
	if r.Skips() != 1 {
		t.Fatalf("skips %d, want 1", r.Skips())
	}
	if tagTimestamp(b[0]) != ts || b[0][0] != TagVideo {
		t.Fatalf("after the skip the reader starts at ts %d, want the newest keyframe at %d", tagTimestamp(b[0]), ts)
	}
	if r.BatchArrival() == 0 {
		t.Fatal("no arrival time for the batch")
	}
}

// A reader that lags more than max_lag inside the newest GOP (no newer
// keyframe to skip to) goes on where it is: skipping to the newest
// keyframe would send it back to frames it already has.
func TestMaxLagNeverSkipsBack(t *testing.T) {
	cfg := testConfig()
	cfg.MaxLag = 50 * time.Millisecond
	_, pub, _, r, ts, _ := viewedStreamWith(t, cfg) // r at the live edge
	defer pub.Close(nil)
	must(t, pub.WriteTag(TagVideo, ts, avcInter)) // the reader does not take it in time
	time.Sleep(100 * time.Millisecond)
	must(t, pub.WriteTag(TagVideo, ts+40, avcInter))
	b, err := r.Next(context.Background(), nil)
	must(t, err)
	if r.Skips() != 0 || len(b) != 2 || tagTimestamp(b[0]) != ts || tagTimestamp(b[1]) != ts+40 {
		var at []uint32
		for _, tag := range b {
			at = append(at, tagTimestamp(tag))
		}
		t.Fatalf("after lagging in the newest GOP: %d skips, tags at %v ms; want no skip and the tags at %d and %d ms", r.Skips(), at, ts, ts+40)
	}
}

// A source whose clock goes back by more than a jitter within one session
// (an upstream that restarts its stream's timestamps on the same
// connection) is spliced on where the stream was, as a new session is;
// clamping would give every tag the old last timestamp until the new
// clock caught up, an hour of frozen timestamps for an hour-old stream.
// A step back within maxStepBack is jitter and only clamped per track.
func TestClockGoingBackIsSpliced(t *testing.T) {
	pub, next, hour := hourOldStream(t)
	relayAt(t, pub, next, []stamped{
		{TagVideo, hour, hour, avcKey},
		{TagAudio, hour, hour, aacRaw},
		// Jitter: a step back of a second is clamped to the track's last time.
		{TagAudio, hour - 1000, hour, aacRaw},
		// The clock restarts: the stream goes on spliceGap after its last tag.
		{TagVideo, 0, hour + spliceGap, avcSeq},
		{TagVideo, 0, hour + spliceGap, avcKey},
		{TagAudio, 23, hour + spliceGap + 23, aacRaw},
	})
}

// stamped is a tag a source writes at a timestamp, and where viewers are
// to see it.
type stamped struct {
	typ      uint8
	at, want uint32
	body     []byte
}

// relayAt writes each tag to pub and checks where the viewer (next) sees
// it.
func relayAt(t *testing.T, pub *Publisher, next func() uint32, tags []stamped) {
	t.Helper()
	for _, tag := range tags {
		must(t, pub.WriteTag(tag.typ, tag.at, tag.body))
		if got := next(); got != tag.want {
			t.Fatalf("tag of type %d at %d relayed at %d, want %d", tag.typ, tag.at, got, tag.want)
		}
	}
}

// hourOldStream publishes live/a an hour old, as a pull joins a running
// stream (its first frames an hour after its sequence headers), with a
// viewer that has read its start; next reads the viewer's next tag's
// timestamp, and hour is where the stream goes on.
func hourOldStream(t *testing.T) (pub *Publisher, next func() uint32, hour uint32) {
	t.Helper()
	p := newTestPool(t, testConfig(), nil)
	pub, err := p.Publish("live/a", "first")
	must(t, err)
	must(t, pub.WriteTag(TagVideo, 0, avcSeq))
	must(t, pub.WriteTag(TagAudio, 0, aacSeq))
	hour = feedGOP(t, pub, 3_600_000, 3)
	sub, err := p.Subscribe("live/a", false)
	must(t, err)
	t.Cleanup(sub.Close)
	r := sub.NewReader()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	_, err = r.Next(ctx, nil)
	must(t, err)
	return pub, func() uint32 {
		t.Helper()
		b, err := r.Next(ctx, nil)
		must(t, err)
		return tagTimestamp(b[len(b)-1])
	}, hour
}

// A single tag stamped far behind its stream (a sequence header re-sent
// stamped 0 an hour in) is spliced on where the stream was, and the tags
// after it, on the stream's clock, are spliced on after it: the timeline
// goes on, not an hour ahead for good.
func TestStrayTagBehindDoesNotCarryTheTimelineAhead(t *testing.T) {
	pub, next, hour := hourOldStream(t)
	relayAt(t, pub, next, []stamped{
		{TagVideo, hour, hour, avcKey},
		{TagAudio, hour, hour, aacRaw},
		{TagVideo, 0, hour + spliceGap, avcSeq},
		{TagAudio, hour + 23, hour + 2*spliceGap, aacRaw},
		{TagVideo, hour + 40, hour + 2*spliceGap + 17, avcInter},
		{TagAudio, hour + 46, hour + 2*spliceGap + 23, aacRaw},
	})
}

// A tag stamped far ahead of the time that passed since its track's last
// frame (a corrupt or hostile tag, a publisher's clock set forward) is
// spliced on where the stream was, and the tags after it, back on the old
// clock, are spliced on after it: one stray tag no longer carries every
// viewer's timeline a day ahead for good, and a young stream's clock does
// not freeze when the way back would be below 0. A step ahead that the
// time since the track's last frame accounts for (a track that paused) is
// kept.
func TestClockJumpingAheadIsSpliced(t *testing.T) {
	_, pub, _, r, ts, _ := viewedStream(t) // the last tags at ts-40
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	next := func() uint32 {
		t.Helper()
		b, err := r.Next(ctx, nil)
		must(t, err)
		return tagTimestamp(b[len(b)-1])
	}
	const day = 86_400_000
	relayAt(t, pub, next, []stamped{
		{TagVideo, ts, ts, avcKey},
		{TagAudio, ts, ts, aacRaw},
		// A day ahead: spliced on spliceGap after the last tag.
		{TagVideo, ts + day, ts + spliceGap, avcInter},
		// Back on the old clock: a step back from there, spliced on again.
		{TagAudio, ts + 23, ts + 2*spliceGap, aacRaw},
		{TagVideo, ts + 40, ts + 2*spliceGap + 17, avcInter},
		// A sequence header a day ahead is no different.
		{TagVideo, ts + day, ts + 3*spliceGap + 17, avcSeq},
		{TagVideo, ts + 80, ts + 4*spliceGap + 17, avcKey},
		{TagAudio, ts + 86, ts + 4*spliceGap + 23, aacRaw},
	})
	// A track that paused: its step ahead is within the time that passed
	// since its last frame, and kept.
	time.Sleep(300 * time.Millisecond)
	base := ts + 4*spliceGap + 17 // the video's last time, for ts+80
	relayAt(t, pub, next, []stamped{
		{TagVideo, ts + 80 + maxStepAhead + 200, base + maxStepAhead + 200, avcKey},
		{TagAudio, ts + 86 + maxStepAhead + 200, base + 6 + maxStepAhead + 200, aacRaw},
	})
}

// A track whose clock jumps ahead for good while the other's does not (an
// encoder that restarted its audio capture on a later time, a relay that
// corrected one stream's discontinuity) is spliced on, the other track
// after it, and then each track goes on at its own clock's pace: not
// splice after splice, every tag spliceGap after the stream's last, a
// timeline running at twice the media's pace for as long as the stream.
func TestOneTrackJumpingAheadForGoodDoesNotSpliceEveryTag(t *testing.T) {
	_, pub, _, r, ts, _ := viewedStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	const hour = 3_600_000
	var last [2]uint32
	for i := uint32(0); i < 20; i++ {
		for _, tag := range []struct {
			typ  uint8
			at   uint32
			body []byte
		}{{TagVideo, hour + ts + 40*i, avcInter}, {TagAudio, ts + 40*i, aacRaw}} {
			must(t, pub.WriteTag(tag.typ, tag.at, tag.body))
			b, err := r.Next(ctx, nil)
			must(t, err)
			got, track := tagTimestamp(b[len(b)-1]), tag.typ-TagAudio
			// The first two of each track are spliced on.
			if i >= 2 && got-last[track] != 40 {
				t.Fatalf("tag %d of type %d, 40 ms after its track's last in the source, relayed %d ms after it", i, tag.typ, int32(got-last[track]))
			}
			last[track] = got
		}
	}
}

// Across the wrap of the source's 32-bit clock, with the audio stamped
// 300 ms behind the video, each track goes on at its clock's pace: every
// tag 40 ms after its track's last, as in the source (the viewers' clock
// wraps with it). The video wraps first and is spliced on where it was;
// the audio not yet wrapped is then 2^32 ms ahead of it on the timeline,
// which is no jump of its clock and is not spliced on.
func TestClockWrapWithTracksApart(t *testing.T) {
	p := newTestPool(t, testConfig(), nil)
	pub, err := p.Publish("live/a", "first")
	must(t, err)
	must(t, pub.WriteTag(TagVideo, 0, avcSeq))
	must(t, pub.WriteTag(TagAudio, 0, aacSeq))
	ts := uint32(1<<32 - 2000)
	must(t, pub.WriteTag(TagVideo, ts, avcKey))
	sub, err := p.Subscribe("live/a", false)
	must(t, err)
	t.Cleanup(sub.Close)
	r := sub.NewReader()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = r.Next(ctx, nil)
	must(t, err)
	var last [2]uint32
	last[TagVideo-TagAudio] = ts
	for i := 0; i < 70; i++ { // the video wraps at i = 49, the audio at 57
		ts += 40
		for _, tag := range []struct {
			typ  uint8
			at   uint32
			body []byte
		}{{TagVideo, ts, avcInter}, {TagAudio, ts - 300, aacRaw}} {
			must(t, pub.WriteTag(tag.typ, tag.at, tag.body))
			b, err := r.Next(ctx, nil)
			must(t, err)
			got, track := tagTimestamp(b[len(b)-1]), tag.typ-TagAudio
			if (i > 0 || tag.typ == TagVideo) && got-last[track] != 40 {
				t.Fatalf("tag of type %d at %d, 40 ms after its track's last, relayed %d ms after it", tag.typ, tag.at, int32(got-last[track]))
			}
			last[track] = got
		}
	}
}

// A viewer that joins a returning session after its new sequence header
// and before its first keyframe starts at that keyframe: the GOP cache
// holds the old session's frames, which a decoder given the new header
// (a new resolution, say) cannot decode.
func TestJoinBetweenNewSequenceHeaderAndKeyframe(t *testing.T) {
	p, pub, _, _, _, _ := viewedStream(t)
	pub.Close(ErrSourceGone)
	pub2, err := p.Publish("live/a", "second")
	must(t, err)
	newSeq := []byte{0x17, 0, 0, 0, 0, 1, 0x4d, 0, 0x28} // another profile and level
	must(t, pub2.WriteTag(TagVideo, 0, newSeq))

	sub, err := p.Subscribe("live/a", false)
	must(t, err)
	defer sub.Close()
	r := sub.NewReader()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	first, err := r.Next(ctx, nil)
	must(t, err)
	must(t, pub2.WriteTag(TagVideo, 40, avcKey))
	next, err := r.Next(ctx, nil)
	must(t, err)
	var video [][]byte
	for _, b := range append(first[1:], next...) {
		if b[0] == TagVideo {
			video = append(video, b)
		}
	}
	body := func(b []byte) []byte { return b[11 : len(b)-4] }
	if len(video) < 2 || !bytes.Equal(body(video[0]), newSeq) {
		t.Fatalf("%d video tags, want the new sequence header first", len(video))
	}
	if !bytes.Equal(body(video[1]), avcKey) || tagTimestamp(video[1]) < tagTimestamp(video[0]) {
		t.Fatalf("after the new sequence header (at %d ms): a frame at %d ms, want the new session's keyframe, not the old session's frames",
			tagTimestamp(video[0]), tagTimestamp(video[1]))
	}
}

// Within one session too: a publisher that changes its video's
// configuration (a new resolution: a sequence header, then a keyframe
// that needs it) has a viewer that joins between the two start at that
// keyframe, not on the cached GOP coded with the old configuration, which
// the new header it is primed with does not decode. A sequence header
// repeated unchanged (as some encoders send one before each keyframe)
// keeps the GOP cache.
func TestJoinBetweenChangedSequenceHeaderAndKeyframe(t *testing.T) {
	body := func(b []byte) []byte { return b[11 : len(b)-4] }
	for _, changed := range []bool{true, false} {
		p := newTestPool(t, testConfig(), nil)
		pub, err := p.Publish("live/a", "test")
		must(t, err)
		ts := startStream(t, pub)
		seq := avcSeq
		if changed {
			seq = []byte{0x17, 0, 0, 0, 0, 1, 0x4d, 0, 0x28} // another profile and level
		}
		must(t, pub.WriteTag(TagVideo, ts, seq))
		sub, err := p.Subscribe("live/a", false)
		must(t, err)
		r := sub.NewReader()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		first, err := r.Next(ctx, nil)
		must(t, err)
		must(t, pub.WriteTag(TagVideo, ts+40, avcKey))
		next, err := r.Next(ctx, nil)
		must(t, err)
		cancel()
		var frames [][]byte // video tags other than sequence headers
		for _, b := range append(first[1:], next...) {
			if b[0] == TagVideo && b[12] != 0 {
				frames = append(frames, b)
			}
		}
		if len(frames) == 0 {
			t.Fatalf("changed=%v: no video frame", changed)
		}
		if got := tagTimestamp(frames[0]); changed && (got != ts+40 || !bytes.Equal(body(frames[0]), avcKey)) {
			t.Fatalf("after a changed sequence header: the first frame is at %d ms, want the keyframe after it at %d ms, not the cached GOP coded with the old configuration", got, ts+40)
		} else if !changed && got >= ts {
			t.Fatalf("after a sequence header repeated unchanged: the first frame is at %d ms, want the cached GOP's keyframe", got)
		}
		sub.Close()
		pub.Close(nil)
	}
}

// A publisher that took a stream over and sends video waiting for its
// first keyframe (a session that began mid-GOP: its inter frames are
// dropped until then) is not silent: another publisher of the key is
// refused as busy however long the wait, rather than taking the stream
// over from a publisher that is sending.
func TestPublisherWaitingForItsKeyframeIsNotTakenOver(t *testing.T) {
	cfg := testConfig()
	cfg.PublisherTakeover = 400 * time.Millisecond
	p := newTestPool(t, cfg, nil)
	old, err := p.Publish("live/a", "old")
	must(t, err)
	startStream(t, old)
	sub, err := p.Subscribe("live/a", false)
	must(t, err)
	defer sub.Close()

	var pub *Publisher
	for pub == nil {
		if pub, err = p.Publish("live/a", "new"); err != nil && !errors.Is(err, ErrBusy) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer pub.Close(nil)
	// The new session: video only, from the middle of a GOP.
	must(t, pub.WriteTag(TagVideo, 0, avcSeq))
	for ts, start := uint32(0), time.Now(); time.Since(start) < 3*cfg.PublisherTakeover; ts += 10 {
		must(t, pub.WriteTag(TagVideo, ts, avcInter))
		if _, err := p.Publish("live/a", "third"); !errors.Is(err, ErrBusy) {
			t.Fatalf("a third publisher while the second sends inter frames %s after the takeover: %v, want ErrBusy",
				time.Since(start).Round(time.Millisecond), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := p.Stats(); s.Takeovers != 1 {
		t.Fatalf("takeovers %d, want 1", s.Takeovers)
	}
}

// A publisher that takes the stream over from a silent one
// (pool.publisher_takeover) did not come back within a reconnect window:
// when it leaves, its viewers are kept for a full window, not for what
// was left of the window the silent one came back within.
func TestPublisherAfterATakeoverGetsAFullReconnectWindow(t *testing.T) {
	cfg := testConfig()
	cfg.ReconnectWindow = 2 * time.Second
	cfg.PublisherTakeover = 100 * time.Millisecond
	p, pub, sub, _, _, _ := viewedStreamWith(t, cfg)
	pub.Close(ErrSourceGone)
	time.Sleep(cfg.ReconnectWindow - 200*time.Millisecond)
	back, err := p.Publish("live/a", "back") // 0.2 s of the window left
	must(t, err)
	if back.Entry() != sub.Entry() {
		t.Fatal("the returning publisher got a new entry")
	}
	startStream(t, back) // and then silent
	time.Sleep(2 * cfg.PublisherTakeover)
	next, err := p.Publish("live/a", "next")
	must(t, err)
	if next.Entry() != sub.Entry() {
		t.Fatal("the publisher taking over got a new entry")
	}
	startStream(t, next)
	next.Close(ErrSourceGone)
	time.Sleep(cfg.ReconnectWindow / 2)
	if st := sub.Entry().State(); st != StateReconnecting {
		t.Fatalf("state %s half a window after the new publisher left, want reconnecting (%v)", st, sub.Entry().Err())
	}
}

// A script tag (a cue point) stamped far ahead keeps no track's clock:
// it goes out at the stream's last time, and a splice after it (here a
// sequence header re-sent stamped 0) starts where the media was, not a
// day ahead for good.
func TestStrayScriptTagAheadDoesNotCarryTheTimelineAhead(t *testing.T) {
	pub, next, hour := hourOldStream(t)
	const day = 86_400_000
	cue := append(append([]byte{0x02, 0, 10}, "onCuePoint"...), 0x05)
	relayAt(t, pub, next, []stamped{
		{TagVideo, hour, hour, avcKey},
		{TagAudio, hour, hour, aacRaw},
		{TagScript, hour + day, hour, cue},
		{TagVideo, 0, hour + spliceGap, avcSeq},
		{TagAudio, hour + 23, hour + 2*spliceGap, aacRaw},
	})
}
