package pool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// State is the lifecycle state of an Entry. See the package documentation
// for the transition table.
type State int32

const (
	// StateWaiting: created for a viewer or a pull; no tag has arrived yet.
	StateWaiting State = iota
	// StateLive: a source is attached and feeding tags.
	StateLive
	// StateReconnecting: the source went away while viewers watch; they stay
	// attached for reconnect_window while a publisher may come back or the
	// pull retries. Back to StateLive at the next source's first tag.
	StateReconnecting
	// StateClosed: terminal. The source ended or the entry was evicted.
	// Readers drain what the buffer holds and then see ErrEnded.
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateWaiting:
		return "waiting"
	case StateLive:
		return "live"
	case StateReconnecting:
		return "reconnecting"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("state(%d)", int32(s))
}

// Errors an entry reports. Check them with errors.Is.
var (
	// ErrEnded: the entry reached StateClosed; the reader has drained it.
	ErrEnded = errors.New("pool: stream ended")
	// ErrSourceGone: the source (publisher or pull) went away.
	ErrSourceGone = errors.New("pool: source ended")
	// ErrEvicted: the entry was idle and the pool evicted it.
	ErrEvicted = errors.New("pool: evicted")
	// ErrAbandoned: the entry waited for a source and its last waiter left.
	ErrAbandoned = errors.New("pool: abandoned before a source arrived")
	// ErrGaveWay: the entry waited for a publisher, pool.max_entries was
	// reached, and it gave its place to a stream with a source (a
	// publisher or a pull). Its viewers may ask again later.
	ErrGaveWay = errors.New("pool: waiting entry gave its place to a stream with a source")
	// ErrPoolClosed: the pool shut down.
	ErrPoolClosed = errors.New("pool: closed")
)

// audioOnlyAfter is how much audio an entry without onMetaData and without
// video must hold before it declares itself an audio-only stream.
const audioOnlyAfter = 1000 // milliseconds of audio timestamps

// Entry is one relayed stream: the shared buffer of its tags, its GOP cache
// and its lifecycle. Readers never modify it; only its source appends, and
// only its Pool changes its state.
type Entry struct {
	key     string
	created time.Time

	// Guarded by the owning Pool's mu.
	subscribers int
	idleSince   time.Time
	pinned      bool // a pushing publisher owns it; never idle-evicted
	pulled      bool // created by a pull; set before the entry is shared
	viewers     map[*Subscription]Viewer
	hasSource   bool
	pull        Source             // the pulling source, restarted on reconnect
	cancel      context.CancelFunc // stops a pulling source, if any
	reconnect   *time.Timer        // ends a StateReconnecting entry
	retry       *time.Timer        // restarts a failed pull during a reconnect
	retryPause  time.Duration      // the pause before retry; doubles per failure in an episode
	// reconnectEnds is when the running reconnect episode's window ends.
	// backAt is when the current source came back within a window (its
	// first tag), and backEnds when that window was to end; backAt is
	// zero if it did not come back from one. See reconnectWindowLocked.
	reconnectEnds, backAt, backEnds time.Time

	mu       sync.RWMutex
	state    State
	gen      uint64 // the current source's generation; older ones are refused
	splice   bool   // the next tag starts a new source session
	waitKey  bool   // after a splice, drop video until a keyframe
	tsOffset int64  // added to source timestamps (splices)
	lastTS   [2]int64
	lastAny  int64
	// frameAt is when each track's last frame (not a sequence header)
	// was appended, with the monotonic clock's reading (a step of the
	// system clock moves no bound); zero before its first.
	frameAt [2]time.Time
	// srcTS is each track's last source timestamp. chased: the last
	// splice was for a step the track's own clock did not make (the
	// offset had moved under it, for another track's step).
	srcTS  [2]uint32
	chased bool
	endErr error
	source string
	// fedAt is when the current source attached or last sent a tag
	// (appended, or dropped while video waits for a keyframe).
	fedAt time.Time
	// ring holds the last len(ring) tags, tag n in slot n&mask. Each slot
	// is written only by append (under mu): with a freshly allocated Tag
	// that is never changed again, or emptied (nil) when pool.buffer_bytes
	// lets its tag go. Readers load slots without mu: a slot's Tag carries
	// its sequence number, which tells a reader whether the slot still
	// holds the tag it wants or was overwritten or emptied.
	ring []atomic.Pointer[Tag]
	mask uint64
	head uint64 // sequence number of the next tag
	// tail is the oldest tag the ring still holds: head-len(ring) once it
	// wrapped, or later where pool.buffer_bytes had append let older tags
	// go (their slots emptied). held is the bytes of tags tail to head,
	// at most maxBytes but for the newest tag.
	tail        uint64
	held        int
	maxBytes    int
	budget      *budget // the node's, shared with the pool's other entries; nil: none
	gopStart    uint64  // sequence number of the newest keyframe
	hasKeyframe bool    // gopStart is valid and still inside ring
	metadata    *Tag
	videoSeq    *Tag
	audioSeq    *Tag
	declared    Tracks // from onMetaData
	hasMeta     bool
	seen        Tracks // from tags seen
	firstAudio  uint32
	audioSeen   bool
	header      []byte // FLV header, set when ready
	notify      chan struct{}
	// Readers' lock-free view: published is head, stored after the slot;
	// wake is notify, stored after published; closed is set before the
	// final wake. A reader loads wake, then published, then closed.
	published atomic.Uint64
	wake      atomic.Pointer[chan struct{}]
	closed    atomic.Bool
	liveCh    chan struct{}
	readyCh   chan struct{}
	doneCh    chan struct{}

	codecs    Codecs
	rateStart time.Time // bitrate window
	rateBytes uint64
	bitrate   float64 // bits per second over the last window

	bytesIn  atomic.Uint64
	tagsIn   atomic.Uint64
	bytesOut atomic.Uint64
}

// budget is the buffer memory of a pool's entries together
// (pool.max_buffered_bytes): each entry may hold its share of it, when
// that is less than pool.buffer_bytes.
type budget struct {
	share atomic.Int64 // bytes each entry may hold now
}

func newEntry(key string, bufferTags, maxBytes int, b *budget, now time.Time) *Entry {
	size := 1
	for size < bufferTags {
		size <<= 1
	}
	e := &Entry{
		key:      key,
		created:  now,
		ring:     make([]atomic.Pointer[Tag], size),
		mask:     uint64(size - 1),
		maxBytes: maxBytes,
		budget:   b,
		liveCh:   make(chan struct{}),
		readyCh:  make(chan struct{}),
		doneCh:   make(chan struct{}),
	}
	e.renewNotifyLocked()
	return e
}

// renewNotifyLocked replaces the channel readers wait on and returns the
// old one, which the caller closes after releasing mu. e.mu held.
func (e *Entry) renewNotifyLocked() chan struct{} {
	old := e.notify
	ch := make(chan struct{})
	e.notify = ch
	e.wake.Store(&ch)
	return old
}

// slot returns tag seq if the ring still holds it (nil if overwritten or
// not yet published). Safe without mu.
func (e *Entry) slot(seq uint64) *Tag {
	if t := e.ring[seq&e.mask].Load(); t != nil && t.seq == seq {
		return t
	}
	return nil
}

// Key is the stream key, "app/stream".
func (e *Entry) Key() string { return e.key }

// State reports the current lifecycle state.
func (e *Entry) State() State {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.state
}

// Done is closed when the entry reaches StateClosed.
func (e *Entry) Done() <-chan struct{} { return e.doneCh }

// Pulled reports whether the entry was created to pull from an upstream.
func (e *Entry) Pulled() bool { return e.pulled }

// Live is closed when a source attaches (StateWaiting to StateLive).
func (e *Entry) Live() <-chan struct{} { return e.liveCh }

// Ready is closed once the entry knows its tracks and holds a starting
// point for viewers (a keyframe, or audio for an audio-only stream).
func (e *Entry) Ready() <-chan struct{} { return e.readyCh }

// Err reports why the entry closed, nil while it is open.
func (e *Entry) Err() error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.endErr
}

// AddBytesOut records bytes written to a viewer of this entry.
func (e *Entry) AddBytesOut(n int) { e.bytesOut.Add(uint64(n)) }

// newSource makes gen the only generation allowed to append. Called by
// the Pool with its mu held.
func (e *Entry) newSource() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gen++
	return e.gen
}

// attach moves Waiting or Reconnecting to Live for source generation gen.
// Called by the Pool with its mu held.
func (e *Entry) attach(gen uint64, source string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gen != gen {
		return false
	}
	switch e.state {
	case StateWaiting:
		close(e.liveCh)
	case StateReconnecting:
	default:
		return e.state == StateLive
	}
	e.state = StateLive
	e.source = source
	e.fedAt = time.Now()
	return true
}

// detachIfSilent detaches a Live entry whose source has gone without
// appending a tag (or, before its first, since it attached) for at least
// bound, and says for how long. The check and the detach are one step
// under mu: a tag of the old source lands either before it, and the
// source is not silent, or after it, and is refused (ErrStale). Called by
// the Pool with its mu held.
func (e *Entry) detachIfSilent(now time.Time, bound time.Duration) (silent time.Duration, detached bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	silent = now.Sub(e.fedAt)
	if e.state != StateLive || silent < bound {
		return silent, false
	}
	e.detachLocked()
	return silent, true
}

// detach moves Live to Reconnecting: the source is gone, the viewers stay.
// Called by the Pool with its mu held.
func (e *Entry) detach() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.detachLocked()
}

func (e *Entry) detachLocked() {
	e.gen++ // the old source may not append any more
	e.state = StateReconnecting
	e.splice = true
}

// isReady reports whether viewers have started on this entry.
func (e *Entry) isReady() bool {
	select {
	case <-e.readyCh:
		return true
	default:
		return false
	}
}

// end moves the entry to StateClosed once; later calls do nothing. It wakes
// every reader. Called by the Pool with its mu held.
func (e *Entry) end(reason error) bool {
	e.mu.Lock()
	if e.state == StateClosed {
		e.mu.Unlock()
		return false
	}
	e.state = StateClosed
	e.endErr = reason
	e.closed.Store(true)
	notify := e.renewNotifyLocked()
	e.mu.Unlock()
	close(notify)
	close(e.doneCh)
	if e.cancel != nil {
		e.cancel()
	}
	return true
}

// ErrStale: a source that was replaced tried to append.
var ErrStale = errors.New("pool: source replaced")

// maxStepBack is how far a track's timestamps may step back within a
// source session and be taken for jitter (clamped to the track's last
// time); a larger step is the source's clock restarting, spliced on.
const maxStepBack = 5000 // milliseconds

// maxStepAhead is how far a track's timestamp may run ahead of the time
// that passed since its last frame before the step is taken for the
// source's clock jumping (a corrupt or hostile tag, a clock restarted on a
// later time) and spliced on, rather than carrying the stream's timeline,
// for every viewer and for good, to a time the media never reaches.
const maxStepAhead = 5000 // milliseconds

// spliceGap separates the last tag before a splice from the first after.
const spliceGap = 40 // milliseconds

// append publishes one tag from source generation gen to every reader.
// Only the entry's current source calls it. Timestamps are made monotonic
// per track here, once for all viewers: across a splice (a new source
// session after a reconnect) the new session continues where the old
// ended, and a track never goes back in time.
func (e *Entry) append(gen uint64, typ uint8, timestamp uint32, body []byte) error {
	e.mu.Lock()
	if e.state != StateLive || e.gen != gen {
		state, cur := e.state, e.gen
		e.mu.Unlock()
		switch {
		case state == StateClosed:
			return ErrEnded
		case cur != gen:
			return ErrStale
		}
		return fmt.Errorf("pool: append in state %s", state)
	}
	if err := checkTag(typ, body); err != nil {
		// Before mapTimestamp: a dropped tag moves no track's time.
		e.mu.Unlock()
		return err
	}
	// The source is not silent (pool.publisher_takeover), also when its
	// tag is dropped below: video waiting for the keyframe of a new
	// session is media the source sent.
	now := time.Now()
	e.fedAt = now
	// A tag of a new source session that has not sent its keyframe yet.
	beforeKey := e.splice || e.waitKey
	ts, keep := e.mapTimestamp(typ, timestamp, body, now)
	if !keep {
		// Not relayed, but media the source sent: counted, as the pool's
		// total counts it (the streams' sum is the total).
		e.updateBitrate(now, e.bytesIn.Add(uint64(len(body))))
		e.mu.Unlock()
		return nil
	}
	t, err := NewTag(typ, ts, body)
	if err != nil {
		e.mu.Unlock()
		return err
	}
	t.Arrival = now.UnixNano()
	t.seq = e.head
	// A video sequence header unlike the one in force changes the
	// configuration (a new resolution) within the session: the cached GOP
	// was coded with the old one.
	reconfigured := t.SeqHeader && typ == TagVideo && e.videoSeq != nil && !bytes.Equal(e.videoSeq.Body(), body)
	e.track(&t)
	e.hold(&t)
	switch {
	case t.Keyframe:
		e.gopStart = e.head
		e.hasKeyframe = true
	case t.SeqHeader && typ == TagVideo && (beforeKey || reconfigured):
		// The new session's video sequence header, or a changed one: the
		// cached GOP is the old session's (or configuration's), which a
		// decoder given this header may not decode (a new resolution). A
		// viewer joining now waits for the next keyframe.
		e.hasKeyframe = false
	}
	e.head++
	e.published.Store(e.head)
	if e.hasKeyframe && e.gopStart < e.tail {
		e.hasKeyframe = false // the GOP outgrew the buffer
	}
	becameReady := e.header == nil && e.readyLocked()
	if becameReady {
		e.header = e.tracksLocked().Header()
	}
	// The media bytes, as the pool's total counts them (not the FLV
	// framing around them), so that the streams' sum is the total.
	in := e.bytesIn.Add(uint64(len(body)))
	e.updateBitrate(now, in)
	notify := e.renewNotifyLocked()
	e.mu.Unlock()

	e.tagsIn.Add(1)
	close(notify)
	if becameReady {
		close(e.readyCh)
	}
	return nil
}

// hold stores t, tag head, in its slot, and lets the oldest tags go while
// the ring is over pool.buffer_bytes (never t itself): a stream of huge
// tags, a hostile publisher's or a very high bitrate's, holds at most
// that much, not buffer_tags of them. A reader whose next tag went skips
// to the newest keyframe, as one that fell out of the ring. e.mu held.
func (e *Entry) hold(t *Tag) {
	slot := &e.ring[t.seq&e.mask]
	if old := slot.Load(); old != nil && old.seq >= e.tail {
		e.held -= len(old.Data) // the ring wrapped onto a tag it held
		e.tail = old.seq + 1
	}
	slot.Store(t)
	e.held += len(t.Data)
	limit := e.maxBytes
	if e.budget != nil {
		limit = int(min(int64(limit), e.budget.share.Load()))
	}
	for e.held > limit && e.tail < t.seq {
		old := &e.ring[e.tail&e.mask]
		e.held -= len(old.Load().Data)
		old.Store(nil)
		e.tail++
	}
}

// mapTimestamp returns the timestamp viewers see for a source tag, and
// whether to keep the tag at all (after a splice, video waits for a
// keyframe). e.mu held.
func (e *Entry) mapTimestamp(typ uint8, timestamp uint32, body []byte, now time.Time) (uint32, bool) {
	key, seq := classify(typ, body) // body is not empty: checkTag passed
	ts := int64(timestamp) + e.tsOffset
	switch {
	case e.splice && (typ == TagScript || seq):
		// A new session opens with onMetaData and sequence headers stamped
		// where its upstream keeps them (0 for an upstream that joined us
		// to a running stream), not on its media's clock: they go out at
		// the splice point, and the first media tag sets the offset.
		ts = e.lastAny
	case e.splice:
		e.splice = false
		e.waitKey = true
		e.tsOffset = e.lastAny + spliceGap - int64(timestamp)
		ts = e.lastAny + spliceGap
	}
	if e.waitKey && typ == TagVideo {
		if !key && !seq {
			return 0, false
		}
		if key {
			e.waitKey = false
		}
	}
	if typ == TagAudio || typ == TagVideo {
		track := typ - TagAudio
		reach := int64(-1) // before the track's first frame, no bound ahead
		if !e.frameAt[track].IsZero() {
			reach = now.Sub(e.frameAt[track]).Milliseconds() + maxStepAhead
		}
		// own: the track's own clock stepped out of bounds (a stray tag, a
		// restart). Its clock wraps at 32 bits: a step out of bounds on
		// the timeline that is within them on the clock is the offset's,
		// moved by another track's splice, or the wrap's.
		step := int64(int32(timestamp - e.srcTS[track]))
		own := step < -maxStepBack || reach >= 0 && step > reach
		// ts may be below 0 here, after a splice, when the source's clock
		// goes back: that is a step back too.
		switch {
		case ts < e.lastTS[track]-maxStepBack,
			// A step ahead that is not the track's own, after a splice for
			// another track's that was not its own either, is the two
			// clocks apart for good (one jumped and the other did not, or
			// the wrap reached one first): kept. Spliced on, it would move
			// the offset back under the other track, splice after splice,
			// each tag spliceGap after the stream's last whatever its time.
			reach >= 0 && ts > e.lastTS[track]+reach && (own || !e.chased):
			// The source's clock went back within its session (an upstream
			// restarting its stream's timestamps on the same connection),
			// or ahead of the time that passed: spliced on as a new
			// session is, rather than every tag held at the track's last
			// time until the new clock catches up, or the timeline moved
			// for good. A single stray tag is two splices: there and back.
			e.tsOffset = e.lastAny + spliceGap - int64(timestamp)
			ts = e.lastAny + spliceGap
			e.chased = !own
		}
		if ts < e.lastTS[track] {
			ts = e.lastTS[track]
		}
		e.lastTS[track] = ts
		e.srcTS[track] = timestamp
		if !seq {
			e.frameAt[track] = now
		}
	}
	if typ == TagScript {
		// A script tag (onMetaData, a cue point) keeps no track's clock,
		// and no bound ahead applies to it: stamped at most at the
		// stream's last time, a stray one far ahead cannot carry lastAny,
		// where every splice after it starts, ahead for good.
		ts = min(ts, e.lastAny)
	}
	ts = max(ts, 0)
	e.lastAny = max(e.lastAny, ts)
	return uint32(ts), true
}

// track updates the codec state with t. e.mu held.
func (e *Entry) track(t *Tag) {
	switch t.Type {
	case TagScript:
		if tr, ok := metadataTracks(t.Body()); ok {
			cp := *t
			e.metadata = &cp
			e.declared = tr
			e.hasMeta = true
			e.codecs.Width, e.codecs.Height = metadataSize(t.Body())
		}
	case TagVideo:
		e.seen.Video = true
		if t.SeqHeader {
			cp := *t
			e.videoSeq = &cp
			e.codecs.Video = videoCodec(t.Body())
		}
	case TagAudio:
		e.seen.Audio = true
		if !e.audioSeen {
			e.audioSeen = true
			e.firstAudio = t.Timestamp
		}
		if t.SeqHeader {
			cp := *t
			e.audioSeq = &cp
		}
		if e.codecs.Audio == "" {
			e.codecs.Audio = audioCodec(t.Body())
		}
	}
}

func (e *Entry) tracksLocked() Tracks {
	return Tracks{
		Audio: e.declared.Audio || e.seen.Audio,
		Video: e.declared.Video || e.seen.Video,
	}
}

// readyLocked reports whether a viewer can start: at a keyframe for a
// stream with video, at any audio tag for an audio-only stream.
func (e *Entry) readyLocked() bool {
	if e.hasKeyframe {
		return true
	}
	if !e.audioSeen {
		return false
	}
	if e.hasMeta {
		return !e.declared.Video
	}
	if e.seen.Video {
		return false
	}
	// The audio track's own time: the newest tag may be a script tag
	// stamped before the first audio (a cue point), and uint32
	// arithmetic on it wrapped into "ready".
	return e.lastTS[TagAudio-TagAudio]-int64(e.firstAudio) >= audioOnlyAfter
}

// bitrateWindow is how often an entry's input bitrate is recomputed.
const bitrateWindow = 2 * time.Second

// updateBitrate folds the input byte count into the windowed bitrate.
// e.mu held.
func (e *Entry) updateBitrate(now time.Time, in uint64) {
	if e.rateStart.IsZero() {
		e.rateStart, e.rateBytes = now, in
		return
	}
	if d := now.Sub(e.rateStart); d >= bitrateWindow {
		e.bitrate = float64(in-e.rateBytes) * 8 / d.Seconds()
		e.rateStart, e.rateBytes = now, in
	}
}

// stateAndHeld reports the entry's state as Stats counts it ("idle" for a
// live entry without viewers), and the bytes of tags it holds.
func (e *Entry) stateAndHeld() (string, int) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.state == StateLive && e.subscribers == 0 {
		return "idle", e.held
	}
	return e.state.String(), e.held
}

// WaitReady blocks until the entry is ready for a viewer, it ends, or ctx
// is done.
func (e *Entry) WaitReady(ctx context.Context) error {
	select {
	case <-e.readyCh:
		return nil
	default:
	}
	select {
	case <-e.readyCh:
		return nil
	case <-e.doneCh:
		select {
		case <-e.readyCh: // ready and ended: drain what is there
			return nil
		default:
		}
		return fmt.Errorf("%w: %w", ErrEnded, e.Err())
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Snapshot is a point-in-time view of an entry for operators.
type Snapshot struct {
	Key           string    `json:"key"`
	State         string    `json:"state"`
	Subscribers   int       `json:"subscribers"`
	Source        string    `json:"source"`
	BytesIn       uint64    `json:"bytes_in"`
	BytesOut      uint64    `json:"bytes_out"`
	TagsIn        uint64    `json:"tags_in"`
	Buffered      int       `json:"buffered_tags"`   // tags the ring holds for readers now
	BufferedBytes int       `json:"buffered_bytes"`  // their bytes, up to pool.buffer_bytes
	BufferSize    int       `json:"buffer_capacity"` // pool.buffer_tags
	Audio         bool      `json:"audio"`
	Video         bool      `json:"video"`
	Codecs        Codecs    `json:"codecs"`
	BitrateKbps   float64   `json:"bitrate_kbps"` // input, over the last seconds
	Created       time.Time `json:"created"`
	UptimeSec     float64   `json:"uptime_seconds"`
}

// Codecs describes an entry's media as far as its tags tell.
type Codecs struct {
	Video  string `json:"video,omitempty"` // h264, hevc, av1, vp9
	Audio  string `json:"audio,omitempty"` // aac, mp3, ...
	Width  int    `json:"width,omitempty"` // from onMetaData
	Height int    `json:"height,omitempty"`
}

// snapshot is called with the Pool's mu held (for subscribers).
func (e *Entry) snapshot() Snapshot {
	e.mu.RLock()
	defer e.mu.RUnlock()
	state := e.state.String()
	if e.state == StateLive && e.subscribers == 0 {
		state = "idle"
	}
	tr := e.tracksLocked()
	return Snapshot{
		Key:           e.key,
		State:         state,
		Subscribers:   e.subscribers,
		Source:        e.source,
		BytesIn:       e.bytesIn.Load(),
		BytesOut:      e.bytesOut.Load(),
		TagsIn:        e.tagsIn.Load(),
		Buffered:      int(e.head - e.tail),
		BufferedBytes: e.held,
		BufferSize:    len(e.ring),
		Audio:         tr.Audio,
		Video:         tr.Video,
		Codecs:        e.codecs,
		BitrateKbps:   e.bitrate / 1000,
		Created:       e.created,
		UptimeSec:     time.Since(e.created).Seconds(),
	}
}
