package pool

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testConfig() Config {
	c := DefaultConfig()
	c.MaxEntries = 4
	c.IdleTimeout = 50 * time.Millisecond
	c.BufferTags = 64
	return c
}

func newTestPool(t *testing.T, cfg Config, r Resolver) *Pool {
	t.Helper()
	p, err := New(cfg, quietLog(), r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// Bodies of the tags a minimal H.264+AAC stream is made of.
var (
	avcSeq   = []byte{0x17, 0, 0, 0, 0, 1, 2, 3}
	avcKey   = []byte{0x17, 1, 0, 0, 0, 9, 9}
	avcInter = []byte{0x27, 1, 0, 0, 0, 8}
	aacSeq   = []byte{0xaf, 0, 0x12, 0x10}
	aacRaw   = []byte{0xaf, 1, 0x21}
)

// feedGOP writes one GOP: keyframe, then n inter frames with audio.
func feedGOP(t *testing.T, pub *Publisher, ts uint32, n int) uint32 {
	t.Helper()
	next, err := writeGOP(pub, ts, n)
	must(t, err)
	return next
}

// writeGOP is feedGOP for a goroutine other than the test's: it returns
// the first error instead of failing the test.
func writeGOP(pub *Publisher, ts uint32, n int) (uint32, error) {
	if err := pub.WriteTag(TagVideo, ts, avcKey); err != nil {
		return ts, err
	}
	for i := 0; i < n; i++ {
		ts += 40
		if err := errors.Join(pub.WriteTag(TagAudio, ts, aacRaw), pub.WriteTag(TagVideo, ts, avcInter)); err != nil {
			return ts, err
		}
	}
	return ts + 40, nil
}

func startStream(t *testing.T, pub *Publisher) uint32 {
	t.Helper()
	must(t, pub.WriteTag(TagVideo, 0, avcSeq))
	must(t, pub.WriteTag(TagAudio, 0, aacSeq))
	return feedGOP(t, pub, 0, 3)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// drain reads until the reader reports an error, returning the tags' bytes.
func drain(t *testing.T, r *Reader, timeout time.Duration) ([][]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var all [][]byte
	for {
		b, err := r.Next(ctx, nil)
		all = append(all, b...)
		if err != nil {
			return all, err
		}
	}
}

// TestLifecycleTransitions walks every transition of the state table.
func TestLifecycleTransitions(t *testing.T) {
	tests := []struct {
		name      string
		run       func(t *testing.T, p *Pool) *Entry
		wantState State
		wantErr   error // Entry.Err
		inMap     bool
		pull      bool // a resolver offers a pulling source for live/a
	}{
		{
			name: "publish creates live",
			run: func(t *testing.T, p *Pool) *Entry {
				pub, err := p.Publish("live/a", "test")
				must(t, err)
				return pub.Entry()
			},
			wantState: StateLive, inMap: true,
		},
		{
			name: "subscribe with wait creates waiting",
			run: func(t *testing.T, p *Pool) *Entry {
				sub, err := p.Subscribe("live/a", true)
				must(t, err)
				t.Cleanup(sub.Close)
				return sub.Entry()
			},
			wantState: StateWaiting, inMap: true,
		},
		{
			name: "waiting to live when the publisher arrives",
			run: func(t *testing.T, p *Pool) *Entry {
				sub, err := p.Subscribe("live/a", true)
				must(t, err)
				t.Cleanup(sub.Close)
				pub, err := p.Publish("live/a", "test")
				must(t, err)
				if pub.Entry() != sub.Entry() {
					t.Fatal("publisher got another entry than the waiting viewer")
				}
				return sub.Entry()
			},
			wantState: StateLive, inMap: true,
		},
		{
			name: "waiting to closed when the last waiter leaves",
			run: func(t *testing.T, p *Pool) *Entry {
				sub, err := p.Subscribe("live/a", true)
				must(t, err)
				sub.Close()
				return sub.Entry()
			},
			wantState: StateClosed, wantErr: ErrAbandoned,
		},
		{
			name: "live to closed when the publisher leaves",
			run: func(t *testing.T, p *Pool) *Entry {
				pub, err := p.Publish("live/a", "test")
				must(t, err)
				pub.Close(nil)
				return pub.Entry()
			},
			wantState: StateClosed, wantErr: ErrSourceGone,
		},
		{
			name: "live with viewer to closed when the publisher leaves, viewer still holds it",
			run: func(t *testing.T, p *Pool) *Entry {
				pub, err := p.Publish("live/a", "test")
				must(t, err)
				sub, err := p.Subscribe("live/a", false)
				must(t, err)
				t.Cleanup(sub.Close)
				pub.Close(nil)
				return sub.Entry()
			},
			wantState: StateClosed, wantErr: ErrSourceGone,
		},
		{
			name: "idle pulled entry to closed by idle timeout",
			run: func(t *testing.T, p *Pool) *Entry {
				sub, err := p.Subscribe("live/a", false)
				must(t, err)
				e := sub.Entry()
				sub.Close()
				p.now = func() time.Time { return time.Now().Add(time.Hour) }
				p.evictExpired()
				return e
			},
			wantState: StateClosed, wantErr: ErrEvicted, pull: true,
		},
		{
			name: "pool close ends a live entry",
			run: func(t *testing.T, p *Pool) *Entry {
				pub, err := p.Publish("live/a", "test")
				must(t, err)
				p.Close()
				return pub.Entry()
			},
			wantState: StateClosed, wantErr: ErrPoolClosed,
		},
		{
			name: "closed is terminal: publish after end makes a new entry",
			run: func(t *testing.T, p *Pool) *Entry {
				pub, err := p.Publish("live/a", "test")
				must(t, err)
				pub.Close(nil)
				pub2, err := p.Publish("live/a", "test")
				must(t, err)
				if pub2.Entry() == pub.Entry() {
					t.Fatal("a closed entry was reused")
				}
				pub2.Entry().attach(pub2.gen, "again") // no effect on a live entry
				return pub.Entry()
			},
			wantState: StateClosed, wantErr: ErrSourceGone,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var resolver Resolver
			if tc.pull {
				resolver = func(string) Source { return blockingSource{} }
			}
			p := newTestPool(t, testConfig(), resolver)
			e := tc.run(t, p)
			if got := e.State(); got != tc.wantState {
				t.Fatalf("state %s, want %s", got, tc.wantState)
			}
			if tc.wantErr != nil && !errors.Is(e.Err(), tc.wantErr) {
				t.Fatalf("err %v, want %v", e.Err(), tc.wantErr)
			}
			p.mu.Lock()
			_, in := p.entries["live/a"]
			cur := p.entries["live/a"]
			p.mu.Unlock()
			if tc.inMap != (in && cur == e) {
				t.Fatalf("registered %v, want %v", in && cur == e, tc.inMap)
			}
		})
	}
}

// blockingSource is a pull that produces nothing until cancelled.
type blockingSource struct{}

func (blockingSource) Name() string { return "blocking" }
func (blockingSource) Run(ctx context.Context, _ *Publisher) error {
	<-ctx.Done()
	return ctx.Err()
}

// countingSource counts how many times it was started and feeds a stream.
type countingSource struct {
	runs    *atomic.Int32
	started chan struct{}
}

func (s countingSource) Name() string { return "counting" }
func (s countingSource) Run(ctx context.Context, pub *Publisher) error {
	s.runs.Add(1)
	if err := pub.WriteTag(TagVideo, 0, avcSeq); err != nil {
		return err
	}
	if err := pub.WriteTag(TagVideo, 0, avcKey); err != nil {
		return err
	}
	<-ctx.Done()
	return ctx.Err()
}

// Invariant 1: concurrent first viewers share one entry and one pull.
func TestOnePullPerStream(t *testing.T) {
	var runs atomic.Int32
	p := newTestPool(t, testConfig(), func(string) Source { return countingSource{runs: &runs} })
	const viewers = 200
	subs := make([]*Subscription, viewers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range subs {
		wg.Go(func() {
			<-start
			s, err := p.Subscribe("live/x", false)
			if err != nil {
				t.Error(err)
				return
			}
			subs[i] = s
		})
	}
	close(start)
	wg.Wait()
	for _, s := range subs {
		if s == nil || s.Entry() != subs[0].Entry() {
			t.Fatal("viewers got different entries")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	must(t, subs[0].Entry().WaitReady(ctx))
	if n := runs.Load(); n != 1 {
		t.Fatalf("%d pulls started, want 1", n)
	}
	if s := p.Stats(); s.UpstreamSessions != 1 || s.Subscribers != viewers {
		t.Fatalf("stats %+v", s)
	}
	for _, s := range subs {
		s.Close()
	}
}

// Invariant 2: a subscription is counted once and released once.
func TestSubscriptionReleasedExactlyOnce(t *testing.T) {
	p := newTestPool(t, testConfig(), nil)
	pub, err := p.Publish("live/a", "test")
	must(t, err)
	defer pub.Close(nil)
	a, err := p.Subscribe("live/a", false)
	must(t, err)
	b, err := p.Subscribe("live/a", false)
	must(t, err)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(a.Close) // many closers, one release
	}
	wg.Wait()
	if n := p.Stats().Subscribers; n != 1 {
		t.Fatalf("subscribers %d after closing one of two, want 1", n)
	}
	b.Close()
	b.Close()
	if n := p.Stats().Subscribers; n != 0 {
		t.Fatalf("subscribers %d, want 0", n)
	}
}

// Invariant 3: an entry with a subscriber is never evicted; taking an idle
// entry back does not close it; only idle entries make room.
func TestOnlyIdleEntriesAreEvicted(t *testing.T) {
	cfg := testConfig()
	cfg.MaxEntries = 2
	p := newTestPool(t, cfg, func(string) Source { return blockingSource{} })

	a, err := p.Subscribe("live/a", false)
	must(t, err)
	b, err := p.Subscribe("live/b", false)
	must(t, err)
	if _, err := p.Subscribe("live/c", false); !errors.Is(err, ErrFull) {
		t.Fatalf("third stream with all entries watched: %v, want ErrFull", err)
	}
	p.now = func() time.Time { return time.Now().Add(time.Hour) }
	p.evictExpired()
	if a.Entry().State() == StateClosed || b.Entry().State() == StateClosed {
		t.Fatal("an entry with a subscriber was evicted")
	}

	// b goes idle; a viewer takes it back out of the LRU: it stays open.
	b.Close()
	if p.Stats().Idle != 1 {
		t.Fatalf("idle %d, want 1", p.Stats().Idle)
	}
	b2, err := p.Subscribe("live/b", false)
	must(t, err)
	if b2.Entry() != b.Entry() || b2.Entry().State() == StateClosed {
		t.Fatal("taking an idle entry back closed or replaced it")
	}
	b2.Close()

	// Room for c comes from idle b, not from watched a.
	c, err := p.Subscribe("live/c", false)
	must(t, err)
	defer c.Close()
	if b.Entry().State() != StateClosed || !errors.Is(b.Entry().Err(), ErrEvicted) {
		t.Fatalf("idle entry not evicted for room: %s %v", b.Entry().State(), b.Entry().Err())
	}
	if a.Entry().State() == StateClosed {
		t.Fatal("watched entry evicted")
	}
	a.Close()
	if got := p.Stats(); got.Evictions != 1 {
		t.Fatalf("evictions %d, want 1", got.Evictions)
	}
}

// stoppableSource feeds a keyframe and then runs until stop is closed.
type stoppableSource struct{ stop chan struct{} }

func (stoppableSource) Name() string { return "stoppable" }
func (s stoppableSource) Run(ctx context.Context, pub *Publisher) error {
	for _, body := range [][]byte{avcSeq, avcKey} {
		if err := pub.WriteTag(TagVideo, 0, body); err != nil {
			return err
		}
	}
	select {
	case <-s.stop:
		return ErrSourceGone
	case <-ctx.Done():
		return ctx.Err()
	}
}

// An idle pulled entry whose upstream ends leaves the idle list with the
// key map: a dead entry kept there would count as idle, and evicting it
// to make room would free nothing, letting the pool grow past
// max_entries.
func TestIdlePullEndingLeavesTheIdleList(t *testing.T) {
	cfg := testConfig()
	cfg.MaxEntries = 2
	stop := make(chan struct{})
	p := newTestPool(t, cfg, func(key string) Source {
		if key == "live/a" {
			return stoppableSource{stop: stop}
		}
		return blockingSource{}
	})
	sub, err := p.Subscribe("live/a", false)
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	must(t, sub.Entry().WaitReady(ctx))
	sub.Close()
	if s := p.Stats(); s.Idle != 1 {
		t.Fatalf("idle %d after the last viewer left a pull, want 1", s.Idle)
	}
	close(stop)
	select {
	case <-sub.Entry().Done():
	case <-ctx.Done():
		t.Fatal("the entry did not end with its pull")
	}
	if s := p.Stats(); s.Idle != 0 || s.Entries != 0 {
		t.Fatalf("after the idle pull ended: idle %d, entries %d; want 0 and 0", s.Idle, s.Entries)
	}
	// Two new streams fill max_entries; a third finds no room.
	for _, key := range []string{"live/b", "live/c"} {
		s, err := p.Subscribe(key, false)
		must(t, err)
		defer s.Close()
	}
	if _, err := p.Subscribe("live/d", false); !errors.Is(err, ErrFull) {
		t.Fatalf("a third stream with max_entries 2 watched: %v, want ErrFull (entries %d)", err, p.Stats().Entries)
	}
}

// Entries waiting for a publisher give their place in max_entries to a
// stream with a source (a publisher, a pull), oldest first, after idle
// entries; never to one another, and never an entry with a source.
func TestWaitingEntriesGiveWayToSources(t *testing.T) {
	cfg := testConfig()
	cfg.MaxEntries = 2
	p := newTestPool(t, cfg, func(key string) Source {
		if key == "pull/x" {
			return blockingSource{}
		}
		return nil
	})
	w1, err := p.Subscribe("live/w1", true)
	must(t, err)
	defer w1.Close()
	w2, err := p.Subscribe("live/w2", true)
	must(t, err)
	defer w2.Close()
	if _, err := p.Subscribe("live/w3", true); !errors.Is(err, ErrFull) {
		t.Fatalf("a third waiting viewer: %v, want ErrFull", err)
	}

	pub, err := p.Publish("live/real", "test")
	if err != nil {
		t.Fatalf("a publisher with max_entries held by waiting viewers: %v", err)
	}
	defer pub.Close(nil)
	if !errors.Is(w1.Entry().Err(), ErrGaveWay) || w2.Entry().State() != StateWaiting {
		t.Fatalf("w1 %v, w2 %s: want the oldest waiting entry to give way", w1.Entry().Err(), w2.Entry().State())
	}
	if _, ok := p.Lookup("live/w1"); ok {
		t.Fatal("the entry that gave way still holds its key")
	}

	pv, err := p.Subscribe("pull/x", false)
	if err != nil {
		t.Fatalf("a pull with max_entries held by a publisher and a waiting viewer: %v", err)
	}
	defer pv.Close()
	if !errors.Is(w2.Entry().Err(), ErrGaveWay) {
		t.Fatalf("w2 %v, want it to give way to the pull", w2.Entry().Err())
	}
	// Now a publisher and a pull with a viewer: nothing gives way.
	if _, err := p.Publish("live/other", "test"); !errors.Is(err, ErrFull) {
		t.Fatalf("a publisher with every entry fed: %v, want ErrFull", err)
	}
	if n := p.Stats().Entries; n != 2 {
		t.Fatalf("entries %d, want 2", n)
	}
}

// Invariant 3, timing: an idle entry lives until idle_timeout, then its pull
// stops; a viewer returning before then reuses the running pull, and the
// entry's idle time starts again when that viewer leaves. The pool's clock
// moves only when the test moves it.
func TestIdleTimeoutStopsPull(t *testing.T) {
	var runs atomic.Int32
	cfg := testConfig()
	p := newTestPool(t, cfg, func(string) Source { return countingSource{runs: &runs} })
	var elapsed atomic.Int64
	epoch := time.Now()
	p.now = func() time.Time { return epoch.Add(time.Duration(elapsed.Load())) }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	// evictedAt sets the clock to d, evicts what has expired, and says
	// whether e is gone.
	evictedAt := func(e *Entry, d time.Duration) bool {
		elapsed.Store(int64(d))
		p.evictExpired()
		select {
		case <-e.Done():
			return true
		default:
			return false
		}
	}

	s, err := p.Subscribe("live/a", false)
	must(t, err)
	entry := s.Entry()
	s.Close() // idle from 0
	if evictedAt(entry, cfg.IdleTimeout-time.Millisecond) {
		t.Fatal("idle entry evicted before idle_timeout")
	}
	s2, err := p.Subscribe("live/a", false) // back before the timeout
	must(t, err)
	if s2.Entry() != entry {
		t.Fatal("returning viewer got a new entry")
	}
	s2.Close() // idle again, from idle_timeout - 1ms
	if evictedAt(entry, 2*cfg.IdleTimeout-2*time.Millisecond) {
		t.Fatal("idle entry evicted before idle_timeout since its last viewer left")
	}
	elapsed.Store(int64(3 * cfg.IdleTimeout)) // Run evicts it at its next tick
	select {
	case <-entry.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("idle entry not evicted after idle_timeout")
	}
	if !errors.Is(entry.Err(), ErrEvicted) {
		t.Fatalf("entry ended with %v, want ErrEvicted", entry.Err())
	}
	if runs.Load() != 1 {
		t.Fatalf("pulls %d, want 1", runs.Load())
	}
	if n := p.Stats().Entries; n != 0 {
		t.Fatalf("entries %d after eviction, want 0", n)
	}
}

// Invariant 4: the end wakes every reader, each drains what was buffered,
// and the key is free at once for a new entry.
func TestEndIsAnEventForEveryReader(t *testing.T) {
	p := newTestPool(t, testConfig(), nil)
	pub, err := p.Publish("live/a", "test")
	must(t, err)
	startStream(t, pub)
	const readers = 50
	var wg sync.WaitGroup
	results := make([]error, readers)
	counts := make([]int, readers)
	ready := make(chan struct{}, readers)
	for i := range readers {
		sub, err := p.Subscribe("live/a", false)
		must(t, err)
		wg.Go(func() {
			defer sub.Close()
			r := sub.NewReader()
			first, err := r.Next(context.Background(), nil)
			counts[i] = len(first)
			ready <- struct{}{}
			if err != nil {
				results[i] = err
				return
			}
			rest, err := drain(t, r, 5*time.Second)
			counts[i] += len(rest)
			results[i] = err
		})
	}
	for range readers {
		<-ready
	}
	feedGOP(t, pub, 1000, 2)
	pub.Close(nil)
	wg.Wait()
	for i, err := range results {
		if !errors.Is(err, ErrEnded) || !errors.Is(err, ErrSourceGone) {
			t.Fatalf("reader %d ended with %v", i, err)
		}
		// header + 2 seq + GOP (7) + second GOP (5)
		if counts[i] != 1+2+7+5 {
			t.Fatalf("reader %d got %d buffers, want %d", i, counts[i], 15)
		}
	}
	if n := p.Stats(); n.Entries != 0 || n.Subscribers != 0 {
		t.Fatalf("after end: %+v", n)
	}
	pub2, err := p.Publish("live/a", "test")
	must(t, err)
	if pub2.Entry() == pub.Entry() {
		t.Fatal("republish reused the ended entry")
	}
	pub2.Close(nil)
}

// Invariant 5: the source never waits for a reader; a reader that fell out
// of the buffer skips to the newest keyframe.
func TestSlowReaderNeverBlocksSource(t *testing.T) {
	_, pub, _, r, ts, _ := viewedStreamWith(t, testConfig())
	defer pub.Close(nil)
	fed := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < 20 && err == nil; i++ { // 20 GOPs of 9 tags: far more than the 64-tag ring
			ts, err = writeGOP(pub, ts, 4)
		}
		fed <- err
	}()
	select {
	case err := <-fed:
		must(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("source blocked on a reader that does not read")
	}
	bufs, err := r.Next(context.Background(), nil)
	must(t, err)
	if r.Skips() != 1 {
		t.Fatalf("skips %d, want 1", r.Skips())
	}
	if !bytes.Equal(bufs[0][11:len(bufs[0])-4], avcKey) {
		t.Fatal("after a skip the reader did not restart at a keyframe")
	}
}

// A reader's batch holds at most MaxBatch buffers, its first (the GOP
// cache) too; the rest come in the next batches, in order.
func TestBatchesAreBounded(t *testing.T) {
	cfg := testConfig()
	cfg.BufferTags = 1024
	p := newTestPool(t, cfg, nil)
	pub, err := p.Publish("live/a", "test")
	must(t, err)
	defer pub.Close(nil)
	startStream(t, pub)
	ts := feedGOP(t, pub, 1000, 100) // a GOP of 201 tags
	sub, err := p.Subscribe("live/a", false)
	must(t, err)
	defer sub.Close()
	r := sub.NewReader()
	var got [][]byte
	for len(got) < 3+201 {
		b, err := r.Next(context.Background(), nil)
		must(t, err)
		if len(b) > MaxBatch {
			t.Fatalf("a batch of %d buffers, want at most %d", len(b), MaxBatch)
		}
		got = append(got, b...)
	}
	if len(got) != 3+201 || tagTimestamp(got[len(got)-1]) != ts-40 {
		t.Fatalf("%d buffers ending at %d ms, want %d ending at the GOP's last tag at %d ms", len(got), tagTimestamp(got[len(got)-1]), 3+201, ts-40)
	}
}

// Invariant 6: bytes a reader holds are never written again, however far
// the source goes on.
func TestSharedBytesAreImmutable(t *testing.T) {
	p := newTestPool(t, testConfig(), nil)
	pub, err := p.Publish("live/a", "test")
	must(t, err)
	defer pub.Close(nil)
	ts := startStream(t, pub)
	sub, err := p.Subscribe("live/a", false)
	must(t, err)
	defer sub.Close()
	held, err := sub.NewReader().Next(context.Background(), nil)
	must(t, err)
	copies := make([][]byte, len(held))
	for i, b := range held {
		copies[i] = bytes.Clone(b)
	}
	for range 50 {
		ts = feedGOP(t, pub, ts, 5)
	}
	for i := range held {
		if !bytes.Equal(held[i], copies[i]) {
			t.Fatalf("buffer %d changed after it was handed to a reader", i)
		}
	}
}

// slowStopSource is a pull that, when cancelled, takes a moment to stop
// (as a pull closing its upstream connection does) and then records that
// it returned.
type slowStopSource struct{ returned *atomic.Bool }

func (slowStopSource) Name() string { return "slow-stop" }
func (s slowStopSource) Run(ctx context.Context, pub *Publisher) error {
	<-ctx.Done()
	time.Sleep(50 * time.Millisecond)
	s.returned.Store(true)
	return ctx.Err()
}

// Invariant 7: a pull's goroutine ends when its entry ends, and Pool.Close
// returns only once every pull has returned: nothing of a pull outlives
// the pool (a shutdown that went on meanwhile would cut it mid-write).
func TestPoolCloseWaitsForPulls(t *testing.T) {
	var returned atomic.Bool
	p, err := New(testConfig(), quietLog(), func(string) Source { return slowStopSource{returned: &returned} })
	must(t, err)
	sub, err := p.Subscribe("live/a", false)
	must(t, err)
	defer sub.Close()
	p.Close()
	if !returned.Load() {
		t.Fatal("Pool.Close returned before the pull did")
	}
	if !errors.Is(sub.Entry().Err(), ErrPoolClosed) {
		t.Fatalf("entry ended with %v, want ErrPoolClosed", sub.Entry().Err())
	}
}

// A reader starts with header, metadata, sequence headers, then a keyframe.
func TestReaderStartsAtKeyframe(t *testing.T) {
	for _, gop := range []bool{true, false} {
		cfg := testConfig()
		cfg.GOPCache = gop
		p := newTestPool(t, cfg, nil)
		pub, err := p.Publish("live/a", "test")
		must(t, err)
		ts := startStream(t, pub)
		ts = feedGOP(t, pub, ts, 2)
		must(t, pub.WriteTag(TagAudio, ts, aacRaw))
		sub, err := p.Subscribe("live/a", false)
		must(t, err)
		r := sub.NewReader()
		got, err := r.Next(context.Background(), nil)
		must(t, err)
		feedGOP(t, pub, ts+40, 1)
		for len(got) < 5 {
			b, err := r.Next(context.Background(), nil)
			must(t, err)
			got = append(got, b...)
		}
		hdr := got[0]
		if string(hdr[:3]) != "FLV" || hdr[4] != 0x05 {
			t.Fatalf("gop=%v: header %x, want FLV with audio+video flags", gop, hdr)
		}
		if got[1][0] != TagVideo || got[2][0] != TagAudio {
			t.Fatalf("gop=%v: sequence headers not first", gop)
		}
		if got[3][0] != TagVideo || !bytes.Equal(got[3][11:len(got[3])-4], avcKey) {
			t.Fatalf("gop=%v: first media tag is not the keyframe", gop)
		}
		sub.Close()
		pub.Close(nil)
	}
}

// Header flags follow the real tracks: audio-only and video-only streams.
func TestHeaderFlagsMatchTracks(t *testing.T) {
	p := newTestPool(t, testConfig(), nil)
	video, err := p.Publish("live/v", "test")
	must(t, err)
	must(t, video.WriteTag(TagVideo, 0, avcSeq))
	must(t, video.WriteTag(TagVideo, 0, avcKey))
	audio, err := p.Publish("live/a", "test")
	must(t, err)
	must(t, audio.WriteTag(TagAudio, 0, aacSeq))
	for ts := uint32(0); ts <= 1100; ts += 23 {
		must(t, audio.WriteTag(TagAudio, ts, aacRaw))
	}
	for key, want := range map[string]byte{"live/v": 0x01, "live/a": 0x04} {
		sub, err := p.Subscribe(key, false)
		must(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		must(t, sub.Entry().WaitReady(ctx))
		cancel()
		b, err := sub.NewReader().Next(context.Background(), nil)
		must(t, err)
		if b[0][4] != want {
			t.Fatalf("%s: flags %#x, want %#x", key, b[0][4], want)
		}
		sub.Close()
	}
	video.Close(nil)
	audio.Close(nil)
}

func TestSecondPublisherIsRefused(t *testing.T) {
	p := newTestPool(t, testConfig(), nil)
	pub, err := p.Publish("live/a", "test")
	must(t, err)
	if _, err := p.Publish("live/a", "other"); !errors.Is(err, ErrBusy) {
		t.Fatalf("second publish: %v, want ErrBusy", err)
	}
	if pub.Entry().State() != StateLive {
		t.Fatal("refused publish disturbed the first")
	}
	pub.Close(nil)
}

func TestMakeKey(t *testing.T) {
	long := string(bytes.Repeat([]byte("a"), MaxNameLength+1))
	for _, tc := range []struct {
		app, stream string
		ok          bool
	}{
		{"live", "test", true},
		{"live", "cam-1_hd.v2", true},
		{"", "test", false},
		{"live", "", false},
		{"..", "test", false},
		{"live", ".", false},
		{"live", "a/b", false},
		{"live", "a%2fb", false},
		{"live", "a\x00b", false},
		{"live", "a b", false},
		{"live", long, false},
	} {
		_, err := MakeKey(tc.app, tc.stream)
		if (err == nil) != tc.ok {
			t.Errorf("MakeKey(%q, %q) = %v, want ok=%v", tc.app, tc.stream, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrBadKey) {
			t.Errorf("error %v is not ErrBadKey", err)
		}
	}
}

// Readers of every speed race a source that overruns the ring: each sees
// its video frames in the source's order, never one twice, lands on a
// keyframe after every gap (a skip), and sees the last frame before the
// end. Run with -race, it checks the lock-free read path against the
// writer.
func TestReadersRaceTheSource(t *testing.T) {
	p := newTestPool(t, testConfig(), nil)
	pub, err := p.Publish("live/a", "test")
	must(t, err)
	startStream(t, pub)
	frame := func(key bool, n uint32) []byte {
		b := bytes.Clone(avcInter[:5])
		if key {
			b[0] = 0x17
		}
		return binary.BigEndian.AppendUint32(b, n)
	}
	const readers, frames = 8, 4000
	errs := make(chan error, readers)
	var skips atomic.Int64
	for i := range readers {
		sub, err := p.Subscribe("live/a", false)
		must(t, err)
		// Placed (by its first Poll: the header and startStream's GOP)
		// before the source starts: a reader goroutine that is not
		// scheduled until the source is done (a loaded machine, or
		// GOMAXPROCS=1) still has the whole run to read, and falls out of
		// the ring, instead of starting at the last GOP and skipping
		// nothing.
		r := sub.NewReader()
		if _, err := r.Poll(nil); err != nil {
			t.Fatal(err)
		}
		go func() {
			defer sub.Close()
			err := readInOrder(r, frames, time.Duration(i%4)*50*time.Microsecond)
			skips.Add(int64(r.Skips())) // before the report the test waits for
			errs <- err
		}()
	}
	var n uint32
	for ts := uint32(1000); n < frames; ts += 40 {
		n++
		must(t, pub.WriteTag(TagVideo, ts, frame(n%10 == 1, n)))
		must(t, pub.WriteTag(TagAudio, ts, aacRaw))
	}
	pub.Close(nil)
	for range readers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if skips.Load() == 0 {
		t.Error("no reader fell out of the ring: the skip path went untested")
	}
}

// readInOrder reads r to its end, pausing pause after every batch, and
// checks the frame numbers of TestReadersRaceTheSource: in order, a gap
// only before a keyframe, and the last frame (frames) before the end.
func readInOrder(r *Reader, frames uint32, pause time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var last uint32
	for {
		bufs, err := r.Next(ctx, nil)
		for _, b := range bufs {
			if len(b) < tagHeaderLen+9+prevSizeLen || b[0] != TagVideo || b[tagHeaderLen+1] != 1 {
				continue // header, metadata, sequence header, audio
			}
			body := b[tagHeaderLen : len(b)-prevSizeLen]
			if len(body) != 9 {
				continue // the first GOP of startStream
			}
			n := binary.BigEndian.Uint32(body[5:])
			if n <= last {
				return fmt.Errorf("frame %d after frame %d", n, last)
			}
			if n != last+1 && body[0]>>4 != 1 {
				return fmt.Errorf("frame %d after frame %d: a skip that did not land on a keyframe", n, last)
			}
			last = n
		}
		if errors.Is(err, ErrEnded) && last != frames {
			return fmt.Errorf("ended after frame %d, before the last frame %d: %w", last, frames, err)
		}
		if errors.Is(err, ErrEnded) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("after frame %d: %w", last, err)
		}
		time.Sleep(pause)
	}
}

// A script tag that is not onMetaData (a cue point), stamped before the
// first audio of a stream without onMetaData, does not make the stream
// audio-only: its timestamp is no audio's, and the video that comes next
// must be in the viewers' FLV header.
func TestCuePointBeforeAudioIsNoAudioTime(t *testing.T) {
	p := newTestPool(t, testConfig(), nil)
	pub, err := p.Publish("live/cue", "test")
	must(t, err)
	defer pub.Close(nil)
	must(t, pub.WriteTag(TagAudio, 1000, aacSeq))
	must(t, pub.WriteTag(TagAudio, 1000, aacRaw))
	cue := append([]byte{0x02, 0, 10}, "onCuePoint"...)
	must(t, pub.WriteTag(TagScript, 0, append(cue, 0x05)))
	sub, err := p.Subscribe("live/cue", false)
	must(t, err)
	defer sub.Close()
	select {
	case <-sub.Entry().Ready():
		t.Fatal("ready as audio-only after 0 ms of audio and a cue point stamped before it")
	default:
	}
	must(t, pub.WriteTag(TagVideo, 1000, avcSeq))
	must(t, pub.WriteTag(TagVideo, 1000, avcKey))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	b, err := sub.NewReader().Next(ctx, nil)
	must(t, err)
	if b[0][4] != 0x05 {
		t.Fatalf("flags %#x, want audio and video (0x05)", b[0][4])
	}
}

// An operator's Drop ends an entry at once, whatever feeds it: every
// reader drains and sees ErrDropped, the publisher's next tag is refused,
// a pull is cancelled, no reconnect window holds the viewers, and the key
// is free for a new entry. A key without an entry reports false.
func TestDropEndsTheEntryForEveryone(t *testing.T) {
	cfg := testConfig()
	cfg.ReconnectWindow = time.Hour
	var runs atomic.Int32
	p := newTestPool(t, cfg, func(key string) Source {
		if key == "live/pulled" {
			return countingSource{runs: &runs}
		}
		return nil
	})
	pub, err := p.Publish("live/a", "test")
	must(t, err)
	ts := startStream(t, pub)
	const readers = 20
	var wg sync.WaitGroup
	results := make([]error, readers)
	for i := range readers {
		sub, err := p.Subscribe("live/a", false)
		must(t, err)
		wg.Go(func() {
			defer sub.Close()
			_, results[i] = drain(t, sub.NewReader(), 5*time.Second)
		})
	}
	pulled, err := p.Subscribe("live/pulled", false)
	must(t, err)
	defer pulled.Close()
	must(t, pulled.Entry().WaitReady(context.Background()))

	if p.Drop("live/none") {
		t.Fatal("Drop of a key without an entry reported true")
	}
	if !p.Drop("live/a") || !p.Drop("live/pulled") {
		t.Fatal("Drop of a live entry reported false")
	}
	wg.Wait()
	for i, err := range results {
		if !errors.Is(err, ErrEnded) || !errors.Is(err, ErrDropped) {
			t.Fatalf("reader %d ended with %v, want ErrDropped", i, err)
		}
	}
	if err := pub.WriteTag(TagVideo, ts, avcKey); err == nil {
		t.Fatal("the publisher's next tag was taken after the drop")
	}
	if _, err := drain(t, pulled.NewReader(), 5*time.Second); !errors.Is(err, ErrDropped) {
		t.Fatalf("the pulled entry's reader ended with %v, want ErrDropped", err)
	}
	pub.Close(nil)
	if s := p.Stats(); s.Entries != 0 {
		t.Fatalf("entries after the drops: %+v", s)
	}
	pub2, err := p.Publish("live/a", "test")
	must(t, err)
	defer pub2.Close(nil)
	if pub2.Entry() == pub.Entry() {
		t.Fatal("the publisher coming back got the dropped entry")
	}
}

// A publisher silent for pool.publisher_takeover gives its entry up to a
// new publisher of the key: the viewers stay on the same entry and read
// on, spliced, with timestamps that keep rising; the old publisher's next
// tag is refused and its close changes nothing. A publisher that is not
// silent keeps its stream (ErrBusy), as does every publisher with the
// takeover off.
func TestSilentPublisherIsTakenOver(t *testing.T) {
	cfg := testConfig()
	cfg.PublisherTakeover = 200 * time.Millisecond
	p, old, sub, r, ts, _ := viewedStreamWith(t, cfg)
	if _, err := p.Publish("live/a", "new"); !errors.Is(err, ErrBusy) {
		t.Fatalf("a second publisher while the first sends: %v, want ErrBusy", err)
	}
	time.Sleep(2 * cfg.PublisherTakeover)
	pub, err := p.Publish("live/a", "new")
	if err != nil {
		t.Fatalf("a second publisher after the first fell silent: %v", err)
	}
	if pub.Entry() != sub.Entry() {
		t.Fatal("the new publisher got a new entry; its viewers were left on the old one")
	}
	if !old.Replaced() || pub.Replaced() {
		t.Fatalf("Replaced: old %v, new %v; want true, false", old.Replaced(), pub.Replaced())
	}
	if err := old.WriteTag(TagVideo, ts, avcInter); !errors.Is(err, ErrStale) {
		t.Fatalf("the old publisher's next tag: %v, want ErrStale", err)
	}
	old.Close(nil)
	// The new publisher starts its clock at 0, as a new encoder does.
	must(t, pub.WriteTag(TagVideo, 0, avcSeq))
	must(t, pub.WriteTag(TagAudio, 0, aacSeq))
	feedGOP(t, pub, 0, 3)
	last := int64(-1)
	var keys int
	for keys < 1 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		batch, err := r.Next(ctx, nil)
		cancel()
		if err != nil {
			t.Fatalf("a viewer of the taken-over stream: %v", err)
		}
		for _, b := range batch {
			if len(b) < 12 {
				continue
			}
			ts := tagTimestamp(b)
			if int64(ts) < last {
				t.Fatalf("timestamp %d after %d across the takeover", ts, last)
			}
			last = int64(ts)
			if b[0] == TagVideo && b[11] == avcKey[0] && b[12] == 1 {
				keys++
			}
		}
	}
	if last < int64(ts) {
		t.Fatalf("the new publisher's keyframe at %d, before the old one's last tag at %d", last, ts)
	}
	if s := p.Stats(); s.Takeovers != 1 {
		t.Fatalf("takeovers %d, want 1", s.Takeovers)
	}
	pub.Close(nil)

	cfg.PublisherTakeover = 0
	off := newTestPool(t, cfg, nil)
	first, err := off.Publish("live/b", "first")
	must(t, err)
	defer first.Close(nil)
	time.Sleep(100 * time.Millisecond)
	if _, err := off.Publish("live/b", "second"); !errors.Is(err, ErrBusy) {
		t.Fatalf("with publisher_takeover 0: %v, want ErrBusy", err)
	}
}

// Every tag wakes every reader waiting in Next, however close it lands to
// the reader's last look: the source sends a tag only when each reader
// has read the one before, so each tag lands while some reader is
// between finding nothing ready and starting to wait. A reader that took
// its wake-up channel after looking (not before) misses such a tag and
// waits for the next one, which never comes. (That window is a few
// instructions wide; the race detector, which the README's test command
// runs, widens it enough for this test to land in it within a few
// hundred tags.)
func TestEveryTagWakesEveryReader(t *testing.T) {
	p := newTestPool(t, testConfig(), nil)
	pub, err := p.Publish("live/a", "test")
	must(t, err)
	startStream(t, pub)
	frame := func(n uint32) []byte { return binary.BigEndian.AppendUint32(bytes.Clone(avcInter), n) }
	const readers, frames = 4, 3000
	progress := make([]chan uint32, readers) // each reader's last frame read
	errs := make(chan error, readers)
	for i := range readers {
		sub, err := p.Subscribe("live/a", false)
		must(t, err)
		progress[i] = make(chan uint32, frames)
		go func() {
			defer sub.Close()
			r := sub.NewReader()
			for {
				bufs, err := r.Next(context.Background(), nil)
				for _, b := range bufs {
					if len(b) == tagHeaderLen+len(avcInter)+4+prevSizeLen && b[0] == TagVideo {
						progress[i] <- binary.BigEndian.Uint32(b[tagHeaderLen+len(avcInter):])
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	ts := uint32(1000)
	for n := uint32(1); n <= frames; n++ {
		must(t, pub.WriteTag(TagVideo, ts, frame(n)))
		ts += 40
		for i := range readers {
			select {
			case got := <-progress[i]:
				if got != n {
					t.Fatalf("reader %d read frame %d, want %d", i, got, n)
				}
			case <-time.After(5 * time.Second):
				pub.Close(nil)
				t.Fatalf("reader %d was not woken for frame %d: it waits on an entry that sent it", i, n)
			}
		}
	}
	pub.Close(nil)
	for range readers {
		if err := <-errs; !errors.Is(err, ErrEnded) {
			t.Errorf("reader ended with %v", err)
		}
	}
}

// feedingSource is a pull that sends a GOP a 40 ms frame at a time,
// stamped from 0, until it is cancelled, which it reports.
type feedingSource struct{ stopped chan struct{} }

func (feedingSource) Name() string { return "feeding" }
func (s feedingSource) Run(ctx context.Context, pub *Publisher) error {
	defer close(s.stopped)
	if err := pub.WriteTag(TagVideo, 0, avcSeq); err != nil {
		return err
	}
	for ts := uint32(0); ; ts += 40 {
		body := avcInter
		if ts%400 == 0 {
			body = avcKey
		}
		if err := pub.WriteTag(TagVideo, ts, body); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// A stream published here is served from here, never pulled: a publisher
// of a key that a pull feeds takes it. With viewers, the pull is stopped
// and the publisher's stream is spliced on for them, whatever the pull's
// state (connecting, playing); with none (idle), the pulled entry ends
// and the publisher gets a new one. Before, the publisher was refused as
// busy for as long as the pull ran.
func TestPublisherTakesTheKeyFromAPull(t *testing.T) {
	t.Run("playing", func(t *testing.T) {
		stopped := make(chan struct{})
		p := newTestPool(t, testConfig(), func(string) Source { return feedingSource{stopped} })
		sub, err := p.Subscribe("live/a", false)
		must(t, err)
		defer sub.Close()
		must(t, sub.Entry().WaitReady(context.Background()))
		r := sub.NewReader()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := r.Next(ctx, nil); err != nil {
			t.Fatal(err)
		}
		pub, err := p.Publish("live/a", "test")
		if err != nil {
			t.Fatalf("publish of a pulled key: %v", err)
		}
		defer pub.Close(nil)
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			t.Fatal("the pull still runs after a publisher took its key")
		}
		if pub.Entry() != sub.Entry() {
			t.Fatal("the publisher got a new entry: the pull's viewer was left behind")
		}
		pubKey := []byte{0x17, 1, 0, 0, 0, 7, 7}
		must(t, pub.WriteTag(TagVideo, 0, avcSeq))
		must(t, pub.WriteTag(TagVideo, 0, pubKey))
		var last uint32
		for found := false; !found; {
			bufs, err := r.Next(ctx, nil)
			if err != nil {
				t.Fatalf("the viewer, before the publisher's keyframe: %v", err)
			}
			for _, b := range bufs {
				if len(b) < tagHeaderLen || b[0] != TagVideo {
					continue
				}
				ts := uint32(b[4])<<16 | uint32(b[5])<<8 | uint32(b[6]) | uint32(b[7])<<24
				if ts < last {
					t.Fatalf("the viewer's video went back from %d to %d ms", last, ts)
				}
				last = ts
				found = found || bytes.Equal(b[tagHeaderLen:len(b)-prevSizeLen], pubKey)
			}
		}
		if st := sub.Entry().State(); st != StateLive {
			t.Fatalf("the entry is %s, want live", st)
		}
	})
	t.Run("connecting", func(t *testing.T) {
		p := newTestPool(t, testConfig(), func(string) Source { return blockingSource{} })
		sub, err := p.Subscribe("live/a", false)
		must(t, err)
		defer sub.Close()
		pub, err := p.Publish("live/a", "test")
		if err != nil {
			t.Fatalf("publish of a key whose pull connects: %v", err)
		}
		defer pub.Close(nil)
		startStream(t, pub)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := sub.Entry().WaitReady(ctx); err != nil {
			t.Fatalf("the viewer waiting for the pull, after the publisher's keyframe: %v", err)
		}
	})
	t.Run("idle", func(t *testing.T) {
		stopped := make(chan struct{})
		p := newTestPool(t, testConfig(), func(string) Source { return feedingSource{stopped} })
		sub, err := p.Subscribe("live/a", false)
		must(t, err)
		must(t, sub.Entry().WaitReady(context.Background()))
		pulled := sub.Entry()
		sub.Close() // idle: the pull runs on for idle_timeout
		pub, err := p.Publish("live/a", "test")
		if err != nil {
			t.Fatalf("publish of a key an idle pull feeds: %v", err)
		}
		defer pub.Close(nil)
		if pub.Entry() == pulled {
			t.Fatal("the publisher got the idle pulled entry")
		}
		select {
		case <-pulled.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("the idle pulled entry did not end")
		}
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			t.Fatal("the idle pull still runs")
		}
		if n := p.Stats(); n.Entries != 1 || n.Evictions != 0 {
			t.Fatalf("%+v, want the publisher's entry alone, and no eviction counted", n)
		}
		if err := pulled.Err(); !errors.Is(err, ErrPublished) {
			t.Fatalf("the idle pulled entry ended with %v, want %v", err, ErrPublished)
		}
	})
}

// The streams' bytes in add up to the pool's: both count the media bytes
// their sources sent, not the FLV framing around them.
func TestStreamBytesInAddUpToTheTotal(t *testing.T) {
	p := newTestPool(t, testConfig(), nil)
	var sent uint64
	for _, key := range []string{"live/a", "live/b"} {
		pub, err := p.Publish(key, "test")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pub.Close(nil) })
		for i, body := range [][]byte{{0x17, 0, 0, 0, 0, 1, 2, 3}, {0x17, 1, 0, 0, 0, 9}, {0xaf, 1, 4, 5, 6}} {
			if err := pub.WriteTag([]uint8{TagVideo, TagVideo, TagAudio}[i], uint32(i*40), body); err != nil {
				t.Fatal(err)
			}
			sent += uint64(len(body))
		}
	}
	var streams uint64
	for _, s := range p.Snapshots() {
		streams += s.BytesIn
	}
	if total := p.Stats().BytesIn; streams != sent || total != sent {
		t.Fatalf("streams' bytes in %d, total %d, want both the %d media bytes sent", streams, total, sent)
	}
}

// A tag a returning source sends before its keyframe, which its viewers
// do not get (they resume at the keyframe), is media the source sent all
// the same: the stream's bytes in count it, as the pool's total does.
func TestDroppedBeforeKeyframeCountsInBytesIn(t *testing.T) {
	p, pub, _, _, _, _ := viewedStream(t)
	pub.Close(ErrSourceGone)
	pub2, err := p.Publish("live/a", "second")
	must(t, err)
	defer pub2.Close(nil)
	must(t, pub2.WriteTag(TagVideo, 0, avcInter)) // before its keyframe: not relayed
	snap, ok := p.Lookup("live/a")
	if !ok {
		t.Fatal("live/a has no entry")
	}
	if total := p.Stats().BytesIn; snap.BytesIn != total {
		t.Fatalf("stream's bytes in %d, pool's total %d: the same source's media bytes", snap.BytesIn, total)
	}
}

// An attempt's time to its first tag is counted in the bucket of the
// first bound it is within, a time over every bound in the last.
func TestFirstTagTimesBuckets(t *testing.T) {
	var f FirstTagTimes
	for _, d := range []time.Duration{0, 10 * time.Millisecond, 11 * time.Millisecond, time.Second, time.Minute} {
		f.Observe(d)
	}
	want := [11]uint64{2, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1}
	if f.Counts != want {
		t.Fatalf("counts %v, want %v", f.Counts, want)
	}
	if sum := 10*time.Millisecond + 11*time.Millisecond + time.Second + time.Minute; f.Sum != sum {
		t.Fatalf("sum %s, want %s", f.Sum, sum)
	}
}

// A legacy video command frame (frame type 5: seeking's start or end) is
// no sequence header, whatever its next byte: it must not end the GOP
// cache as a changed configuration would, nor replace the cached header.
func TestCommandFrameIsNoSequenceHeader(t *testing.T) {
	for _, body := range [][]byte{{0x57, 0}, {0x57, 1}, {0x52, 0}, {0xd0, 0, 'h', 'v', 'c', '1'}} {
		if key, seq := classify(TagVideo, body); key || seq {
			t.Errorf("% x: keyframe %v, sequence header %v; want neither", body, key, seq)
		}
	}
	p, pub, ts := publishedWithin(t, 1<<20)
	must(t, pub.WriteTag(TagVideo, ts, []byte{0x57, 0}))
	sub, err := p.Subscribe("live/a", false)
	must(t, err)
	defer sub.Close()
	bufs, err := sub.NewReader().Poll(nil)
	must(t, err)
	if len(bufs) < 4 || bufs[3][11]>>4 != 1 {
		t.Fatalf("a viewer after a command frame got %d buffers, want the headers and the cached GOP from its keyframe", len(bufs))
	}
	if !bytes.Equal(bufs[1][11:len(bufs[1])-4], avcSeq) {
		t.Fatal("the command frame replaced the cached sequence header")
	}
}
