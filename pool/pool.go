package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Errors the pool reports. Check them with errors.Is.
var (
	// ErrNotFound: no entry for the key and nothing can create one.
	ErrNotFound = errors.New("pool: stream not found")
	// ErrFull: max_entries reached and no entry is idle (nor, for a
	// publisher or a pull, waiting for a publisher).
	ErrFull = errors.New("pool: all entries in use")
	// ErrStreamFull: the entry has as many subscribers as allowed.
	ErrStreamFull = errors.New("pool: stream has its maximum of viewers")
	// ErrPublished: a publisher of the key took it from the pull that fed
	// it, and nobody watched (the publisher gets a new entry).
	ErrPublished = errors.New("pool: stream published here, pull stopped")
	// ErrBusy: the key already has a source (a second publisher).
	ErrBusy = errors.New("pool: stream already has a source")
	// ErrUpstreamNotFound: no upstream has the stream (sources wrap it).
	ErrUpstreamNotFound = errors.New("pool: no upstream has the stream")
	// ErrUpstreamUnreachable: no upstream could be reached (sources wrap it).
	ErrUpstreamUnreachable = errors.New("pool: upstream unreachable")
	// ErrNoReconnect: the source did not come back within reconnect_window.
	ErrNoReconnect = errors.New("pool: source did not come back within reconnect_window")
	// ErrDropped: an operator ended the stream (Pool.Drop).
	ErrDropped = errors.New("pool: stream dropped by the operator")
)

// Config sets the pool's bounds. The zero value is not valid; start from
// DefaultConfig.
type Config struct {
	// MaxEntries bounds the number of entries, idle or not.
	MaxEntries int `toml:"max_entries"`
	// IdleTimeout is how long an entry without viewers keeps its pull
	// running before it is evicted.
	IdleTimeout time.Duration `toml:"idle_timeout"`
	// GOPCache starts new viewers at the newest keyframe already buffered
	// instead of waiting for the next one.
	GOPCache bool `toml:"gop_cache"`
	// BufferTags is the number of tags each entry keeps for its readers
	// (rounded up to a power of two). A reader further behind than this
	// skips to the newest keyframe.
	BufferTags int `toml:"buffer_tags"`
	// BufferBytes bounds the bytes of the tags each entry keeps: past it
	// the oldest go, as they would past BufferTags, so that a stream of
	// huge tags (a hostile publisher or upstream, 8 MiB each) cannot hold
	// BufferTags of them. The newest tag is always kept.
	BufferBytes int `toml:"buffer_bytes"`
	// MaxBufferedBytes bounds the bytes of all entries' buffers together:
	// each entry holds at most an equal share of it (MaxBufferedBytes over
	// the number of entries), when that is less than BufferBytes, and
	// lets its oldest tags go past it at its next tag. Without it, a node
	// holds up to MaxEntries × BufferBytes. Zero: no such bound.
	MaxBufferedBytes int64 `toml:"max_buffered_bytes"`
	// ReconnectWindow keeps viewers attached this long when their source
	// (publisher or pull) goes away mid-stream, waiting for a publisher to
	// come back or a pull to reconnect. Zero ends them at once.
	ReconnectWindow time.Duration `toml:"reconnect_window"`
	// MaxLag is the slow-viewer bound: a viewer whose next tag arrived
	// longer ago than this skips to the newest keyframe (counted), so it
	// plays live again instead of ever later. Zero skips only when the
	// viewer falls out of the buffer.
	MaxLag time.Duration `toml:"max_lag"`
	// PublisherTakeover: a publisher that has sent no media for this long
	// gives its stream up to a new publisher of the key, which takes the
	// entry over as a returning publisher would (its viewers stay, spliced
	// on); the old one is refused at its next tag. An encoder whose
	// connection went half-dead (its close never reached flvgw) reconnects
	// at once and was refused as busy until rtmp.read_timeout dropped the
	// dead connection. Zero refuses a second publisher always.
	PublisherTakeover time.Duration `toml:"publisher_takeover"`
}

// DefaultConfig returns the defaults used when a key is absent.
func DefaultConfig() Config {
	return Config{
		MaxEntries:  1024,
		IdleTimeout: 30 * time.Second,
		GOPCache:    true,
		BufferTags:  1024,
		BufferBytes: 64 << 20,

		MaxBufferedBytes: 4 << 30,
		MaxLag:           5 * time.Second,

		PublisherTakeover: 3 * time.Second,
	}
}

// Validate reports the first invalid field, named by its config key.
func (c Config) Validate() error {
	switch {
	case c.MaxEntries < 1:
		return fmt.Errorf("pool.max_entries must be at least 1, got %d", c.MaxEntries)
	case c.IdleTimeout < time.Millisecond:
		return fmt.Errorf("pool.idle_timeout must be a duration of at least 1ms such as \"30s\", got %s", c.IdleTimeout)
	case c.BufferTags < 64 || c.BufferTags > 1<<20:
		return fmt.Errorf("pool.buffer_tags must be between 64 and 1048576, got %d", c.BufferTags)
	case c.BufferBytes < 1<<20 || c.BufferBytes > 1<<30:
		return fmt.Errorf("pool.buffer_bytes must be between 1048576 (1 MiB) and 1073741824 (1 GiB), got %d", c.BufferBytes)
	case c.MaxBufferedBytes != 0 && c.MaxBufferedBytes < 1<<20:
		return fmt.Errorf("pool.max_buffered_bytes must be 0 (no bound) or at least 1048576 (1 MiB), got %d", c.MaxBufferedBytes)
	case c.ReconnectWindow < 0:
		return fmt.Errorf("pool.reconnect_window must not be negative, got %s", c.ReconnectWindow)
	case c.MaxLag < 0:
		return fmt.Errorf("pool.max_lag must not be negative, got %s", c.MaxLag)
	case c.PublisherTakeover < 0:
		return fmt.Errorf("pool.publisher_takeover must not be negative, got %s", c.PublisherTakeover)
	}
	return nil
}

// Source feeds an entry from elsewhere (an upstream pull). Run writes tags
// to sink until ctx is cancelled or the source ends, and returns why.
type Source interface {
	Name() string
	Run(ctx context.Context, sink *Publisher) error
}

// Resolver returns the Source that can pull key, or nil if none can, or
// Missing.
type Resolver func(key string) Source

// Missing is what a Resolver returns for a key that its upstreams lacked a
// moment ago (edge.not_found_ttl): Subscribe answers ErrNotFound at once,
// as the pull that found it missing did, even to a viewer that would wait
// for a publisher.
var Missing Source = missing{}

type missing struct{}

func (missing) Name() string                          { return "missing" }
func (missing) Run(context.Context, *Publisher) error { return ErrUpstreamNotFound }

// UpstreamAttempts counts one upstream's pull attempts by outcome. A
// source that pulls keeps them (the pool only sums the failures, in
// Stats.UpstreamFailures); the gateway exports them per upstream.
type UpstreamAttempts struct {
	Upstream    string
	Played      uint64 // delivered media
	NotFound    uint64 // lacked the stream, or sent nothing in time
	Unreachable uint64 // could not be reached, or refused the play
	Malformed   uint64 // broke the protocol before any tag
	// TriedLast: it could not be reached a moment ago, and pulls try it
	// after the others for now (edge.unreachable_cooldown).
	TriedLast bool
	// FirstTag is how long the played attempts took from their start
	// (the dial) to their first tag at the entry.
	FirstTag FirstTagTimes
}

// FirstTagTimes counts attempts by their time to the first tag: Counts[i]
// those within FirstTagBounds()[i] and over the bound before it, the last
// count those over every bound; Sum is their total time.
type FirstTagTimes struct {
	Counts [11]uint64
	Sum    time.Duration
}

// FirstTagBounds are the upper bounds, in seconds, of FirstTagTimes'
// counts but the last.
func FirstTagBounds() [10]float64 {
	return [10]float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
}

// Observe counts an attempt whose first tag came after took.
func (f *FirstTagTimes) Observe(took time.Duration) {
	i := 0
	for _, b := range FirstTagBounds() {
		if took.Seconds() <= b {
			break
		}
		i++
	}
	f.Counts[i]++
	f.Sum += took
}

// Stats are the pool's counters for metrics.
type Stats struct {
	Entries          int
	Idle             int
	Subscribers      int
	ByState          map[string]int // entries by Snapshot.State
	UpstreamSessions uint64         // sources attached since start: publishes and pulls
	UpstreamFailures uint64         // pull attempts that failed (connect, handshake, not found)
	Reconnects       uint64         // times an entry kept its viewers through a lost source
	Takeovers        uint64         // silent publishers replaced by a new one (PublisherTakeover)
	Evictions        uint64
	BytesIn          uint64 // tag bytes received by entries since start
	// BufferedBytes is what the entries' buffers hold together, and
	// EntryShare what each may hold now (pool.buffer_bytes, or its share
	// of pool.max_buffered_bytes when that is less).
	BufferedBytes int64
	EntryShare    int64
}

// Pool holds the relay entries by stream key. All state changes of an
// entry (create, attach, end, evict) happen under Pool.mu, so there is one
// owner for each transition.
type Pool struct {
	cfg      Config
	log      *slog.Logger
	resolver Resolver
	now      func() time.Time

	budget budget // pool.max_buffered_bytes, shared by the entries

	mu          sync.Mutex
	closed      bool
	entries     map[string]*Entry
	idle        *lru.Cache[string, *Entry]
	subscribers int

	upstreamSessions atomic.Uint64
	upstreamFailures atomic.Uint64
	reconnects       atomic.Uint64
	takeovers        atomic.Uint64
	evictions        atomic.Uint64
	bytesIn          atomic.Uint64
	sources          sync.WaitGroup
}

// New creates a pool. resolver may be nil: then only publishers create
// live entries.
func New(cfg Config, log *slog.Logger, resolver Resolver) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Pool{
		cfg:      cfg,
		log:      log,
		resolver: resolver,
		now:      time.Now,
		entries:  make(map[string]*Entry),
	}
	idle, err := lru.NewWithEvict(cfg.MaxEntries, p.onIdleRemoved)
	if err != nil {
		return nil, fmt.Errorf("pool: idle list: %w", err)
	}
	p.idle = idle
	p.shareLocked()
	return p, nil
}

// onIdleRemoved runs inside every idle.Add/Remove/RemoveOldest, always
// with p.mu held. It closes the entry only if it is still idle: a viewer
// taking an entry back increments subscribers before removing it here.
func (p *Pool) onIdleRemoved(key string, e *Entry) {
	if e.subscribers > 0 {
		return
	}
	if e.end(ErrEvicted) {
		p.evictions.Add(1)
		p.log.Info("entry evicted", "stream", key, "idle_for", p.now().Sub(e.idleSince).Round(time.Millisecond))
	}
	p.forgetLocked(e)
}

// newEntryLocked makes room if needed and registers a fresh entry. Room is
// made by evicting the least recently used idle entry; for an entry that
// will have a source (sourced: a publisher or a pull), failing that, by
// the oldest entry still waiting for a publisher, which gives way: viewers
// asking for names nobody publishes must not keep a real stream out.
func (p *Pool) newEntryLocked(key string, sourced bool) (*Entry, error) {
	if p.closed {
		return nil, ErrPoolClosed
	}
	if len(p.entries) >= p.cfg.MaxEntries {
		if _, _, ok := p.idle.RemoveOldest(); !ok && !(sourced && p.giveWayLocked()) {
			return nil, ErrFull
		}
	}
	e := newEntry(key, p.cfg.BufferTags, p.cfg.BufferBytes, &p.budget, p.now())
	p.entries[key] = e
	p.shareLocked()
	return e, nil
}

// shareLocked sets each entry's share of pool.max_buffered_bytes for the
// entries there are now. p.mu held.
func (p *Pool) shareLocked() {
	share := int64(p.cfg.BufferBytes)
	if p.cfg.MaxBufferedBytes > 0 {
		share = min(share, p.cfg.MaxBufferedBytes/int64(max(1, len(p.entries))))
	}
	p.budget.share.Store(share)
}

// forgetLocked removes e from the entries if it is still its key's entry.
// p.mu held.
func (p *Pool) forgetLocked(e *Entry) {
	if p.entries[e.key] == e {
		delete(p.entries, e.key)
		p.shareLocked()
	}
}

// giveWayLocked ends the oldest entry that waits for a publisher (no source,
// StateWaiting), if there is one, and frees its key: its viewers see
// ErrGaveWay. It looks through every entry, which only a source arriving
// at a full pool with no idle entry makes it do.
func (p *Pool) giveWayLocked() bool {
	var oldest *Entry
	for _, e := range p.entries {
		if !e.hasSource && e.State() == StateWaiting && (oldest == nil || e.created.Before(oldest.created)) {
			oldest = e
		}
	}
	if oldest == nil {
		return false
	}
	oldest.end(ErrGaveWay)
	p.forgetLocked(oldest)
	p.log.Info("waiting entry gave way", "stream", oldest.key, "subscribers", oldest.subscribers,
		"waited", p.now().Sub(oldest.created).Round(time.Millisecond))
	return true
}

// SubscribeOptions shape one subscription.
type SubscribeOptions struct {
	// Wait creates an entry in StateWaiting for a publisher to come, when
	// there is none and no pull can create one.
	Wait bool
	// MaxViewers refuses the subscription with ErrStreamFull when the
	// entry already has this many subscribers; 0 means no bound.
	MaxViewers int
	// Remote is the viewer's address, listed by Detail.
	Remote string
}

// Subscribe registers a viewer on the entry for key, taking it out of the
// idle list if it was there. If there is no entry, a pulling source from
// the resolver creates one; with wait set, an entry is created in
// StateWaiting for a publisher to come. Otherwise ErrNotFound.
//
// The Subscription must be closed exactly once, on every path.
func (p *Pool) Subscribe(key string, wait bool) (*Subscription, error) {
	return p.SubscribeWith(key, SubscribeOptions{Wait: wait})
}

// SubscribeWith is Subscribe with options.
func (p *Pool) SubscribeWith(key string, o SubscribeOptions) (*Subscription, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrPoolClosed
	}
	e := p.entries[key]
	if e == nil {
		var src Source
		if p.resolver != nil {
			src = p.resolver(key)
		}
		if src == Missing || src == nil && !o.Wait {
			return nil, ErrNotFound
		}
		var err error
		if e, err = p.newEntryLocked(key, src != nil); err != nil {
			return nil, err
		}
		if src != nil {
			e.pulled = true
			p.startSourceLocked(e, src)
		}
	}
	if o.MaxViewers > 0 && e.subscribers >= o.MaxViewers {
		return nil, ErrStreamFull
	}
	e.subscribers++
	p.subscribers++
	if e.subscribers == 1 {
		p.idle.Remove(key) // subscribers > 0: onIdleRemoved keeps it open
	}
	sub := &Subscription{p: p, e: e}
	if e.viewers == nil {
		e.viewers = make(map[*Subscription]Viewer)
	}
	e.viewers[sub] = Viewer{Remote: o.Remote, Since: p.now()}
	return sub, nil
}

// release is the one way a subscriber leaves.
func (p *Pool) release(sub *Subscription) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := sub.e
	delete(e.viewers, sub)
	e.subscribers--
	p.subscribers--
	if e.subscribers > 0 {
		return
	}
	switch state := e.State(); {
	case state == StateClosed:
		p.forgetLocked(e) // ended entries are removed when they end
	case state == StateReconnecting:
		// Nobody is left to keep through the reconnect.
		p.endEntryLocked(e, ErrSourceGone)
	case !e.hasSource:
		// Waited for a publisher that never came; nobody waits any more.
		e.end(ErrAbandoned)
		p.forgetLocked(e)
	case e.pinned:
		// A pushing publisher owns it; it ends when the publisher leaves.
	default:
		e.idleSince = p.now()
		p.idle.Add(e.key, e)
	}
}

// Publish attaches a pushing source (a publisher of the embedded origin)
// to key. A key with viewers waiting gets its entry attached; a key that
// a pull feeds is taken from the pull (a stream published here is served
// from here, never pulled); a key that already has a publisher gets
// ErrBusy, unless that one is silent (takeOverLocked).
func (p *Pool) Publish(key, source string) (*Publisher, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrPoolClosed
	}
	e := p.entries[key]
	if e != nil && e.pull != nil {
		e = p.stopPullForPublisherLocked(e)
	}
	if e != nil && e.hasSource && !p.takeOverLocked(e) {
		return nil, fmt.Errorf("%w: %s", ErrBusy, key)
	}
	if e == nil {
		var err error
		if e, err = p.newEntryLocked(key, true); err != nil {
			return nil, err
		}
	}
	e.hasSource = true
	e.pinned = true
	p.sourceBackLocked(e)
	pub := &Publisher{p: p, e: e, gen: e.newSource()}
	e.attach(pub.gen, source)
	pub.attached.Store(true)
	p.upstreamSessions.Add(1)
	return pub, nil
}

// stopPullForPublisherLocked stops the pull that feeds e, for a publisher
// of its key, and returns the entry the publisher is to attach to: e
// itself if viewers hold it (Waiting stays Waiting; Live moves to
// Reconnecting, so that the publisher's stream is spliced on as a
// returning source's is), or nil if it was idle, which ends it (nobody
// watches, so nothing is kept; the publisher gets a new entry). The
// pull's goroutine, cancelled, may append no more (its generation is
// stale once the publisher attaches) and its end leaves e alone.
func (p *Pool) stopPullForPublisherLocked(e *Entry) *Entry {
	p.log.Info("pull stopped for a publisher", "stream", e.key, "subscribers", e.subscribers)
	if e.subscribers == 0 {
		p.endEntryLocked(e, ErrPublished) // which takes it out of the idle list, and cancels the pull
		return nil
	}
	p.stopReconnectLocked(e)
	if e.cancel != nil {
		e.cancel()
		e.cancel = nil
	}
	e.pull = nil
	e.hasSource = false
	if e.State() == StateLive {
		e.detach()
	}
	return e
}

// takeOverLocked takes e from its publisher for a new one if the old one
// has sent no media for PublisherTakeover: e moves to Reconnecting, as if
// the old publisher had left within a reconnect window, and the caller
// attaches the new one. A pull is never taken over.
func (p *Pool) takeOverLocked(e *Entry) bool {
	if p.cfg.PublisherTakeover <= 0 || e.pull != nil {
		return false
	}
	silent, detached := e.detachIfSilent(time.Now(), p.cfg.PublisherTakeover)
	if !detached {
		return false
	}
	p.takeovers.Add(1)
	p.log.Info("publisher taken over", "stream", e.key, "silent_for", silent.Round(time.Millisecond),
		"subscribers", e.subscribers)
	return true
}

// startSourceLocked runs src for e in its own goroutine; the goroutine
// ends the entry when src returns and stops when the entry ends.
func (p *Pool) startSourceLocked(e *Entry, src Source) {
	if e.cancel != nil {
		e.cancel() // the previous run of a restarted pull has returned
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.hasSource = true
	e.pull = src
	p.upstreamSessions.Add(1)
	pub := &Publisher{p: p, e: e, gen: e.newSource(), name: src.Name()}
	p.sources.Add(1)
	go func() {
		defer p.sources.Done()
		err := src.Run(ctx, pub)
		if err == nil {
			err = ErrSourceGone
		}
		pub.Close(err)
	}()
}

// sourceEnded is how a source's end reaches its entry. If viewers are
// playing and reconnect_window allows, the entry waits for the source to
// come back (StateReconnecting) and a pull is restarted; otherwise the
// entry ends.
func (p *Pool) sourceEnded(pub *Publisher, reason error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := pub.e
	if e.gen != pub.gen { // replaced already; e.gen only changes under p.mu
		return
	}
	if e.State() == StateReconnecting && e.pull != nil && resumable(reason) {
		// A restarted pull failed too; try again, after a pause that
		// doubles with each failure, so that an origin answering "not
		// found" at once (its publisher not back yet) is not hammered by
		// every stream of every edge, until the window closes.
		e.retryPause = min(max(2*e.retryPause, restartPause), maxRestartPause)
		p.log.Info("pull retry failed, retrying within reconnect_window", "stream", e.key, "reason", reason, "pause", e.retryPause)
		episode := e.reconnect
		e.retry = time.AfterFunc(e.retryPause, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if e.reconnect == episode && e.State() == StateReconnecting {
				p.startSourceLocked(e, e.pull)
			}
		})
		return
	}
	if p.cfg.ReconnectWindow > 0 && !p.closed && e.subscribers > 0 && e.isReady() &&
		e.State() == StateLive && resumable(reason) {
		window := p.reconnectWindowLocked(e, time.Now())
		if window <= 0 {
			p.endEntryLocked(e, fmt.Errorf("%w: %w", ErrNoReconnect, reason))
			return
		}
		e.detach()
		e.hasSource = e.pull != nil
		if e.cancel != nil {
			e.cancel()
			e.cancel = nil
		}
		// The timer belongs to this reconnect episode (pull restarts change
		// the generation, not the episode); p.mu orders its read of timer
		// after the assignment below.
		var timer *time.Timer
		timer = time.AfterFunc(window, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if e.reconnect == timer && e.State() == StateReconnecting {
				p.endEntryLocked(e, fmt.Errorf("%w: %w", ErrNoReconnect, reason))
			}
		})
		e.reconnect = timer
		e.reconnectEnds, e.backAt = time.Now().Add(window), time.Time{}
		e.retryPause = 0
		p.reconnects.Add(1)
		p.log.Info("source lost, viewers kept", "stream", e.key, "reason", reason,
			"subscribers", e.subscribers, "window", window)
		if e.pull != nil {
			p.startSourceLocked(e, e.pull)
		}
		return
	}
	p.endEntryLocked(e, reason)
}

// reconnectWindowLocked is how long e's viewers are kept for a source
// lost at now. A source that came back within a window gets what was
// left of that window when it came back, plus the time it then fed for,
// less the time it has been silent since, and at most a full window:
// otherwise an upstream that answers each restart with one frame (a
// cached GOP) and then stalls would make the entry live again each time,
// and the stall start a new window, holding the viewers on a frozen
// picture for as long as it answered so.
func (p *Pool) reconnectWindowLocked(e *Entry, now time.Time) time.Duration {
	full := p.cfg.ReconnectWindow
	if e.backAt.IsZero() {
		return full
	}
	e.mu.RLock()
	fedAt := e.fedAt
	e.mu.RUnlock()
	return min(full, e.backEnds.Sub(e.backAt)+fedAt.Sub(e.backAt)-now.Sub(fedAt))
}

// sourceBackLocked ends e's reconnect episode for a source that attached
// (its first tag, or a publisher), noting when, if it came back within
// the window, for reconnectWindowLocked. A source that attached outside
// an episode (a publisher taking a silent one's place, or a pull's) did
// not come back within one: the note of an earlier source that did is
// cleared, or it would cut this one's window short.
func (p *Pool) sourceBackLocked(e *Entry) {
	e.backAt, e.backEnds = time.Time{}, time.Time{}
	if e.reconnect != nil {
		e.backAt, e.backEnds = time.Now(), e.reconnectEnds
	}
	p.stopReconnectLocked(e)
}

// resumable reports whether a source's end may be bridged by a reconnect:
// a source that went away, not one that sent garbage (ErrBadTag, which
// sources wrap for malformed input) or was stopped.
func resumable(reason error) bool {
	return !errors.Is(reason, ErrBadTag) && !errors.Is(reason, ErrEvicted) && !errors.Is(reason, ErrDropped) &&
		!errors.Is(reason, ErrPoolClosed) && !errors.Is(reason, context.Canceled)
}

func (p *Pool) stopReconnectLocked(e *Entry) {
	if e.reconnect != nil {
		e.reconnect.Stop()
		e.reconnect = nil
	}
	if e.retry != nil {
		e.retry.Stop()
		e.retry = nil
	}
}

// restartPause and maxRestartPause bound the pause between restarts of a
// pull that keeps failing during a reconnect window: the first, doubling
// up to the second.
const (
	restartPause    = 250 * time.Millisecond
	maxRestartPause = 4 * time.Second
)

// endEntryLocked is the one transition to StateClosed from a source's side;
// the key is free for a new entry at once.
func (p *Pool) endEntryLocked(e *Entry, reason error) {
	p.stopReconnectLocked(e)
	if e.end(reason) {
		p.log.Info("entry ended", "stream", e.key, "reason", reason, "subscribers", e.subscribers)
	}
	p.forgetLocked(e)
	if cur, ok := p.idle.Peek(e.key); ok && cur == e {
		p.idle.Remove(e.key)
	}
}

// Drop ends key's entry, whatever its state, as an operator's act: a
// pull is cancelled, a publisher is refused at its next tag (the origin
// then closes its connection), viewers drain what they have and end, and
// no reconnect window applies. The key is free at once: a publisher that
// comes back gets a new entry. It reports whether key had an entry.
func (p *Pool) Drop(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.entries[key]
	if e == nil {
		return false
	}
	p.endEntryLocked(e, ErrDropped)
	return true
}

// Run evicts entries idle for longer than IdleTimeout until ctx is done.
func (p *Pool) Run(ctx context.Context) {
	tick := p.cfg.IdleTimeout / 4
	tick = max(tick, 10*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.evictExpired()
		}
	}
}

func (p *Pool) evictExpired() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	for _, key := range p.idle.Keys() { // oldest first
		e, ok := p.idle.Peek(key)
		if !ok {
			continue
		}
		if now.Sub(e.idleSince) < p.cfg.IdleTimeout {
			break
		}
		p.idle.Remove(key)
	}
}

// Close ends every entry and waits for pulling sources to stop. Viewers
// drain and end; publishers see their writes refused.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	for key, e := range p.entries {
		p.stopReconnectLocked(e)
		e.end(ErrPoolClosed)
		delete(p.entries, key)
	}
	p.idle.Purge()
	p.mu.Unlock()
	p.sources.Wait()
}

// Lookup returns a snapshot of the entry for key.
func (p *Pool) Lookup(key string) (Snapshot, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.entries[key]
	if !ok {
		return Snapshot{}, false
	}
	return e.snapshot(), true
}

// Detail is an entry's snapshot with its viewers.
type Detail struct {
	Snapshot
	Viewers []Viewer `json:"viewers"`
}

// Viewer is one subscriber of an entry.
type Viewer struct {
	Remote string    `json:"remote"`
	Since  time.Time `json:"since"`
}

// Detail returns the entry for key with its viewers.
// The viewers are sorted after the pool's lock is released: a stream of
// tens of thousands of viewers takes milliseconds to sort, and the lock
// is every subscribe's and every leave's.
func (p *Pool) Detail(key string) (Detail, bool) {
	p.mu.Lock()
	e, ok := p.entries[key]
	if !ok {
		p.mu.Unlock()
		return Detail{}, false
	}
	d := Detail{Snapshot: e.snapshot(), Viewers: make([]Viewer, 0, len(e.viewers))}
	for _, v := range e.viewers {
		d.Viewers = append(d.Viewers, v)
	}
	p.mu.Unlock()
	slices.SortFunc(d.Viewers, func(a, b Viewer) int { return a.Since.Compare(b.Since) })
	return d, true
}

// Snapshots lists every entry, sorted by key.
func (p *Pool) Snapshots() []Snapshot {
	p.mu.Lock()
	out := make([]Snapshot, 0, len(p.entries))
	for _, e := range p.entries {
		out = append(out, e.snapshot())
	}
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Stats returns the pool's counters.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	byState := map[string]int{}
	var held int64
	for _, e := range p.entries {
		name, n := e.stateAndHeld()
		byState[name]++
		held += int64(n)
	}
	return Stats{
		Entries:          len(p.entries),
		Idle:             p.idle.Len(),
		Subscribers:      p.subscribers,
		ByState:          byState,
		UpstreamSessions: p.upstreamSessions.Load(),
		UpstreamFailures: p.upstreamFailures.Load(),
		Reconnects:       p.reconnects.Load(),
		Takeovers:        p.takeovers.Load(),
		Evictions:        p.evictions.Load(),
		BytesIn:          p.bytesIn.Load(),
		BufferedBytes:    held,
		EntryShare:       p.budget.share.Load(),
	}
}

// Subscription is one viewer's reference on an entry.
type Subscription struct {
	p      *Pool
	e      *Entry
	closed atomic.Bool
}

// Entry is the subscribed entry.
func (s *Subscription) Entry() *Entry { return s.e }

// NewReader returns a cursor for this viewer. gopCache chooses whether it
// starts at the buffered keyframe or waits for the next one.
func (s *Subscription) NewReader() *Reader {
	return &Reader{e: s.e, gopCache: s.p.cfg.GOPCache, maxLag: int64(s.p.cfg.MaxLag)}
}

// Close unregisters the viewer. Calls after the first do nothing.
func (s *Subscription) Close() {
	if s.closed.CompareAndSwap(false, true) {
		s.p.release(s)
	}
}

// Publisher is a source's handle on its entry.
type Publisher struct {
	p        *Pool
	e        *Entry
	gen      uint64
	name     string
	once     sync.Once
	attached atomic.Bool // a pull attaches at its first tag
}

// Replaced reports whether another source took the entry over from pb
// (pool.publisher_takeover, or a pull's restart): pb's tags are refused
// and its end changes nothing.
func (pb *Publisher) Replaced() bool {
	pb.e.mu.RLock()
	defer pb.e.mu.RUnlock()
	return pb.e.gen != pb.gen && pb.e.state != StateClosed
}

// AttemptFailed counts a failed attempt of a pull (connect, handshake,
// not found) for the metrics.
func (pb *Publisher) AttemptFailed() { pb.p.upstreamFailures.Add(1) }

// SetSource names where the tags come from (shown in the streams API); a
// pull calls it before its first tag when it picks an upstream.
func (pb *Publisher) SetSource(name string) { pb.name = name }

// Entry is the entry this publisher feeds.
func (pb *Publisher) Entry() *Entry { return pb.e }

// Done is closed when the entry ends for any reason.
func (pb *Publisher) Done() <-chan struct{} { return pb.e.doneCh }

// WriteTag serializes and publishes one tag; body is copied. It returns an
// error wrapping ErrEnded once the entry has ended, and ErrBadTag for a
// tag that cannot be relayed.
func (pb *Publisher) WriteTag(typ uint8, timestamp uint32, body []byte) error {
	if !pb.attached.Load() {
		pb.attached.Store(true)
		pb.p.mu.Lock()
		if pb.e.attach(pb.gen, pb.name) {
			pb.p.sourceBackLocked(pb.e)
		}
		pb.p.mu.Unlock()
	}
	if err := pb.e.append(pb.gen, typ, timestamp, body); err != nil {
		return err
	}
	pb.p.bytesIn.Add(uint64(len(body)))
	return nil
}

// Close ends the entry with reason (ErrSourceGone if nil). Calls after
// the first do nothing.
func (pb *Publisher) Close(reason error) {
	pb.once.Do(func() {
		if reason == nil {
			reason = ErrSourceGone
		}
		pb.p.sourceEnded(pb, reason)
	})
}
