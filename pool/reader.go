package pool

import (
	"context"
	"fmt"
	"time"
)

// MaxBatch bounds how many buffers one Next call returns, so a batch fits
// one vectored write (IOV_MAX is 1024 on Linux) with room for framing.
const MaxBatch = 512

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
func (r *Reader) Next(ctx context.Context, dst [][]byte) ([][]byte, error) {
	e := r.e
	start := len(dst)
	for {
		now := time.Now().UnixNano()
		e.mu.RLock()
		if !r.primed {
			dst = r.primeLocked(dst)
		}
		dst = r.collectLocked(dst, start, now)
		state, notify, endErr := e.state, e.notify, e.endErr
		e.mu.RUnlock()

		if len(dst) > start {
			return dst, nil
		}
		if state == StateClosed {
			return dst, fmt.Errorf("%w: %w", ErrEnded, endErr)
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return dst, ctx.Err()
		}
	}
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

func (r *Reader) collectLocked(dst [][]byte, start int, now int64) [][]byte {
	e := r.e
	var oldest uint64
	if size := uint64(len(e.ring)); e.head > size {
		oldest = e.head - size
	}
	lagging := r.maxLag > 0 && r.cursor < e.head && r.cursor >= oldest &&
		now-e.ring[r.cursor&e.mask].Arrival > r.maxLag && e.hasKeyframe && e.gopStart > r.cursor
	if r.cursor < oldest || lagging {
		// Overwritten before this reader took it, or too far behind: skip
		// to the newest keyframe.
		r.skips++
		saved := r.gopCache
		r.gopCache = true
		r.startLocked()
		r.gopCache = saved
	}
	r.arrival = 0
	if r.cursor < e.head {
		r.arrival = e.ring[r.cursor&e.mask].Arrival
	}
	for ; r.cursor < e.head && len(dst)-start < MaxBatch; r.cursor++ {
		t := &e.ring[r.cursor&e.mask]
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
	return dst
}
