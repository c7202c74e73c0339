// Package pool holds flvgw's relay entries: one Entry per stream key
// ("app/stream"), shared by every viewer of that stream and fed by exactly
// one source (a publisher of the embedded origin or an upstream pull).
//
// An entry keeps its tags pre-serialized in a ring buffer. Its source
// appends; each viewer reads at its own cursor (Reader), so the source never
// waits for a viewer, and a viewer that falls out of the ring skips to the
// newest keyframe. The ring holds at most pool.buffer_tags tags and
// pool.buffer_bytes of them: past either, the oldest go. Tag bytes are
// immutable once appended and shared by all viewers. The GOP cache is the
// part of the ring since the newest keyframe, plus the cached onMetaData
// and sequence headers.
//
// # Lifecycle
//
// An entry's state only moves forward, but for a reconnect
// (Live -> Reconnecting -> Live); "Recon." is StateReconnecting:
//
//	from      event                               to        owner (the only caller)
//	(none)    Subscribe(wait) / pull resolver     Waiting   Pool.Subscribe
//	(none)    Publish                             Live      Pool.Publish
//	Waiting   Publish (a publisher arrives)       Live      Pool.Publish
//	Waiting   first tag of a pull                 Live      Publisher.WriteTag (pull)
//	Waiting   last waiter leaves, no source       Closed    Pool.release
//	Waiting   no source, and a publisher or pull  Closed    Pool.Publish / Pool.Subscribe
//	          needs its place in max_entries                (giveWayLocked, oldest first)
//	Live      source ends (publisher left,        Closed    Publisher.Close -> Pool.sourceEnded
//	          pull broke or was cancelled)
//	Live      source ends while viewers play and  Recon.    Publisher.Close -> Pool.sourceEnded
//	          reconnect_window > 0                          (a pull is restarted at once)
//	Live      a new publisher of the key, the     Recon.    Pool.Publish (takeOverLocked),
//	          current one silent for                -> Live   which attaches the new one
//	          publisher_takeover
//	Recon.    a publisher comes back / the        Live      Pool.Publish / Publisher.WriteTag
//	          restarted pull's first tag
//	Waiting,  a publisher of a key a pull feeds,  Live      Pool.Publish
//	Live,     with viewers: the pull is stopped,            (stopPullForPublisherLocked)
//	Recon.    the publisher spliced on
//	Waiting,  the same, no viewer (idle): the     Closed    Pool.Publish (a new entry
//	Live      pulled entry ends                             for the publisher)
//	Recon.    reconnect_window passes, or the     Closed    Pool (timer) / Pool.release
//	          last viewer leaves
//	Waiting,  evicted: idle (no subscriber) past  Closed    Pool (LRU callback)
//	Live      idle_timeout, or room needed
//	any       Pool.Drop (the streams API's        Closed    Pool.Drop
//	          DELETE: an operator ends it)
//	any       Pool.Close (shutdown)               Closed    Pool.Close
//	Closed    (terminal: no transition)
//
// "Idle" is not a state but a condition: an entry with zero subscribers that
// a pull feeds. Idle entries, and only those, sit in the LRU (golang-lru/v2);
// the LRU's eviction callback closes an entry only if it still has no
// subscriber when the callback runs. A viewer taking an idle entry back
// increments the subscriber count first and removes it from the LRU second,
// so its removal never closes it. An entry fed by a pushing publisher is
// owned by that publisher and is never evicted while the publisher stays.
//
// # References
//
// Subscribe returns a Subscription: the viewer's counted reference. It is
// taken before the viewer does any I/O and released exactly once
// (Subscription.Close is idempotent; callers defer it). Subscriber counts,
// the key map and the LRU are guarded by Pool.mu; an entry's buffer and state
// by Entry.mu; the lock order is Pool.mu then Entry.mu.
//
// The hot path takes neither. A reader that keeps up loads the ring's slots,
// the published head and the wake channel atomically: append stores a
// freshly allocated Tag in its slot, then the head, then a new wake channel,
// and closes the old one; a reader loads the wake channel first, so a tag
// published after its look at the head always wakes it. Each Tag carries its
// sequence number, so a reader tells a slot that was overwritten or
// emptied under it (it skips, under Entry.mu) from the tag it wants. A reader takes Entry.mu
// (shared) only to start, to skip, and to learn why the entry ended.
//
// When an entry closes, it is removed from the key map at once, so the next
// viewer or publisher of that key gets a new entry, never a dead one. Readers
// still holding the closed entry drain what its buffer holds and then see
// ErrEnded; nothing resets or reuses a closed entry, so a reader can never
// observe another stream's data through it.
//
// # Invariants
//
//  1. One source per entry, one entry per key: concurrent first viewers
//     share one entry and one pull (Pool.mu serializes creation).
//  2. Reference before use, released once on every path (Subscription).
//  3. Only idle entries are evictable (onIdleRemoved checks subscribers).
//     An entry waiting for a publisher gives way to a stream with a source
//     when max_entries is reached: its viewers wait for a name nobody
//     feeds, and must not keep a real stream out. It is never reset: it
//     ends (ErrGaveWay) and its key is free.
//  4. The end is an event: Entry.end runs once, closes Done and wakes every
//     reader; the key is free at once.
//  5. The source never waits for a viewer: append only takes Entry.mu.
//  6. Tag bytes are never written after append, nor is a Tag once in a slot.
//  7. A pull's goroutine ends when its entry ends; Pool.Close waits for it.
//
// Across a reconnect the entry splices the new source session onto the old
// one: a source generation number refuses writes from the replaced source,
// the new session's timestamps are shifted to continue where the old ended
// (counted from its first media tag: the onMetaData and sequence headers a
// session opens with may be stamped on another clock, such as 0 from an
// upstream joined mid-stream),
// video waits for the new session's keyframe, and its sequence headers pass
// to the viewers, who never see a partial tag or time going back.
package pool
