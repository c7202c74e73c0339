// Package origin is flvgw's ingest side: the embedded RTMP origin server
// that accepts publishes from encoders (OBS, ffmpeg) and feeds them into
// the pool as entries, and the pulls of streams nobody publishes here from
// upstream origins ([[upstream]]: RTMP play or HTTP-FLV), with failover.
package origin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	rtmp "github.com/yutopp/go-rtmp"
	rtmpmsg "github.com/yutopp/go-rtmp/message"

	"flvgw/gateway/access"
	"flvgw/pool"
)

// Config configures the embedded RTMP origin.
type Config struct {
	// Listen is the RTMP listen address; empty disables the origin.
	Listen string `toml:"listen"`
	// ReadTimeout ends a publisher that sends no media for this long, so
	// a stalled encoder cannot hold viewers on a stream nobody feeds, and
	// a connection that makes no step towards a publish (its handshake,
	// connect, publish) for this long, so a peer sending a byte now and
	// then cannot hold a connection either.
	ReadTimeout time.Duration `toml:"read_timeout"`
	// ProxyProtocol: the RTMP listener is behind a TCP load balancer that
	// begins each connection with a PROXY protocol header (v1 or v2)
	// naming the publisher. Every connection must begin with one.
	ProxyProtocol bool `toml:"proxy_protocol"`
	// ProxyProtocolFrom are the addresses or CIDR prefixes of the
	// balancers that may send that header; a connection from any other
	// peer is closed at once. Empty: any peer.
	ProxyProtocolFrom []string `toml:"proxy_protocol_from"`
	// PublishSecret, when set, requires a signed stream name to publish:
	// rtmp://host/app/stream?expires=UNIX&token=HMAC (see flvgw -sign).
	PublishSecret string `toml:"publish_secret"`
	// OnPublish, when set, is POSTed {"action":"publish",...} before a
	// publish is accepted; a 2xx answer allows it.
	OnPublish string `toml:"on_publish"`
	// OnPublishDone, when set, is POSTed {"action":"publish_done",...}
	// when a publish ends, with the media bytes received, the duration
	// and the reason. Its answer changes nothing; see access.Notifier.
	OnPublishDone string `toml:"on_publish_done"`
	// CallbackTimeout bounds OnPublish (a timeout refuses the publish)
	// and OnPublishDone.
	CallbackTimeout time.Duration `toml:"callback_timeout"`
	// MaxConnections bounds the RTMP connections open at once, publishing
	// or not yet: each may hold megabytes of unfinished messages before
	// it has shown any credential. One over it is closed at once. 0: no
	// bound.
	MaxConnections int `toml:"max_connections"`
	// MaxConnectionsPerIP bounds them per client address (the PROXY
	// header's, behind a balancer that sends it). 0: no bound.
	MaxConnectionsPerIP int `toml:"max_connections_per_ip"`
}

// RTMPStats are the origin's connection counts, for the metrics.
type RTMPStats struct {
	Connections  int    // open now
	RefusedTotal uint64 // closed at once: rtmp.max_connections reached
	RefusedPerIP uint64 // closed at once: rtmp.max_connections_per_ip reached
}

// DefaultConfig returns the defaults used when a key is absent.
func DefaultConfig() Config {
	return Config{Listen: "127.0.0.1:1935", ReadTimeout: 10 * time.Second, CallbackTimeout: 2 * time.Second, MaxConnections: 1024}
}

// Validate reports the first invalid field, named by its config key.
// The other keys are checked also with the origin off (Listen empty): a
// SIGHUP applies them to an origin started from an earlier file.
func (c Config) Validate() error {
	if c.Listen != "" {
		_, port, err := net.SplitHostPort(c.Listen)
		if err == nil {
			_, err = net.LookupPort("tcp", port) // as net.Listen reads it
		}
		if err != nil {
			return fmt.Errorf("rtmp.listen: %w", err)
		}
	}
	if c.ReadTimeout < 100*time.Millisecond {
		return fmt.Errorf("rtmp.read_timeout must be a duration of at least 100ms such as \"10s\", got %s", c.ReadTimeout)
	}
	if c.MaxConnections < 0 {
		return fmt.Errorf("rtmp.max_connections must not be negative, got %d", c.MaxConnections)
	}
	if c.MaxConnectionsPerIP < 0 {
		return fmt.Errorf("rtmp.max_connections_per_ip must not be negative, got %d", c.MaxConnectionsPerIP)
	}
	if err := access.ValidateConfig("rtmp", "on_publish", c.OnPublish, c.CallbackTimeout); err != nil {
		return err
	}
	return access.ValidateConfig("rtmp", "on_publish_done", c.OnPublishDone, c.CallbackTimeout)
}

// Server is the embedded RTMP origin.
type Server struct {
	cfg      atomic.Pointer[Config]
	pool     *pool.Pool
	log      *slog.Logger
	draining atomic.Bool

	notify *access.Notifier // rtmp.on_publish_done

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]netip.Addr // the client's address
	perIP  map[netip.Addr]int
	wg     sync.WaitGroup

	refusedTotal, refusedPerIP atomic.Uint64
	refusedLogged              time.Time // under mu: the last refusal logged
	refusedUnlogged            int       // under mu: refusals since, not logged
}

// NewServer returns an origin publishing into p.
func NewServer(cfg Config, p *pool.Pool, log *slog.Logger) *Server {
	s := &Server{pool: p, log: log, conns: make(map[net.Conn]netip.Addr), perIP: make(map[netip.Addr]int),
		notify: access.NewNotifier(maxNotifications, log)}
	s.cfg.Store(&cfg)
	return s
}

// maxNotifications bounds the rtmp.on_publish_done posts in flight.
const maxNotifications = 64

// SetConfig applies cfg to new connections and publishes (SIGHUP): the
// publish auth and the read timeout. The listen address needs a restart.
func (s *Server) SetConfig(cfg Config) { s.cfg.Store(&cfg) }

// Notifier is the one that posts rtmp.on_publish_done, for its metrics.
func (s *Server) Notifier() *access.Notifier { return s.notify }

// Drain refuses new publishes; current publishers go on.
func (s *Server) Drain() { s.draining.Store(true) }

// Serve accepts RTMP connections on ln until ctx is done, then closes the
// listener and every connection and waits for their handlers to end.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	quiet := logrus.New()
	quiet.Out = io.Discard
	srv := rtmp.NewServer(&rtmp.ServerConfig{
		OnConnect: func(c net.Conn) (io.ReadWriteCloser, *rtmp.ConnConfig) {
			h := s.newHandler(c)
			return &deadlineConn{Conn: c, timeout: s.cfg.Load().ReadTimeout, media: &h.media}, &rtmp.ConnConfig{
				Handler: h,
				ControlState: rtmp.StreamControlStateConfig{
					DefaultBandwidthWindowSize: 6 * 1024 * 1024 / 8,
					// go-rtmp's default is 2^32-1: each stream may hold
					// an unfinished message of up to 16 MiB.
					MaxChunkStreams: maxChunkStreams,
					// The same bounds as the pull client's: go-rtmp's
					// defaults let a peer hold 16 MiB on each stream.
					MaxMessageSize:     maxMessageLen,
					MaxUnfinishedBytes: maxPendingBytes,
					// go-rtmp's default is 2^32-1: a peer's createStream
					// commands each kept a stream until the connection
					// closed, and each looked for a free id from 0 up.
					MaxMessageStreams: maxMessageStreams,
					// go-rtmp took any window a peer asked for, and
					// acknowledged every chunk for a window of 1.
					MinAckWindowSize: minAckWindow,
				},
				Logger: quiet,
			}
		},
	})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	<-ctx.Done()
	_ = srv.Close()
	// go-rtmp's Close closes the listener only once its Serve has
	// registered it: closing it here too ends an Accept that began after.
	_ = ln.Close()
	<-served
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.notify.Wait() // the publishes' last notifications, each within callback_timeout
	return nil
}

// Stats reports the connections open and those refused by the limits.
func (s *Server) Stats() RTMPStats {
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()
	return RTMPStats{Connections: n, RefusedTotal: s.refusedTotal.Load(), RefusedPerIP: s.refusedPerIP.Load()}
}

// newHandler makes c's handler. A connection accepted while Serve ends
// (go-rtmp calls OnConnect from the connection's own goroutine) is closed
// at once and left out of the wait group: every Add happens under mu
// before closed is set, so none races Serve's Wait. So is one over
// rtmp.max_connections or rtmp.max_connections_per_ip, counted and
// logged (at most once a second: a peer may connect in a loop).
func (s *Server) newHandler(c net.Conn) *handler {
	h := &handler{srv: s, conn: c, remote: c.RemoteAddr().String()}
	var ip netip.Addr
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ip = ta.AddrPort().Addr().Unmap()
	}
	cfg := s.cfg.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	var limit string
	switch {
	case s.closed:
		_ = c.Close()
		return h
	case cfg.MaxConnections > 0 && len(s.conns) >= cfg.MaxConnections:
		s.refusedTotal.Add(1)
		limit = "rtmp.max_connections"
	case cfg.MaxConnectionsPerIP > 0 && ip.IsValid() && s.perIP[ip] >= cfg.MaxConnectionsPerIP:
		s.refusedPerIP.Add(1)
		limit = "rtmp.max_connections_per_ip"
	}
	if limit != "" {
		_ = c.Close()
		if now := time.Now(); now.Sub(s.refusedLogged) >= time.Second {
			s.log.Warn("rtmp connection refused: limit reached", "remote", h.remote, "setting", limit,
				"connections", len(s.conns), "unlogged_since_last", s.refusedUnlogged)
			s.refusedLogged, s.refusedUnlogged = now, 0
		} else {
			s.refusedUnlogged++
		}
		return h
	}
	h.tracked = true
	s.wg.Add(1)
	s.conns[c] = ip
	if ip.IsValid() {
		s.perIP[ip]++
	}
	return h
}

// forget ends the tracking of h's connection, if it was tracked.
func (s *Server) forget(h *handler) {
	if !h.tracked {
		return
	}
	s.mu.Lock()
	if ip := s.conns[h.conn]; ip.IsValid() {
		if s.perIP[ip]--; s.perIP[ip] == 0 {
			delete(s.perIP, ip)
		}
	}
	delete(s.conns, h.conn)
	s.mu.Unlock()
	s.wg.Done()
}

// handler serves one RTMP connection. go-rtmp calls its methods from the
// connection's goroutine only.
type handler struct {
	rtmp.DefaultHandler
	srv      *Server
	conn     net.Conn
	tracked  bool // counted in srv.wg and srv.conns (see newHandler)
	remote   string
	app      string
	key      string
	pub      *pool.Publisher
	streamID uint32 // the RTMP message stream pub is published on
	// The publish's stream name and query, start, and media bytes, for
	// rtmp.on_publish_done.
	name, query string
	started     time.Time
	bytesIn     uint64
	refusedBy   error // why the entry refused the publish's media, if it did
	buf         bytes.Buffer
	err         error // why go-rtmp ended the connection, if not a close
	logged      bool  // the handler already logged the error that ended it
	handshaken  bool
	refused     int        // publishes refused as the connection already published
	empty       int        // publishes in a row that ended without media
	media       mediaWatch // read by the connection's deadlineConn
}

// maxEmptyPublishes is how many publishes in a row one connection may end
// without having sent media: past it the next publish is refused and the
// connection closed. A peer repeating publish and closeStream makes no
// media, yet each publish counts as a step for rtmp.read_timeout, and
// costs a log line and an rtmp.on_publish call (and on_publish_done) at
// the peer's rate.
const maxEmptyPublishes = 3

// mediaWatch counts a connection's steps to a publish (the handshake's
// end, connect, the publish's start) and the media it relayed, so that
// its read timeout counts from its last step or media rather than from
// its last byte.
type mediaWatch struct {
	progress atomic.Uint64
}

func (h *handler) OnConnect(_ uint32, cmd *rtmpmsg.NetConnectionConnect) error {
	h.app = stripQuery(cmd.Command.App)
	h.media.progress.Add(1)
	return nil
}

func (h *handler) OnPublish(ctx *rtmp.StreamContext, _ uint32, cmd *rtmpmsg.NetStreamPublish) error {
	// The query (a signed URL's token, an encoder's stream key) is a
	// credential and stays out of the log.
	name, query, _ := strings.Cut(cmd.PublishingName, "?")
	log := h.srv.log.With("remote", h.remote, "app", h.app, "stream", name)
	if h.pub != nil {
		// The connection's publish goes on: its viewers do not end
		// because the encoder tried to publish another stream too.
		// Logged once: the connection may ask again and again.
		err := errors.New("origin: connection already publishes")
		if h.refused++; h.refused == 1 {
			log.Warn("publish refused", "error", err)
		} else {
			log.Debug("publish refused", "error", err)
		}
		return keepConnection{err}
	}
	if h.srv.draining.Load() {
		return h.refuse(log, errors.New("origin: draining"))
	}
	if h.empty >= maxEmptyPublishes {
		return h.refuse(log, fmt.Errorf("origin: %d publishes in a row on this connection ended without media", h.empty))
	}
	key, err := pool.MakeKey(h.app, name)
	if err != nil {
		return h.refuse(log, err)
	}
	if err := h.authorize(key, name, query); err != nil {
		return h.refuse(log, err)
	}
	pub, err := h.srv.pool.Publish(key, "rtmp-publish://"+h.remote)
	if err != nil {
		return h.refuse(log, err)
	}
	h.key, h.pub, h.streamID = key, pub, ctx.StreamID
	h.name, h.query, h.started, h.bytesIn = name, query, time.Now(), 0
	// The read timeout counts from here: the on_publish callback may have
	// taken most of it since the last read.
	h.media.progress.Add(1)
	log.Info("publish started", "key", key)
	return nil
}

// OnDeleteStream ends the publish when the publisher deletes the stream it
// publishes on, as an encoder does when it stops: the entry's viewers end
// (or wait within pool.reconnect_window) at once, not when the connection
// closes or falls silent for rtmp.read_timeout, the key is free, and the
// connection may publish again.
func (h *handler) OnDeleteStream(_ uint32, cmd *rtmpmsg.NetStreamDeleteStream) error {
	h.endPublish(cmd.StreamID, "deleteStream")
	return nil
}

// OnCloseStream (called by origin/third_party/go-rtmp) ends the publish on
// streamID as OnDeleteStream does: closeStream stops a stream's publish
// and keeps the stream, which may publish again.
func (h *handler) OnCloseStream(streamID uint32) error {
	h.endPublish(streamID, "closeStream")
	return nil
}

// endPublish ends the connection's publish if it is on streamID.
func (h *handler) endPublish(streamID uint32, by string) {
	if h.pub != nil && streamID == h.streamID {
		if h.bytesIn == 0 {
			h.empty++
		} else {
			h.empty = 0
		}
		h.pub.Close(pool.ErrSourceGone)
		h.srv.log.Info("publish ended", "key", h.key, "remote", h.remote, "by", by)
		h.publishDone(by)
		h.key, h.pub = "", nil
	}
}

// publishDone posts the connection's publish's end to
// rtmp.on_publish_done, if set, without waiting for it.
func (h *handler) publishDone(reason string) {
	cfg := h.srv.cfg.Load()
	if cfg.OnPublishDone == "" {
		return
	}
	h.srv.notify.Notify("rtmp.on_publish_done", cfg.OnPublishDone, cfg.CallbackTimeout, access.Event{
		Action: "publish_done", App: h.app, Stream: h.name, Client: h.remote, Query: h.query,
		Bytes: h.bytesIn, DurationMS: time.Since(h.started).Milliseconds(), Reason: reason,
	})
}

// keepConnection is a publish's refusal that leaves its connection open.
type keepConnection struct{ error }

func (keepConnection) KeepConnection() bool { return true }

// refuse logs a refused publish and returns err, which ends the connection.
func (h *handler) refuse(log *slog.Logger, err error) error {
	log.Warn("publish refused", "error", err)
	h.logged = true
	return err
}

// authorize applies publish_secret and on_publish.
func (h *handler) authorize(key, name, query string) error {
	cfg := h.srv.cfg.Load()
	if cfg.PublishSecret != "" {
		q, _ := url.ParseQuery(query)
		if err := access.Check(cfg.PublishSecret, key, q.Get("expires"), q.Get("token"), time.Now()); err != nil {
			return err
		}
	}
	if cfg.OnPublish != "" {
		cb := access.Callback{URL: cfg.OnPublish, Timeout: cfg.CallbackTimeout}
		req := access.Request{Action: "publish", App: h.app, Stream: name, Client: h.remote, Query: query}
		if err := cb.Ask(context.Background(), req); err != nil {
			return err
		}
	}
	return nil
}

func (h *handler) OnPlay(_ *rtmp.StreamContext, _ uint32, cmd *rtmpmsg.NetStreamPlay) error {
	h.srv.log.Warn("rtmp play refused", "remote", h.remote, "stream", stripQuery(cmd.StreamName), "error", "the origin serves HTTP-FLV only")
	h.logged = true
	return errors.New("origin: play is served over HTTP-FLV")
}

func (h *handler) OnSetDataFrame(timestamp uint32, data *rtmpmsg.NetStreamSetDataFrame) error {
	return h.write(pool.TagScript, timestamp, data.Payload)
}

func (h *handler) OnAudio(timestamp uint32, payload io.Reader) error {
	return h.writeFrom(pool.TagAudio, timestamp, payload)
}

func (h *handler) OnVideo(timestamp uint32, payload io.Reader) error {
	return h.writeFrom(pool.TagVideo, timestamp, payload)
}

// OnAggregate (called by origin/third_party/go-rtmp) feeds the FLV tags
// of an aggregate message (type 22), which relays and some encoders send
// their media in, to the entry as the messages they stand for would be:
// audio and video as OnAudio and OnVideo do, stamped as splitAggregate
// says; a script tag that is onMetaData (an FLV file's script tag, or sent
// as @setDataFrame) as OnSetDataFrame does; other script tags are dropped,
// as go-rtmp drops data messages other than @setDataFrame. A malformed
// aggregate ends the connection (its error wraps ErrMalformedRTMP, and
// OnClose logs it); none of its tags reach the entry.
func (h *handler) OnAggregate(timestamp uint32, payload io.Reader) error {
	h.buf.Reset()
	defer h.keepSmallBuffer()
	if _, err := h.buf.ReadFrom(payload); err != nil {
		return fmt.Errorf("origin: read payload: %w", err)
	}
	return relayAggregateTags(timestamp, h.buf.Bytes(), h.write)
}

// OnUnknownMessage (called by origin/third_party/go-rtmp) is given the
// messages no state of a stream handles, and ignores them. A shared-object
// message (type 19, or 16 in AMF3: a Flash client's use of a remote
// shared object, which flvgw does not serve) is logged at debug; nginx-rtmp
// and SRS ignore them too.
func (h *handler) OnUnknownMessage(_ uint32, msg rtmpmsg.Message) error {
	switch msg.(type) {
	case *rtmpmsg.SharedObjectMessageAMF0, *rtmpmsg.SharedObjectMessageAMF3:
		h.srv.log.Debug("shared object message ignored", "remote", h.remote, "key", h.key, "type", int(msg.TypeID()))
	}
	return nil
}

// maxKeptBuffer bounds the message buffer a connection keeps between
// messages: one large message (up to 8 MiB) would otherwise hold its
// size for the connection's life.
const maxKeptBuffer = 1 << 20

// keepSmallBuffer lets a buffer grown past maxKeptBuffer go, once its
// message is done with (the entry copies what it keeps).
func (h *handler) keepSmallBuffer() {
	if h.buf.Cap() > maxKeptBuffer {
		h.buf = bytes.Buffer{}
	}
}

func (h *handler) writeFrom(typ uint8, timestamp uint32, payload io.Reader) error {
	h.buf.Reset()
	defer h.keepSmallBuffer()
	if _, err := h.buf.ReadFrom(payload); err != nil {
		return fmt.Errorf("origin: read payload: %w", err)
	}
	return h.write(typ, timestamp, h.buf.Bytes())
}

func (h *handler) write(typ uint8, timestamp uint32, body []byte) error {
	if h.pub == nil {
		return errors.New("origin: media before publish")
	}
	err := h.pub.WriteTag(typ, timestamp, body)
	switch {
	case err == nil:
		h.media.progress.Add(1)
		h.bytesIn += uint64(len(body))
		return nil
	case errors.Is(err, pool.ErrBadTag):
		h.srv.log.Debug("tag dropped", "key", h.key, "error", err)
		return nil
	default:
		h.srv.log.Info("publisher disconnected", "key", h.key, "error", err)
		h.logged, h.refusedBy = true, err
		return err
	}
}

// OnServe is called once the RTMP handshake is done.
func (h *handler) OnServe(*rtmp.Conn) {
	h.handshaken = true
	h.media.progress.Add(1)
}

// OnServeError is called by origin/third_party/go-rtmp, before OnClose,
// with the error that ended the connection. The peer hanging up (a TCP
// health check does it before the handshake) and the origin's own close
// at shutdown are closes, not failures.
func (h *handler) OnServeError(err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return
	}
	h.err = err
}

func (h *handler) OnClose() {
	failed := h.err != nil && !h.logged
	switch {
	case h.pub != nil && h.pub.Replaced():
		// A new publisher of the key took the stream over from this
		// connection (pool.publisher_takeover), which feeds nothing now.
		h.pub.Close(pool.ErrSourceGone)
		h.srv.log.Info("publish ended", "key", h.key, "remote", h.remote, "by", "takeover")
		h.publishDone("takeover")
	case h.pub != nil && errors.Is(h.err, os.ErrDeadlineExceeded):
		h.pub.Close(pool.ErrSourceGone)
		h.srv.log.Warn("publish ended", "key", h.key, "remote", h.remote, "error", "no media for rtmp.read_timeout")
		h.publishDone("no media for rtmp.read_timeout")
	case h.pub != nil && failed:
		h.pub.Close(pool.ErrSourceGone)
		// The error's text only: go-rtmp's errors carry stack traces.
		h.srv.log.Warn("publish ended", "key", h.key, "remote", h.remote, "error", h.err.Error())
		h.publishDone(h.err.Error())
	case h.pub != nil:
		h.pub.Close(pool.ErrSourceGone)
		h.srv.log.Info("publish ended", "key", h.key, "remote", h.remote)
		reason := "connection closed"
		if h.refusedBy != nil { // the stream was dropped, or its entry ended
			reason = h.refusedBy.Error()
			if why := h.pub.Entry().Err(); why != nil {
				reason = why.Error()
			}
		}
		h.publishDone(reason)
	case failed && !h.handshaken:
		h.srv.log.Info("rtmp handshake failed", "remote", h.remote, "error", h.err.Error())
	case failed:
		h.srv.log.Warn("rtmp connection failed", "remote", h.remote, "error", h.err.Error())
	}
	h.srv.forget(h)
}

func stripQuery(s string) string {
	if i := strings.IndexByte(s, '?'); i >= 0 {
		return s[:i]
	}
	return s
}

// deadlineConn sets the read deadline at the first read and refreshes it
// as the peer makes progress (mediaWatch), at most every quarter of the
// timeout (and at most once a second), so a silent peer is dropped after
// the timeout. Bytes alone do not refresh it: a peer that trickles its
// handshake, or keeps its connection busy with control messages
// (acknowledgements, pings) but never publishes, or publishes but sends no
// audio, video or data, is dropped too, between one and one and a quarter
// timeouts after its last step or media.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
	last    time.Time
	media   *mediaWatch
	seen    uint64 // media.progress at the last refresh
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	if now := time.Now(); c.last.IsZero() || now.Sub(c.last) > min(time.Second, c.timeout/4) && c.fed() {
		c.last = now
		if err := c.Conn.SetReadDeadline(now.Add(c.timeout)); err != nil {
			return 0, err
		}
	}
	return c.Conn.Read(p)
}

// fed reports whether the read deadline may move: the peer made a step
// or relayed media since the last refresh.
func (c *deadlineConn) fed() bool {
	n := c.media.progress.Load()
	if n == c.seen {
		return false
	}
	c.seen = n
	return true
}
