package pool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// sessionTag is one tag of a publisher's session in
// TestPublisherLeavesAtEveryMoment. Video frames carry their session and
// their number in it, so a viewer can tell that each inter frame follows
// the frame before it.
type sessionTag struct {
	typ  uint8
	ts   uint32
	body []byte
}

// sessionScript is what the publisher of session s sends: the sequence
// headers, then three GOPs of a keyframe and two inter frames, each frame
// with an audio tag; its clock starts at 0, as a returning encoder's does.
func sessionScript(s byte) []sessionTag {
	tags := []sessionTag{{TagVideo, 0, avcSeq}, {TagAudio, 0, aacSeq}}
	for n := range 9 {
		kind := byte(0x27)
		if n%3 == 0 {
			kind = 0x17
		}
		ts := uint32(n * 40)
		tags = append(tags,
			sessionTag{TagVideo, ts, []byte{kind, 1, 0, 0, 0, s, byte(n)}},
			sessionTag{TagAudio, ts, aacRaw})
	}
	return tags
}

// The publisher leaves at every moment of its stream (before its first
// tag, between its sequence headers, before its first keyframe, inside a
// GOP, after its last tag), while viewers subscribe before it comes and
// at every moment of its stream and after it left, some of them leaving
// on their own; with a reconnect window, a second publisher comes back
// for half of the cycles. Every viewer with a subscription ends, without
// waiting for its deadline: with ErrEnded, having read every tag up to
// the entry's last, on a stream that starts at a keyframe, whose inter
// frames each follow their predecessor (no frame lost, none twice, none
// of a new session before its keyframe) and whose tracks never go back
// in time. After each cycle the pool holds no entry and no subscriber.
func TestPublisherLeavesAtEveryMoment(t *testing.T) {
	for _, window := range []time.Duration{0, 30 * time.Millisecond} {
		t.Run(fmt.Sprintf("reconnect_window=%s", window), func(t *testing.T) {
			cfg := testConfig()
			cfg.ReconnectWindow = window
			p := newTestPool(t, cfg, nil)
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, 0))
			script := sessionScript(1)
			outcomes := map[string]int{}
			for round := range 3 {
				for leaveAt := 0; leaveAt <= len(script); leaveAt++ {
					comeBack := window > 0 && (leaveAt+round)%2 == 0
					publisherCycle(t, p, leaveAt, comeBack, rng, outcomes)
					if t.Failed() {
						t.Fatalf("round %d, publisher leaving after %d tags, coming back %v", round, leaveAt, comeBack)
					}
				}
			}
			t.Logf("viewers: %v", outcomes)
			for _, o := range []string{"played to the end", "ended before ready", "left", "not found"} {
				if outcomes[o] == 0 {
					t.Errorf("no viewer %s: that path went untested", o)
				}
			}
		})
	}
}

// publisherCycle runs one publish of live/a that leaves after leaveAt
// tags (and, with comeBack, a second session that sends all its tags)
// with viewers joining all along, checks every viewer and the pool, and
// counts the viewers' outcomes.
func publisherCycle(t *testing.T, p *Pool, leaveAt int, comeBack bool, rng *rand.Rand, outcomes map[string]int) {
	const key = "live/a"
	script := sessionScript(1)
	// progress[k] is closed once the first publisher has sent k tags (or
	// has left): a joiner waits for its moment on it, and the publisher
	// goes on once the joiners of that moment have subscribed (joined[k]).
	progress := make([]chan struct{}, len(script)+1)
	joined := make([]sync.WaitGroup, len(script)+1)
	for i := range progress {
		progress[i] = make(chan struct{})
	}
	var wg sync.WaitGroup
	type result struct {
		outcome string
		err     error
	}
	results := make(chan result, 64)
	view := func(sub *Subscription, leaveAfter int) {
		defer sub.Close()
		outcome, err := watch(sub, leaveAfter)
		results <- result{outcome, err}
	}
	// Viewers waiting for the publisher, before it comes.
	for range 1 + rng.IntN(3) {
		sub, err := p.Subscribe(key, true)
		if err != nil {
			t.Fatalf("waiting viewer: %v", err)
		}
		leaveAfter := leaveAfterFor(rng)
		wg.Go(func() { view(sub, leaveAfter) })
	}
	// Viewers joining at every moment of the first session, and after.
	for range 6 {
		at, leaveAfter := rng.IntN(len(progress)), leaveAfterFor(rng)
		joined[at].Add(1)
		wg.Go(func() {
			<-progress[at]
			sub, err := p.Subscribe(key, false)
			joined[at].Done()
			if err != nil {
				if !errors.Is(err, ErrNotFound) {
					err = fmt.Errorf("joining after %d tags: %w", at, err)
				}
				results <- result{"not found", err}
				return
			}
			view(sub, leaveAfter)
		})
	}

	pub, err := p.Publish(key, "first")
	if err != nil {
		t.Fatal(err)
	}
	close(progress[0])
	joined[0].Wait()
	for i, tag := range script[:leaveAt] {
		if err := pub.WriteTag(tag.typ, tag.ts, tag.body); err != nil {
			t.Fatalf("tag %d: %v", i, err)
		}
		close(progress[i+1])
		joined[i+1].Wait()
	}
	pub.Close(nil)
	for _, ch := range progress[leaveAt+1:] {
		close(ch) // joiners of moments the publisher did not reach: now
	}
	if comeBack {
		pub2, err := p.Publish(key, "second")
		if err != nil {
			t.Fatal(err)
		}
		for i, tag := range sessionScript(2) {
			if err := pub2.WriteTag(tag.typ, tag.ts, tag.body); err != nil {
				t.Fatalf("second session, tag %d: %v", i, err)
			}
		}
		pub2.Close(nil)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("viewers still watching 20 s after the publisher left; pool %+v", p.Stats())
	}
	close(results)
	for r := range results {
		if r.err != nil && !errors.Is(r.err, ErrNotFound) {
			t.Error(r.err)
		}
		outcomes[r.outcome]++
	}
	if s := p.Stats(); s.Entries != 0 || s.Subscribers != 0 || s.Idle != 0 {
		t.Errorf("after every viewer left: %+v", s)
	}
}

// leaveAfterFor picks how many batches a viewer reads before it leaves on
// its own: -1 (it stays to the end) half of the time.
func leaveAfterFor(rng *rand.Rand) int {
	if rng.IntN(2) == 0 {
		return -1
	}
	return rng.IntN(4)
}

// watch plays sub as a viewer does: it waits for the entry to be ready,
// then reads leaveAfter batches (to the end if -1), and reports what was
// wrong with what it got.
func watch(sub *Subscription, leaveAfter int) (outcome string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e := sub.Entry()
	if err := e.WaitReady(ctx); err != nil {
		if errors.Is(err, ErrEnded) {
			return "ended before ready", nil
		}
		return "", fmt.Errorf("waiting for the entry to be ready: %w (state %s)", err, e.State())
	}
	r := sub.NewReader()
	var got [][]byte
	for batches := 0; leaveAfter < 0 || batches < leaveAfter; batches++ {
		var b [][]byte
		b, err = r.Next(ctx, nil)
		got = append(got, b...)
		if err != nil {
			break
		}
	}
	if err := checkSessions(got); err != nil {
		return "", err
	}
	if leaveAfter >= 0 && err == nil {
		return "left", nil
	}
	if !errors.Is(err, ErrEnded) || !(errors.Is(err, ErrSourceGone) || errors.Is(err, ErrNoReconnect)) {
		return "", fmt.Errorf("viewer ended with %v (state %s), want ErrEnded after the source left", err, e.State())
	}
	// It read to the end: its last tag is the entry's last, if it got any
	// media at all (a viewer that started after a new session's sequence
	// header waits for a keyframe that may never come).
	last := e.slot(e.published.Load() - 1)
	media := false
	for _, b := range got[1:] {
		media = media || (b[0] == TagAudio || b[0] == TagVideo) && b[12] == 1
	}
	if media && last != nil && !last.SeqHeader && !bytes.Equal(got[len(got)-1], last.Data) {
		return "", fmt.Errorf("viewer ended before the entry's last tag: its last %x, the entry's %x", got[len(got)-1], last.Data)
	}
	if !media {
		return "ended, no media", nil
	}
	return "played to the end", nil
}

// checkSessions checks a viewer's buffers: the FLV header first; each
// inter frame right after the frame before it in its session; each
// track's timestamps never going back.
func checkSessions(got [][]byte) error {
	if len(got) == 0 {
		return nil
	}
	if !bytes.HasPrefix(got[0], []byte("FLV")) {
		return fmt.Errorf("first buffer %x is not the FLV header", got[0])
	}
	var prev []byte // session and number of the last video frame
	var lastTS [2]uint32
	for i, b := range got[1:] {
		typ, ts := b[0], tagTimestamp(b)
		if typ == TagAudio || typ == TagVideo {
			if ts < lastTS[typ-TagAudio] {
				return fmt.Errorf("tag %d of type %d at %d ms after %d ms", i+1, typ, ts, lastTS[typ-TagAudio])
			}
			lastTS[typ-TagAudio] = ts
		}
		body := b[tagHeaderLen : len(b)-prevSizeLen]
		if typ != TagVideo || body[1] != 1 {
			continue // not a video frame
		}
		frame := body[5:7]
		if body[0]>>4 != 1 && (prev == nil || prev[0] != frame[0] || prev[1]+1 != frame[1]) {
			return fmt.Errorf("tag %d: inter frame %d of session %d after frame %v (session, number): not its predecessor", i+1, frame[1], frame[0], prev)
		}
		prev = frame
	}
	return nil
}
