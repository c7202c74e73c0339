package pool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// planned is one tag of a randomized stream: tag seq of the entry is
// plan[seq] (every planned tag is kept: there is no splice).
type planned struct {
	typ  uint8
	body []byte
	key  bool
	hdr  bool
}

// propBody is a tag body of n bytes (at least 13) carrying seq, so that a
// reader's bytes name the tag they are.
func propBody(prefix []byte, seq uint64, n int) []byte {
	b := make([]byte, max(n, 13))
	copy(b, prefix)
	binary.BigEndian.PutUint64(b[5:], seq)
	for i := 13; i < len(b); i++ {
		b[i] = byte(seq) + byte(i)
	}
	return b
}

func propPlan(rng *rand.Rand, n, maxTag int) []planned {
	plan := make([]planned, 0, n)
	for seq := uint64(0); len(plan) < n; seq++ {
		size := 13 + rng.IntN(maxTag)
		if rng.IntN(8) == 0 {
			size = 13 + rng.IntN(maxTag*6) // a huge tag now and then
		}
		var p planned
		switch r := rng.IntN(40); {
		case seq == 0 || r == 0: // a changed video sequence header
			p = planned{typ: TagVideo, body: propBody([]byte{0x17, 0, 0, 0, 0}, seq, size), hdr: true}
		case seq == 1 || r < 6:
			p = planned{typ: TagVideo, body: propBody([]byte{0x17, 1, 0, 0, 0}, seq, size), key: true}
		case r < 20:
			p = planned{typ: TagAudio, body: propBody([]byte{0xaf, 1}, seq, size)}
		default:
			p = planned{typ: TagVideo, body: propBody([]byte{0x27, 1, 0, 0, 0}, seq, size)}
		}
		plan = append(plan, p)
	}
	return plan
}

// checkRingLocked checks the ring's accounting against the plan. e.mu held.
func checkRingLocked(e *Entry, plan []planned) error {
	if e.head-e.tail > uint64(len(e.ring)) || e.tail > e.head {
		return fmt.Errorf("tail %d head %d ring %d", e.tail, e.head, len(e.ring))
	}
	held, n := 0, 0
	for seq := e.tail; seq < e.head; seq++ {
		t := e.slot(seq)
		if t == nil {
			return fmt.Errorf("tag %d in [tail %d, head %d) is not held", seq, e.tail, e.head)
		}
		held += len(t.Data)
	}
	for i := range e.ring {
		if e.ring[i].Load() != nil {
			n++
		}
	}
	if n != int(e.head-e.tail) {
		return fmt.Errorf("%d slots hold a tag, want %d", n, e.head-e.tail)
	}
	if held != e.held {
		return fmt.Errorf("held %d, the tags' bytes are %d", e.held, held)
	}
	if e.held > e.maxBytes && e.head-e.tail > 1 {
		return fmt.Errorf("held %d over %d with %d tags", e.held, e.maxBytes, e.head-e.tail)
	}
	if e.hasKeyframe {
		if e.gopStart < e.tail || e.gopStart >= e.head || !plan[e.gopStart].key {
			return fmt.Errorf("gopStart %d outside [%d, %d) or no keyframe", e.gopStart, e.tail, e.head)
		}
		for seq := e.gopStart + 1; seq < e.head; seq++ {
			if plan[seq].key {
				return fmt.Errorf("gopStart %d, but %d is a newer keyframe", e.gopStart, seq)
			}
		}
	}
	s := Snapshot{Buffered: int(e.head - e.tail), BufferedBytes: e.held}
	if s.Buffered != n {
		return fmt.Errorf("snapshot buffered %d, slots %d", s.Buffered, n)
	}
	return nil
}

// readerCheck reads e to its end and checks that the reader gets whole
// tags in order, never one twice, starting (and resuming after each skip)
// at a keyframe, and missing tags only across a skip.
func readerCheck(e *Entry, plan []planned, r *Reader, rng *rand.Rand, slow bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.WaitReady(ctx); err != nil {
		return err
	}
	last := int64(-1) // the last media tag delivered
	first := true
	pending := 0 // skips not yet matched by a gap
	for {
		skips := r.Skips()
		bufs, err := r.Next(ctx, nil)
		if err != nil {
			if errors.Is(err, ErrEnded) {
				return nil
			}
			return fmt.Errorf("reader stuck at %d (head %d): %w", r.cursor, e.published.Load(), err)
		}
		pending += r.Skips() - skips
		for i, b := range bufs {
			if first && i == 0 {
				if string(b[:3]) != "FLV" {
					return errors.New("no FLV header first")
				}
				continue
			}
			if len(b) < tagHeaderLen+13+prevSizeLen {
				return fmt.Errorf("a short buffer of %d bytes", len(b))
			}
			body := b[tagHeaderLen : len(b)-prevSizeLen]
			seq := binary.BigEndian.Uint64(body[5:])
			if seq >= uint64(len(plan)) {
				return fmt.Errorf("tag %d was never written", seq)
			}
			p := plan[seq]
			if b[0] != p.typ || string(body) != string(p.body) {
				return fmt.Errorf("tag %d's bytes are not what was written", seq)
			}
			if p.hdr {
				continue // headers are also primed, and resent after a skip
			}
			want := last + 1
			for want < int64(len(plan)) && plan[want].hdr {
				want++
			}
			switch {
			case int64(seq) <= last:
				return fmt.Errorf("tag %d after %d: repeated or out of order", seq, last)
			case last < 0 || int64(seq) != want:
				// The first media tag, or one after a gap: a keyframe, and
				// for a gap, a skip.
				if !p.key {
					return fmt.Errorf("tag %d after %d is no keyframe", seq, last)
				}
				if last >= 0 {
					// Without a skip only tags before the first keyframe
					// may be passed over (a reader without the GOP cache).
					if pending == 0 {
						return fmt.Errorf("gap from %d to %d without a skip", last, seq)
					}
					// One gap per skip: two skips in one batch (the
					// reader fell out of the ring again right after the
					// keyframe it skipped to) leave two gaps in it.
					pending--
				}
			}
			last = int64(seq)
		}
		first = false
		if slow && rng.IntN(3) == 0 {
			time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond)
		}
	}
}

// A property of the ring under pool.buffer_tags and pool.buffer_bytes:
// whatever the tags' sizes, its accounting stays exact and every reader
// sees an in-order, repeat-free stream, missing tags only when it skips.
func TestRingBoundsProperty(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	iters := 60
	if testing.Short() {
		iters = 15
	}
	for it := range iters {
		rng := rand.New(rand.NewPCG(seed, uint64(it)))
		tags := []int{1, 2, 4, 8, 64}[rng.IntN(5)]
		maxTag := []int{20, 200, 2000}[rng.IntN(3)]
		maxBytes := rng.IntN(maxTag*tags*2) + 1
		plan := propPlan(rng, 300+rng.IntN(700), maxTag)
		name := fmt.Sprintf("seed%d/%d/tags%d/bytes%d", seed, it, tags, maxBytes)
		e := newEntry("live/a", tags, maxBytes, nil, time.Now())
		gen := e.newSource()
		e.attach(gen, "test")
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		nreaders := 1 + rng.IntN(5)
		start := make(chan struct{})
		for i := range nreaders {
			r := &Reader{e: e, gopCache: rng.IntN(2) == 0}
			if rng.IntN(3) == 0 {
				r.maxLag = int64(rng.IntN(200)) * int64(time.Microsecond)
			}
			rrng := rand.New(rand.NewPCG(seed, uint64(it*100+i)))
			delay := rng.IntN(len(plan))
			slow := rng.IntN(2) == 0
			wg.Go(func() {
				<-start
				for e.published.Load() < uint64(delay) && !e.closed.Load() {
					time.Sleep(10 * time.Microsecond)
				}
				if err := readerCheck(e, plan, r, rrng, slow); err != nil {
					errs <- fmt.Errorf("reader %d: %w", i, err)
				}
			})
		}
		// An operator's view, taken while the source appends.
		wg.Go(func() {
			<-start
			for !e.closed.Load() {
				s := e.snapshot()
				if s.Buffered > len(e.ring) || (s.BufferedBytes > maxBytes && s.Buffered > 1) {
					errs <- fmt.Errorf("snapshot: %d tags of %d bytes", s.Buffered, s.BufferedBytes)
					return
				}
				time.Sleep(50 * time.Microsecond)
			}
		})
		close(start)
		for seq, p := range plan {
			if err := e.append(gen, p.typ, uint32(seq), p.body); err != nil {
				t.Fatalf("%s: append %d: %v", name, seq, err)
			}
			e.mu.RLock()
			err := checkRingLocked(e, plan)
			e.mu.RUnlock()
			if err != nil {
				t.Fatalf("%s: after tag %d: %v", name, seq, err)
			}
			if rng.IntN(16) == 0 {
				time.Sleep(time.Duration(rng.IntN(100)) * time.Microsecond)
			}
		}
		e.end(ErrSourceGone)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("%s: %v", name, err)
		}
		if t.Failed() {
			return
		}
	}
}
