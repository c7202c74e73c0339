package pool

import (
	"context"
	"fmt"
	"time"
)

// MaxBatch bounds how many buffers one Next call returns. A live batch is
// a few tags; a viewer's first batch (the GOP cache) or a catching-up
// viewer's may be hundreds, and goes out in several writes of at most
// MaxBatch. A socket keeps the iovec array of its largest vectored write
// for its whole life (Go's poll.FD caches it), so the bound is memory per
// viewer as much as it is IOV_MAX (1024 on Linux).
const MaxBatch = 64

// Reader is one viewer's cursor into an entry. It is not safe for
// concurrent use; each viewer owns its Reader.
type Reader struct {
	e        *Entry
	gopCache bool
	maxLag   int64 // nanoseconds; 0: skip only on overflow
	arrival  int64 // Arrival of the first tag of the last batch
	primed   bool
	synced   bool // has reached a keyframe (always true without video)
	cursor   uint64
	skips    int
}

// BatchArrival is when the oldest tag of the last batch Next returned
// reached the entry (Unix nanoseconds; 0 if the batch held only headers):
// now minus it is the delivery delay of that batch.
func (r *Reader) BatchArrival() int64 { return r.arrival }

// Skips counts how often this reader fell out of the buffer and jumped
// forward to the newest keyframe.
func (r *Reader) Skips() int { return r.skips }

// Next appends (after any buffers dst already holds) to dst the wire bytes of every tag ready for this viewer and
// returns the extended slice. The first call starts with the FLV header,
// onMetaData and the sequence headers, then the GOP from the last keyframe
// (or, without the GOP cache, the next keyframe).
//
// Next blocks until at least one buffer is ready, the entry has ended and
// this reader has drained it (an error wrapping ErrEnded), or ctx is done
// (ctx.Err()). The returned byte slices are shared and must not be written.
// The entry must be ready (see Entry.WaitReady) before the first call.
//
// A reader that keeps up takes no lock: it loads the ring's slots and the
// entry's wake channel atomically. It takes the entry's read lock only to
// start, to skip forward when it fell behind, and to learn why the entry
// ended.
func (r *Reader) Next(ctx context.Context, dst [][]byte) ([][]byte, error) {
	e := r.e
	for {
		wake := *e.wake.Load() // before published: a later tag closes it
		out, err := r.Poll(dst)
		if len(out) > len(dst) || err != nil {
			return out, err
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return dst, ctx.Err()
		}
	}
}

// Wake returns a channel closed at the entry's next tag or its end. Take it
// before Poll: a tag published after Poll looked always closes it.
func (e *Entry) Wake() <-chan struct{} { return *e.wake.Load() }

// Poll is Next without the wait: it appends what is ready now (nothing if
// nothing is), or returns an error wrapping ErrEnded once the entry ended
// and this reader drained it.
func (r *Reader) Poll(dst [][]byte) ([][]byte, error) {
	e := r.e
	start := len(dst)
	if !r.primed {
		e.mu.RLock()
		dst = r.primeLocked(dst)
		e.mu.RUnlock()
	}
	var now int64
	if r.maxLag > 0 {
		now = time.Now().UnixNano()
	}
	r.arrival = 0
	var behind bool
	dst, behind = r.collect(dst, start, now, true)
	if behind {
		e.mu.RLock()
		from := r.cursor
		r.skipLocked(now)
		dst = r.skippedHeadersLocked(dst, from)
		dst, _ = r.collect(dst, start, now, false)
		e.mu.RUnlock()
	}
	if len(dst) > start {
		return dst, nil
	}
	if e.closed.Load() && r.cursor >= e.published.Load() {
		e.mu.RLock()
		endErr := e.endErr
		e.mu.RUnlock()
		return dst, fmt.Errorf("%w: %w", ErrEnded, endErr)
	}
	return dst, nil
}

func (r *Reader) primeLocked(dst [][]byte) [][]byte {
	e := r.e
	r.primed = true
	dst = append(dst, e.header)
	for _, t := range []*Tag{e.metadata, e.videoSeq, e.audioSeq} {
		if t != nil {
			dst = append(dst, t.Data)
		}
	}
	r.startLocked()
	return dst
}

// startLocked places the cursor at the newest keyframe if the GOP cache
// allows, otherwise at the live edge, waiting for the next keyframe.
func (r *Reader) startLocked() {
	e := r.e
	hasVideo := e.tracksLocked().Video
	if r.gopCache && e.hasKeyframe {
		r.cursor = e.gopStart
		r.synced = true
		return
	}
	r.cursor = e.head
	r.synced = !hasVideo
}

// skipLocked moves a reader that fell out of the ring, or lags more than
// maxLag behind, to the newest keyframe. e.mu held.
func (r *Reader) skipLocked(now int64) {
	e := r.e
	oldest := e.tail
	lagging := false
	if t := e.slot(r.cursor); t != nil && r.maxLag > 0 && r.cursor < e.head {
		lagging = now-t.Arrival > r.maxLag && e.hasKeyframe && e.gopStart > r.cursor
	}
	if r.cursor < oldest || lagging {
		r.skips++
		saved := r.gopCache
		r.gopCache = true
		r.startLocked()
		r.gopCache = saved
	}
}

// skippedHeadersLocked appends the current onMetaData and sequence headers
// if the skip from from to the cursor jumped over them: the keyframe the
// reader resumes at may need them (a resolution change while it was
// behind), and its decoder has only the older ones. e.mu held.
func (r *Reader) skippedHeadersLocked(dst [][]byte, from uint64) [][]byte {
	for _, t := range []*Tag{r.e.metadata, r.e.videoSeq, r.e.audioSeq} {
		if t != nil && t.seq >= from && t.seq < r.cursor {
			dst = append(dst, t.Data)
		}
	}
	return dst
}

// collect appends the tags from the cursor to the published head (it needs
// no lock), and sets arrival if it is not set yet (a batch may span a skip:
// its arrival stays that of its first tag). It stops and reports behind
// when the cursor's tag was overwritten or (with checkLag) is older than
// maxLag: the caller then skips under the entry's lock.
func (r *Reader) collect(dst [][]byte, start int, now int64, checkLag bool) ([][]byte, bool) {
	e := r.e
	head := e.published.Load()
	for ; r.cursor < head && len(dst)-start < MaxBatch; r.cursor++ {
		t := e.slot(r.cursor)
		if t == nil {
			return dst, true // overwritten
		}
		if r.arrival == 0 {
			if checkLag && r.maxLag > 0 && now-t.Arrival > r.maxLag && len(dst) == start {
				return dst, true
			}
			r.arrival = t.Arrival
		}
		if !r.synced {
			switch {
			case t.Type == TagVideo && t.Keyframe:
				r.synced = true
			case t.Type == TagScript || t.SeqHeader:
			default:
				continue
			}
		}
		dst = append(dst, t.Data)
	}
	return dst, false
}

// Entry is the entry this reader reads.
func (r *Reader) Entry() *Entry { return r.e }
