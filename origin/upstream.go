package origin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"flvgw/gateway/access"
	"flvgw/pool"
)

// Upstream is an origin the gateway pulls streams from.
type Upstream struct {
	// Name identifies the upstream in logs and the streams API.
	Name string `toml:"name"`
	// URL is rtmp://host:port (RTMP play of {app}/{stream}),
	// http://host:port (HTTP-FLV pull of /{app}/{stream}.flv) or
	// https://host:port (the same over TLS, the upstream's certificate
	// checked for host).
	URL string `toml:"url"`
	// CAFile is a PEM file of the certificates that an https upstream's
	// chain must lead to, for a private CA or a self-signed upstream;
	// empty trusts the system's roots.
	CAFile string `toml:"ca_file"`
	// Apps limits the upstream to these apps; empty serves every app.
	Apps []string `toml:"apps"`
	// Query is added to every pull's request, for an upstream that wants
	// a key: the HTTP-FLV path's query, or the RTMP play name's
	// (stream?query, which nginx-rtmp's on_play and SRS's hooks read).
	Query string `toml:"query"`
	// PlaySecret signs every pull's request as flvgw -sign does, for an
	// upstream flvgw with auth.play_secret set to the same secret: the
	// request carries expires (the pull's start plus signedPullTTL) and
	// token.
	PlaySecret string `toml:"play_secret"`
}

// signedPullTTL is how long a signed pull's token is valid from the
// pull's start: an upstream checks it once, when the request comes.
const signedPullTTL = time.Hour

// pullQuery is the query of a pull of key from u at now: Query, then
// PlaySecret's expires and token; empty if neither is set.
func (u Upstream) pullQuery(key string, now time.Time) string {
	q := u.Query
	if u.PlaySecret != "" {
		if q != "" {
			q += "&"
		}
		q += access.Query(u.PlaySecret, key, now.Add(signedPullTTL))
	}
	return q
}

// target is an upstream ready to dial.
type target struct {
	Upstream
	scheme, host string
	tls          *tls.Config    // https: how its certificate is checked
	attempts     *attemptCounts // shared by every pull from this upstream
}

// attemptCounts counts the pull attempts of one upstream by how each went:
// an operator sees which origin fails, where flvgw_upstream_failures_total
// sums them all.
type attemptCounts struct {
	played      atomic.Uint64 // delivered media, however it ended later
	notFound    atomic.Uint64 // said it lacks the stream, or sent nothing in time
	unreachable atomic.Uint64 // could not be connected to, or refused the play
	malformed   atomic.Uint64 // broke the protocol before any tag
	// downUntil (Unix ns) is when an upstream that could not be reached
	// goes back to its place in the order: until then new pulls try it
	// after the others (edge.unreachable_cooldown).
	downUntil atomic.Int64
	mu        sync.Mutex
	firstTag  pool.FirstTagTimes // under mu
}

// started counts an attempt whose first audio or video frame reached the
// entry took after its start.
func (c *attemptCounts) started(took time.Duration) {
	if c != nil { // nil: a target not made by Resolver.Update
		c.mu.Lock()
		c.firstTag.Observe(took)
		c.mu.Unlock()
		c.played.Add(1)
		c.downUntil.Store(0)
	}
}

// firstTagTimes reads what started counted.
func (c *attemptCounts) firstTagTimes() pool.FirstTagTimes {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.firstTag
}

// down reports whether new pulls try the upstream after the others.
func (c *attemptCounts) down(now time.Time) bool {
	return c != nil && now.UnixNano() < c.downUntil.Load()
}

// failed counts an attempt that ended with err before any tag (not one
// cut short by the pull's own end); one that could not reach the upstream
// puts it after the others until downUntil.
func (c *attemptCounts) failed(err error, downUntil time.Time) {
	switch {
	case c == nil:
	case errors.Is(err, ErrMalformedRTMP), errors.Is(err, ErrMalformedFLV), errors.Is(err, pool.ErrBadTag):
		c.malformed.Add(1)
	case errors.Is(err, pool.ErrUpstreamNotFound):
		c.notFound.Add(1)
	default:
		c.unreachable.Add(1)
		// Not an upstream that took the play (or answered 200) and then
		// ended before any tag: that is its stream's source going away
		// there, not the upstream being down for every stream.
		if errors.Is(err, pool.ErrUpstreamUnreachable) {
			c.downUntil.Store(downUntil.UnixNano())
		}
	}
}

// parse splits URL into scheme and host:port. Its errors do not quote
// the URL: flvgw -check prints them and a reload logs them, and a URL
// refused for its user info or query may be carrying a credential
// (which a pull would not send: the URL is logged at the start and shown
// in the streams API as the entry's source, so it may hold none).
func (u Upstream) parse() (target, error) {
	parsed, err := url.Parse(u.URL)
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err // without the URL it quotes
	}
	switch {
	case err != nil:
		return target{}, fmt.Errorf("is not a URL: %w", err)
	case parsed.User != nil:
		return target{}, errors.New("has user info, which no pull sends: give only scheme://host:port, and a key in query or play_secret")
	case parsed.Scheme != "rtmp" && parsed.Scheme != "http" && parsed.Scheme != "https":
		return target{}, errors.New("scheme must be rtmp, http or https")
	case parsed.Port() == "" || parsed.Hostname() == "":
		return target{}, errors.New("needs host:port")
	case strings.Trim(parsed.Path, "/") != "" || parsed.RawQuery != "":
		return target{}, errors.New("give only scheme://host:port: the stream path is added per stream, and a key goes in query")
	}
	t := target{Upstream: u, scheme: parsed.Scheme, host: parsed.Host}
	if parsed.Scheme != "https" {
		if u.CAFile != "" {
			return target{}, errors.New("has a ca_file, which only an https upstream uses")
		}
		return t, nil
	}
	t.tls = &tls.Config{ServerName: parsed.Hostname(), MinVersion: tls.VersionTLS12}
	if u.CAFile != "" {
		pem, err := os.ReadFile(u.CAFile)
		if err != nil {
			return target{}, fmt.Errorf("ca_file: %w", err)
		}
		t.tls.RootCAs = x509.NewCertPool()
		if !t.tls.RootCAs.AppendCertsFromPEM(pem) {
			return target{}, fmt.Errorf("ca_file %s holds no PEM certificate", u.CAFile)
		}
	}
	return t, nil
}

// EdgeConfig sets how pulls behave.
type EdgeConfig struct {
	// PullTimeout bounds the time from a viewer's request to the first
	// tag from an upstream, across every upstream tried; after it the
	// viewer gets 404 (no upstream has the stream) or 502 (none reachable).
	// Once playing, an upstream silent this long counts as broken.
	PullTimeout time.Duration `toml:"pull_timeout"`
	// RetryBackoff is the first pause after every upstream failed once; it
	// doubles up to MaxBackoff.
	RetryBackoff time.Duration `toml:"retry_backoff"`
	// MaxBackoff caps RetryBackoff's doubling.
	MaxBackoff time.Duration `toml:"max_backoff"`
	// NotFoundTTL is how long a stream that every upstream said it lacks
	// (or sent nothing of within PullTimeout) is answered 404 at once,
	// without asking the upstreams again: players retrying an offline
	// stream every second then cost the origins nothing, and wait
	// nothing. 0 asks the upstreams for every new pull.
	NotFoundTTL time.Duration `toml:"not_found_ttl"`
	// UnreachableCooldown is how long an upstream that could not be
	// reached (refused or timed-out connection, failed TLS or RTMP
	// handshake, an HTTP status other than 200 and 404) is tried after
	// the others by new pulls, and by the rounds of running ones; one that
	// delivers a stream goes back to its place at once. 0 keeps the
	// configured order always.
	UnreachableCooldown time.Duration `toml:"unreachable_cooldown"`
}

// maxNotFound bounds the stream keys NotFoundTTL remembers (the least
// recently missed are forgotten first), so that invented names cannot
// grow it without end.
const maxNotFound = 4096

// DefaultEdgeConfig returns the defaults used when a key is absent.
func DefaultEdgeConfig() EdgeConfig {
	return EdgeConfig{PullTimeout: 5 * time.Second, RetryBackoff: 200 * time.Millisecond, MaxBackoff: 2 * time.Second,
		UnreachableCooldown: 10 * time.Second}
}

// Validate reports the first invalid field, named by its config key.
func (c EdgeConfig) Validate() error {
	switch {
	case c.PullTimeout < 100*time.Millisecond:
		return fmt.Errorf("edge.pull_timeout must be a duration of at least 100ms such as \"5s\", got %s", c.PullTimeout)
	case c.RetryBackoff < time.Millisecond:
		return fmt.Errorf("edge.retry_backoff must be a duration of at least 1ms, got %s", c.RetryBackoff)
	case c.MaxBackoff < c.RetryBackoff:
		return fmt.Errorf("edge.max_backoff must be at least edge.retry_backoff, got %s", c.MaxBackoff)
	case c.NotFoundTTL < 0:
		return fmt.Errorf("edge.not_found_ttl must not be negative, got %s", c.NotFoundTTL)
	case c.UnreachableCooldown < 0:
		return fmt.Errorf("edge.unreachable_cooldown must not be negative, got %s", c.UnreachableCooldown)
	}
	return nil
}

// ValidateUpstreams checks every [[upstream]].
func ValidateUpstreams(ups []Upstream) error {
	names := map[string]bool{}
	for i, u := range ups {
		where := fmt.Sprintf("upstream[%d]", i)
		if u.Name == "" {
			return fmt.Errorf("%s.name is empty", where)
		}
		if names[u.Name] {
			return fmt.Errorf("%s.name %q is used twice", where, u.Name)
		}
		names[u.Name] = true
		if _, err := u.parse(); err != nil {
			return fmt.Errorf("%s.url %w", where, err)
		}
		// The query may be a key, which is never logged: the errors
		// say what is wrong with it, not what it is.
		if strings.HasPrefix(u.Query, "?") || strings.ContainsAny(u.Query, " \t\r\n#") {
			return fmt.Errorf("%s.query: give the query without its ?, with no space, # or line break", where)
		}
		q, err := url.ParseQuery(u.Query)
		if err != nil {
			return fmt.Errorf("%s.query is not a URL query: a %% not followed by two hex digits, or a ; between its parameters", where)
		}
		if u.PlaySecret != "" && (q.Has("expires") || q.Has("token")) {
			return fmt.Errorf("%s.query has expires or token, which play_secret signs: an upstream would read the query's", where)
		}
		for _, app := range u.Apps {
			if _, err := pool.MakeKey(app, "x"); err != nil {
				return fmt.Errorf("%s.apps: %q: %w", where, app, err)
			}
		}
	}
	return nil
}

// Resolver finds the upstreams for a stream key; its upstream list can be
// replaced while pulls run (SIGHUP), affecting only new pulls.
type Resolver struct {
	state atomic.Pointer[resolverState]
	log   *slog.Logger
	// attempts are the upstreams' attempt counts by name; a reload keeps
	// the counts of the names it keeps. Under forget.
	attempts map[string]*attemptCounts
	// notFound holds the keys every upstream lacked, until when
	// (edge.not_found_ttl).
	notFound *lru.Cache[string, time.Time]
	// forget orders Update's purge of notFound with what pulls add to
	// it: a pull of an older state (one that started before a reload)
	// adds nothing.
	forget sync.Mutex
}

type resolverState struct {
	targets []target
	cfg     EdgeConfig
}

// NewResolver returns a resolver over ups (which should have passed
// ValidateUpstreams; invalid ones are left out).
func NewResolver(ups []Upstream, cfg EdgeConfig, log *slog.Logger) *Resolver {
	notFound, _ := lru.New[string, time.Time](maxNotFound) // errors only for a size under 1
	r := &Resolver{log: log, notFound: notFound}
	r.Update(ups, cfg)
	return r
}

// Update replaces the upstreams and pull settings for new pulls; what
// the old upstreams lacked is forgotten.
func (r *Resolver) Update(ups []Upstream, cfg EdgeConfig) {
	st := &resolverState{cfg: cfg}
	r.forget.Lock()
	defer r.forget.Unlock()
	attempts := make(map[string]*attemptCounts, len(ups))
	for _, u := range ups {
		t, err := u.parse()
		if err != nil {
			// Validated before, so something changed since, such as its
			// ca_file removed between a reload's check and this.
			r.log.Error("upstream left out", "upstream", u.Name, "error", err)
			continue
		}
		t.attempts = r.attempts[u.Name]
		if t.attempts == nil {
			t.attempts = &attemptCounts{}
		}
		// Back in its place: the reload may have fixed its URL, or set
		// edge.unreachable_cooldown to 0.
		t.attempts.downUntil.Store(0)
		attempts[u.Name] = t.attempts
		st.targets = append(st.targets, t)
	}
	r.attempts = attempts
	r.notFound.Purge()
	r.state.Store(st)
}

// Attempts reports each configured upstream's pull attempts by outcome,
// in configured order: every upstream from the start, at zero until it
// is first tried, so that its series never vanish from the metrics.
func (r *Resolver) Attempts() []pool.UpstreamAttempts {
	st := r.state.Load()
	now := time.Now()
	out := make([]pool.UpstreamAttempts, 0, len(st.targets))
	for _, t := range st.targets {
		out = append(out, pool.UpstreamAttempts{
			Upstream:    t.Name,
			Played:      t.attempts.played.Load(),
			NotFound:    t.attempts.notFound.Load(),
			Unreachable: t.attempts.unreachable.Load(),
			Malformed:   t.attempts.malformed.Load(),
			TriedLast:   t.attempts.down(now),
			FirstTag:    t.attempts.firstTagTimes(),
		})
	}
	return out
}

// Resolve is the pool's resolver: a key whose app some upstream serves
// gets a pull over those upstreams, in configured order; others get nil.
func (r *Resolver) Resolve(key string) pool.Source {
	st := r.state.Load()
	app, stream, _ := strings.Cut(key, "/")
	serving := st.serving(app)
	if len(serving) == 0 {
		return nil
	}
	if until, ok := r.notFound.Get(key); ok {
		if time.Now().Before(until) {
			return pool.Missing // 404 at once: the upstreams lacked it a moment ago
		}
		r.notFound.Remove(key)
	}
	return &pull{app: app, stream: stream, r: r, st: st, upstreams: serving, cfg: st.cfg, log: r.log.With("stream", key)}
}

// serving lists the upstreams that serve app, in configured order.
func (st *resolverState) serving(app string) []target {
	var serving []target
	for _, u := range st.targets {
		if len(u.Apps) == 0 || slices.Contains(u.Apps, app) {
			serving = append(serving, u)
		}
	}
	return serving
}

// pull is a pool.Source that plays a stream from the first upstream that
// has it, failing over in order and backing off between rounds.
type pull struct {
	app, stream string
	r           *Resolver
	// st is the resolver's state that upstreams and cfg come from. A run
	// that finds another one in force (a reload since the last run: the
	// pool restarts a pull within pool.reconnect_window) takes its
	// upstreams and settings, so that a restart does not keep asking an
	// upstream the running file no longer names, or with a query or
	// play_secret it replaced. Only Run reads or changes these: the pool
	// starts a run once the one before it has returned.
	st        *resolverState
	upstreams []target
	cfg       EdgeConfig
	log       *slog.Logger
	// played is set once an upstream delivered the stream: the runs after
	// it are restarts within pool.reconnect_window, for viewers kept, and
	// their "not found" (a publisher not back yet) is not remembered.
	played atomic.Bool
}

// missing remembers the stream as lacked by every upstream, for
// edge.not_found_ttl, unless a reload replaced the upstreams it asked.
func (s *pull) missing() {
	if s.cfg.NotFoundTTL <= 0 {
		return
	}
	s.r.forget.Lock()
	defer s.r.forget.Unlock()
	if s.r.state.Load() == s.st { // not reloaded since the run started
		s.r.notFound.Add(s.app+"/"+s.stream, time.Now().Add(s.cfg.NotFoundTTL))
	}
}

func (s *pull) Name() string { return "pull" }

// Run tries the upstreams until one delivers the stream, then relays it
// until it ends. A mid-stream end returns an error wrapping
// pool.ErrSourceGone, so the pool may restart the pull within its
// reconnect window; bad input ends the entry, unless it came before any
// tag and another upstream is left to try.
func (s *pull) Run(ctx context.Context, pub *pool.Publisher) error {
	if st := s.r.state.Load(); st != s.st {
		s.st, s.upstreams, s.cfg = st, st.serving(s.app), st.cfg
		s.log.Info("pull takes the upstreams of a reload", "upstreams", len(s.upstreams))
	}
	if len(s.upstreams) == 0 {
		return fmt.Errorf("%w: no upstream serves app %s since a reload", pool.ErrUpstreamNotFound, s.app)
	}
	deadline := time.Now().Add(s.cfg.PullTimeout)
	backoff := s.cfg.RetryBackoff
	var last, lackedBy, malformed error      // lackedBy: the last "not found"
	broken := make([]bool, len(s.upstreams)) // sent malformed data: not asked again
	lacked := make([]bool, len(s.upstreams)) // the last answer was that it lacks the stream
	notFound := false
	order := make([]int, 0, len(s.upstreams))
	for {
		answered := 0 // upstreams that said plainly they lack the stream, or are broken
		for pos, i := range s.order(order[:0], time.Now()) {
			u := s.upstreams[i]
			if broken[i] {
				answered++
				continue
			}
			// Share what is left of pull_timeout among the upstreams left
			// in this round, so a silent one cannot starve the next.
			left := time.Until(deadline)
			if left <= 0 {
				break
			}
			budget := left / time.Duration(len(s.upstreams)-pos)
			produced, err := s.once(ctx, u, pub, max(budget, 100*time.Millisecond))
			if produced {
				s.played.Store(true)
			}
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case errors.Is(err, ErrMalformedRTMP), errors.Is(err, ErrMalformedFLV), errors.Is(err, pool.ErrBadTag):
				// Untrusted input broke the protocol. Once its tags reached
				// the entry, the entry ends (no reconnect); before that, it
				// is a broken upstream: the others are tried, it is not.
				s.log.Error("upstream sent malformed data", "upstream", u.Name, "error", err)
				if produced {
					return err
				}
				broken[i], malformed = true, err
				// A failed attempt, also when it is the last upstream left
				// and ends the pull.
				pub.AttemptFailed()
				u.attempts.failed(err, time.Now().Add(s.cfg.UnreachableCooldown))
				if !slices.Contains(broken, false) {
					return err
				}
				answered++
				continue
			case produced:
				s.log.Warn("upstream ended", "upstream", u.Name, "error", err)
				return fmt.Errorf("%w: %w", pool.ErrSourceGone, err)
			case errors.Is(err, pool.ErrEnded), errors.Is(err, pool.ErrStale):
				return err
			case errors.Is(err, pool.ErrUpstreamNotFound):
				notFound, lackedBy = true, err
				if !errors.Is(err, errSilent) {
					answered++
				}
			}
			last = err
			lacked[i] = errors.Is(err, pool.ErrUpstreamNotFound)
			// Counted per upstream where the pool's total is, so that the
			// two agree: an attempt cut short by the pull's cancel or its
			// entry's end (returned above) is no upstream's failure.
			pub.AttemptFailed()
			u.attempts.failed(err, time.Now().Add(s.cfg.UnreachableCooldown))
			s.log.Info("upstream attempt failed", "upstream", u.Name, "error", err)
		}
		// Every upstream answered "no such stream": say so now rather than
		// at the end of pull_timeout.
		if answered == len(s.upstreams) || time.Until(deadline) <= 0 {
			if notFound {
				// Remembered only if every upstream lacked it (or is
				// broken): one that could not be reached, or was not
				// asked before the deadline, may have it.
				if !s.played.Load() && everyLacked(broken, lacked) {
					s.missing()
				}
				// The answer that it lacks the stream, not an unreachable
				// upstream's error, which may have come after it: the
				// viewer's 404 is told from a 502 by the error's chain.
				return lackedBy
			}
			if last == nil && malformed != nil { // every upstream asked was broken
				return malformed
			}
			return fmt.Errorf("%w: %w", pool.ErrUpstreamUnreachable, last)
		}
		pause := time.NewTimer(min(backoff, time.Until(deadline)))
		select {
		case <-ctx.Done():
			pause.Stop()
			return ctx.Err()
		case <-pause.C:
		}
		backoff = min(backoff*2, s.cfg.MaxBackoff)
	}
}

// order appends to dst the indexes of the upstreams in the order a round
// tries them: in configured order, but those found unreachable within
// edge.unreachable_cooldown after the others, so that while an origin is
// down each new pull does not first spend its share of pull_timeout on it.
func (s *pull) order(dst []int, now time.Time) []int {
	for i, u := range s.upstreams {
		if !u.attempts.down(now) {
			dst = append(dst, i)
		}
	}
	for i, u := range s.upstreams {
		if u.attempts.down(now) && !slices.Contains(dst, i) {
			dst = append(dst, i)
		}
	}
	return dst
}

// everyLacked reports whether each upstream is broken or said last that
// it lacks the stream.
func everyLacked(broken, lacked []bool) bool {
	for i := range broken {
		if !broken[i] && !lacked[i] {
			return false
		}
	}
	return true
}

// errSilent marks a "not found" concluded from silence, not from an answer.
var errSilent = errors.New("no media in time")

// once plays from one upstream. produced reports whether an audio or
// video frame reached the entry (see tagRelay.produced); firstWithin
// bounds the attempt up to it, all of it: the dial, a TLS handshake, the
// request or the RTMP handshake and play, and the wait for media share
// one deadline.
func (s *pull) once(ctx context.Context, u target, pub *pool.Publisher, firstWithin time.Duration) (produced bool, err error) {
	began := time.Now()
	firstBy := began.Add(firstWithin)
	d := net.Dialer{Deadline: firstBy}
	conn, err := d.DialContext(ctx, "tcp", u.host)
	if err != nil {
		return false, fmt.Errorf("%s: %w: %w", u.Name, pool.ErrUpstreamUnreachable, err)
	}
	defer conn.Close()
	// The cancel closes the TCP connection itself: conn becomes the TLS
	// one below, which this goroutine must not reassign under the
	// cancel's goroutine, and whose Close would first send close_notify.
	raw := conn
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	defer stop()
	if u.tls != nil {
		tc := tls.Client(conn, u.tls)
		hctx, cancel := context.WithDeadline(ctx, firstBy)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			return false, fmt.Errorf("%s: %w: TLS: %w", u.Name, pool.ErrUpstreamUnreachable, err)
		}
		conn = tc
	}
	s.log.Debug("upstream connected", "upstream", u.Name, "first_within", firstWithin)
	pub.SetSource(u.Name + " " + u.URL)
	relay := &tagRelay{pub: pub, conn: conn, stall: s.cfg.PullTimeout, attempts: u.attempts, began: began}
	query := u.pullQuery(s.app+"/"+s.stream, time.Now())
	if u.scheme != "rtmp" {
		err = pullHTTPFLV(conn, u, s.app, s.stream, query, firstBy, relay)
	} else {
		err = pullRTMP(conn, u, s.app, s.stream, query, firstBy, firstWithin, relay)
	}
	if err != nil && !relay.produced && isTimeout(err) {
		// Reachable, but nothing came: the upstream does not have it. The
		// read's error is quoted, not wrapped: a handshake or response
		// head it cut short wraps pool.ErrUpstreamUnreachable, which a
		// viewer's answer is told by first (502, not the 404 of a stream
		// no upstream has).
		err = fmt.Errorf("%w: %w within %s: %v", pool.ErrUpstreamNotFound, errSilent, firstWithin.Round(time.Millisecond), err)
	}
	if err != nil {
		err = fmt.Errorf("%s: %w", u.Name, err)
	}
	return relay.produced, err
}

// tagRelay forwards an upstream's tags to the entry and keeps the
// deadlines moving: once media flows, silence for stall is a broken pull.
type tagRelay struct {
	pub      *pool.Publisher
	conn     net.Conn
	stall    time.Duration
	attempts *attemptCounts
	began    time.Time // the attempt's start
	// produced: an audio or video frame reached the entry. onMetaData and
	// sequence headers alone have not delivered the stream: an origin
	// answering for a publisher that sends nothing (SRS sends them at
	// once) is not the stream's source, and its share of pull_timeout
	// runs on, after which the next upstream is tried. Until the first
	// frame they wait in headers, the newest of each kind, so that such
	// an upstream neither makes a waiting entry live nor ends a reconnect
	// window, nor moves the deadline.
	produced bool
	headers  [3]*pendingTag // onMetaData, video and audio sequence headers
}

// pendingTag is a header tag held until the upstream's first frame. Its
// body is the reader's own: the FLV reader and the chunk reader allocate
// each tag and message afresh.
type pendingTag struct {
	typ  uint8
	ts   uint32
	body []byte
}

// onMetaDataPrefix is how an onMetaData script tag's body begins: the
// AMF0 string "onMetaData".
const onMetaDataPrefix = "\x02\x00\x0aonMetaData"

func (r *tagRelay) write(typ uint8, ts uint32, body []byte) error {
	if len(body) == 0 {
		return nil
	}
	if !r.produced {
		// The newest of each kind is held, whatever came between: at
		// most three tags, and none of the three lost to others. Other
		// script tags before the first frame (cue points) are dropped.
		switch {
		case typ == pool.TagScript:
			if len(body) >= len(onMetaDataPrefix) && string(body[:len(onMetaDataPrefix)]) == onMetaDataPrefix {
				r.headers[0] = &pendingTag{typ, ts, body}
			}
			return nil
		case pool.IsSequenceHeader(typ, body):
			slot := 1 // video
			if typ == pool.TagAudio {
				slot = 2
			}
			r.headers[slot] = &pendingTag{typ, ts, body}
			return nil
		}
		for _, h := range r.headers {
			if h == nil {
				continue
			}
			if err := r.pub.WriteTag(h.typ, h.ts, h.body); err != nil {
				return err
			}
		}
		r.headers = [3]*pendingTag{}
	}
	if err := r.pub.WriteTag(typ, ts, body); err != nil {
		return err
	}
	if !r.produced {
		r.produced = true
		r.attempts.started(time.Since(r.began))
	}
	// The write deadline moves too: crypto/tls answers a TLS 1.3
	// upstream's key update with a write inside the read, which the
	// setup's write deadline, long past, failed, after which it kept the
	// old read key and the upstream's next record broke the pull. An
	// RTMP pull's own writes set theirs (rtmpPlayer.write).
	return r.conn.SetDeadline(time.Now().Add(r.stall))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
