package gateway

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"flvgw/pool"
)

// groupSize is how many caught-up viewers one writer goroutine serves.
const groupSize = 64

// writerGroups serves the viewers of each entry that have caught up with
// it from a few goroutines instead of one each: on a new tag, each group's
// goroutine is woken once and writes to its members in turn, where one
// goroutine per viewer would be woken per viewer. A group never blocks on
// a viewer: its writes are non-blocking, and a viewer whose socket does
// not take a whole chunk is handed back to its own session, which
// finishes that chunk with a blocking write (write_timeout applies) and
// rejoins once it has caught up again. So a slow viewer costs only itself.
//
// Ownership: a viewer belongs to its session goroutine, except between
// join (under the group's mu) and the handback it receives, or its removal
// under the group's mu; the group touches a viewer only under its mu.
type writerGroups struct {
	mu      sync.Mutex
	byEntry map[*pool.Entry]*entryGroups
}

// entryGroups are the writer groups of one entry.
type entryGroups struct {
	list []*writerGroup // under writerGroups.mu
	// changes counts the groups started and retired and the places freed
	// in a group (handback, removal), for a joiner looking through list
	// to start over rather than start a group while one has room.
	changes atomic.Uint64
}

// writerGroup is one writer goroutine and its members, all of one entry.
type writerGroup struct {
	e       *pool.Entry
	set     *entryGroups // the groups of e it is one of
	mu      sync.Mutex
	members []*viewer
	// size is how many members the group has, for join to read without
	// mu and so skip full groups without waiting for their passes. It is
	// changed under mu, never below len(members) but for the members a
	// pass has handed back already (so that they may rejoin at once).
	size    atomic.Int32
	kick    chan struct{}
	retired bool // its goroutine has ended; join skips it
	scratch iovScratch
}

// handback is why a group returned a viewer to its session.
type handback struct {
	err     error  // the reader's: the entry ended
	why     string // the session ends (write error, lag_disconnect)
	pending bool   // v.pending holds the rest of a chunk to finish
}

// serve hands v to a writer group of e and waits until the group hands it
// back or ctx is done (then ctx's error comes back as hb.err).
func (w *writerGroups) serve(ctx context.Context, g *Server, e *pool.Entry, v *viewer) handback {
	grp, started := w.join(e, v)
	if started {
		go w.run(g, grp)
	}
	select {
	case hb := <-v.back:
		return hb
	case <-ctx.Done():
		if grp.remove(v) {
			grp.poke()
			return handback{err: ctx.Err()}
		}
		return <-v.back // handed back meanwhile
	}
}

// join adds v to a group of e with room, or to a new one, whose goroutine
// the caller starts (started: a new one). It holds no
// other group's lock while it waits for one, and waits only for groups
// that had room: a group holds its own lock through a pass, and on a
// saturated machine a joiner that waited for every full group's pass in
// turn went seconds without a write. It takes one group's lock at a
// time and never while holding w.mu, and it allocates nothing unless it
// starts a group: a viewer handed back may rejoin many times a second.
func (w *writerGroups) join(e *pool.Entry, v *viewer) (grp *writerGroup, started bool) {
	// Where the look through e's groups is, and of which list.
	var (
		from int
		seen *entryGroups
		gen  uint64
	)
	for {
		w.mu.Lock()
		set := w.byEntry[e]
		if set != nil {
			if n := set.changes.Load(); set != seen || n != gen {
				// A group started or retired, or a place was freed: look
				// through the list from its start, so that viewers
				// joining together do not each start a group.
				from, seen, gen = 0, set, n
			}
		}
		grp = nil
		for set != nil && from < len(set.list) && grp == nil {
			if set.list[from].size.Load() < groupSize {
				grp = set.list[from]
			}
			from++
		}
		if grp == nil {
			// Every group of an unchanged list was full when looked at
			// (a place freed since the last look at changes is missed:
			// then one group more, which retires once empty).
			grp = w.start(e, set, v)
			w.mu.Unlock()
			return grp, true
		}
		w.mu.Unlock()
		grp.mu.Lock()
		if !grp.retired && len(grp.members) < groupSize {
			grp.members = append(grp.members, v)
			grp.size.Store(int32(len(grp.members)))
			grp.mu.Unlock()
			grp.poke() // v may have missed the wake-up its group waits for
			return grp, false
		}
		grp.mu.Unlock()
	}
}

// start makes a group of e (set: e's groups, nil when it has none) with v
// its one member. w.mu is held.
func (w *writerGroups) start(e *pool.Entry, set *entryGroups, v *viewer) *writerGroup {
	if set == nil {
		set = &entryGroups{}
		if w.byEntry == nil {
			w.byEntry = make(map[*pool.Entry]*entryGroups)
		}
		w.byEntry[e] = set
	}
	grp := &writerGroup{e: e, set: set, members: make([]*viewer, 1, groupSize), kick: make(chan struct{}, 1)}
	grp.members[0] = v
	grp.size.Store(1)
	set.list = append(set.list, grp)
	set.changes.Add(1)
	return grp
}

// count reports the writer goroutines running.
func (w *writerGroups) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, set := range w.byEntry {
		n += len(set.list)
	}
	return n
}

// retire ends grp if it has no member left.
func (w *writerGroups) retire(grp *writerGroup) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	grp.mu.Lock()
	defer grp.mu.Unlock()
	if len(grp.members) > 0 {
		return false
	}
	grp.retired = true
	set := grp.set // grp is in its list, and the list is e's until empty
	set.changes.Add(1)
	i := slices.Index(set.list, grp)
	set.list = slices.Delete(set.list, i, i+1)
	if len(set.list) == 0 {
		delete(w.byEntry, grp.e)
	}
	return true
}

// remove takes v out of grp, if it is still a member.
func (grp *writerGroup) remove(v *viewer) bool {
	grp.mu.Lock()
	defer grp.mu.Unlock()
	if i := slices.Index(grp.members, v); i >= 0 {
		grp.members = slices.Delete(grp.members, i, i+1)
		grp.size.Store(int32(len(grp.members)))
		grp.set.changes.Add(1)
		return true
	}
	return false
}

func (grp *writerGroup) poke() {
	select {
	case grp.kick <- struct{}{}:
	default:
	}
}

// run is a group's goroutine: on every wake-up of its entry (or a poke) it
// writes what is ready to each member, and hands back those it cannot keep.
func (w *writerGroups) run(g *Server, grp *writerGroup) {
	for {
		wake := grp.e.Wake() // before polling: a later tag closes it
		grp.mu.Lock()
		kept := grp.members[:0]
		more := false // a member got a full batch and may have more ready
		for _, v := range grp.members {
			hb, done, full := g.serveMember(v, &grp.scratch)
			if done {
				grp.size.Add(-1) // its place is free for a rejoin now
				grp.set.changes.Add(1)
				v.back <- hb // buffered; v is no member from here on
				continue
			}
			more = more || full
			kept = append(kept, v)
		}
		clear(grp.members[len(kept):])
		grp.members = kept
		grp.size.Store(int32(len(kept)))
		empty := len(kept) == 0
		grp.mu.Unlock()
		if empty && w.retire(grp) {
			return
		}
		if more {
			grp.poke() // no tag may come to wake it for what is left
		}
		select {
		case <-wake:
		case <-grp.kick:
		case <-grp.e.Done():
			// The entry ended, perhaps after this pass took its last
			// tags: the next pass hands every member back (ErrEnded),
			// and no wake-up would come for it.
		}
	}
}

// serveMember writes to v what its reader has ready, without blocking, and
// says whether v goes back to its session (and why), and whether the batch
// was full (more may be ready).
func (g *Server) serveMember(v *viewer, scratch *iovScratch) (hb handback, done, full bool) {
	batch, err := v.r.Poll(v.bufs[:1])
	g.countSkips(v)
	if len(batch) > 1 {
		full = len(batch)-1 >= pool.MaxBatch // a skip adds the headers it re-sends
		arrival := v.r.BatchArrival()
		framed, n, total, werr := v.tryChunk(batch, scratch)
		if werr != nil {
			clear(batch)
			return handback{why: fmt.Sprintf("viewer write: %v", werr)}, true, false
		}
		if v.wrote < total {
			g.metrics.handbacks.Inc()
			v.keepPending(framed, v.wrote, n, arrival)
			clear(batch)
			return handback{pending: true}, true, false
		}
		clear(batch)
		v.sent += uint64(n)
		if why := g.delivered(v.r.Entry(), n, arrival, v.began); why != "" {
			return handback{why: why}, true, false
		}
	}
	if err != nil {
		return handback{err: err}, true, false
	}
	return handback{}, false, full
}

// tryChunk frames batch[1:] as one HTTP chunk and writes what the socket
// takes now with one vectored write: framed is the chunk's buffers, n its
// FLV bytes, total its length with framing, and v.wrote what was written.
func (v *viewer) tryChunk(batch [][]byte, scratch *iovScratch) (framed [][]byte, n, total int, err error) {
	framed, n, total = v.frameChunk(batch)
	return framed, n, total, v.writeNow(framed, scratch)
}

// keepPending keeps what of the framed chunk is left after written bytes,
// for the session to finish.
func (v *viewer) keepPending(framed [][]byte, written, n int, arrival int64) {
	v.pending = v.pending[:0]
	for _, b := range framed {
		if written >= len(b) {
			written -= len(b)
			continue
		}
		v.pending = append(v.pending, b[written:])
		written = 0
	}
	v.pendN, v.pendAt = n, arrival
}
