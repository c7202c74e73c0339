package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"flvgw/gateway/access"
	"flvgw/pool"
)

var (
	crlf           = []byte("\r\n")
	lastChunk      = []byte("0\r\n\r\n")
	errNoPublisher = errors.New("gateway: no publisher within publish_wait")
	errNoKeyframe  = errors.New("gateway: no keyframe within start_timeout")
	errViewerLeft  = errors.New("gateway: the viewer closed its connection before the stream started")
)

// statusViewerLeft is the status logged and counted for a viewer that
// closed its connection while its request waited (nginx's 499); nothing
// is sent to it.
const statusViewerLeft = 499

// playRequest is what a viewer session needs of its HTTP request, copied
// out before the connection is hijacked.
type playRequest struct {
	key, app, stream string
	remote, ip       string
	via              string // the trusted proxy that named the client, if one did
	origin           string
	expires, token   string
	query            string // the URL's query, for auth.on_play
	start            time.Time
	// http10: the request was HTTP/1.0, whose clients cannot read
	// chunked encoding; its stream is delimited by the connection's close.
	http10 bool
}

// logger is log with the request's stream and client (and the proxy
// that named the client, if one did).
func (req playRequest) logger(log *slog.Logger) *slog.Logger {
	if req.via != "" {
		return log.With("stream", req.key, "remote", req.remote, "via", req.via)
	}
	return log.With("stream", req.key, "remote", req.remote)
}

// play hands the connection to a viewer session. The session runs in the
// goroutine fasthttp starts for a hijacked connection, and owns the raw
// connection from its first to its last byte: it registers on the entry
// before any I/O and writes every response itself, so no response is ever
// touched after its owner is done.
func (g *Server) play(ctx *fasthttp.RequestCtx, key string) {
	app, stream, _ := strings.Cut(key, "/")
	remote, ip, via := g.proxies.clientAddr(ctx)
	req := playRequest{
		key: key, app: app, stream: stream,
		remote: remote, ip: ip, via: via,
		origin:  string(ctx.Request.Header.Peek("Origin")),
		expires: string(ctx.QueryArgs().Peek("expires")),
		token:   string(ctx.QueryArgs().Peek("token")),
		query:   string(ctx.URI().QueryString()),
		start:   requestStart(ctx),
		http10:  !ctx.Request.Header.IsHTTP11(),
	}
	// fasthttp's stream writer can only send a chunked body, which an
	// HTTP/1.0 client cannot read: such a viewer always gets a hijacked
	// session, which ends its body with the connection's close.
	if g.cfg.Delivery == DeliveryStreamWriter && !req.http10 {
		g.playStreamWriter(ctx, req)
		return
	}
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		// The server keeps hijacked connections open (KeepHijackedConns):
		// the session continues on the raw connection in a goroutine of
		// its own, so fasthttp gets its request context and read buffer
		// back now instead of holding them for the whole session.
		if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
			c = u.UnsafeConn() // the TCP connection, for vectored writes
		}
		go g.runViewer(c, req)
	})
}

// requestStart is when a request began, for the time to first byte: for
// the first request on a connection, when the connection was accepted (so
// the wait for a worker and the request's read are counted), otherwise
// when its handler was called.
func requestStart(ctx *fasthttp.RequestCtx) time.Time {
	if ctx.ConnRequestNum() == 1 {
		return ctx.ConnTime()
	}
	return ctx.Time()
}

// keptBatchCap bounds the batch buffer a viewer keeps between writes: a
// live batch is a few tags; the first (the GOP cache) fills pool.MaxBatch
// and is not kept.
const keptBatchCap = 16

// viewer is one session's state; its buffers are reused for every write.
// Its session goroutine owns it, except while it is a member of a writer
// group (see writers.go), which then owns it until it hands it back.
type viewer struct {
	conn     net.Conn
	r        *pool.Reader
	bufs     [][]byte
	out      net.Buffers
	sizeLine [16]byte
	sent     uint64
	skips    int // r.Skips() as last counted in the metric
	// unchunked: the body is the FLV bytes alone, delimited by the
	// connection's close (an HTTP/1.0 viewer).
	unchunked bool
	// deadlineSet is when the write deadline was last moved (Unix ns).
	deadlineSet int64
	// began is when its stream began (Unix ns), for lag_disconnect.
	began int64

	// For writer groups: non-blocking vectored writes on the raw socket,
	// and what a group hands back.
	rawWriter
	back    chan handback
	pending [][]byte // the rest of a chunk a group wrote in part
	pendN   int      // its chunk's FLV bytes
	pendAt  int64    // its chunk's arrival
}

func (g *Server) runViewer(c net.Conn, req playRequest) {
	defer c.Close()
	// A *net.TCPConn, or a connection that passes its SetWriteBuffer on
	// (behind a PROXY protocol listener).
	if tc, ok := c.(interface{ SetWriteBuffer(int) error }); ok && g.cfg.SendBuffer > 0 {
		_ = tc.SetWriteBuffer(g.cfg.SendBuffer)
	}
	log := req.logger(g.log)
	leave, stopWatch := watchLeave(c)
	s, status, reason, err := g.admit(leave, req)
	stopWatch()
	if err != nil {
		g.refuse(c, req, log, status, reason, err)
		return
	}
	defer s.end()

	v := &viewer{conn: c, bufs: make([][]byte, 0, keptBatchCap), back: make(chan handback, 1), unchunked: req.http10}
	v.setupRaw()
	why := g.stream(s.ctx, v, s.sub, req)
	status = fasthttp.StatusOK
	if v.r != nil { // the 200 went out: stream reads only after its head
		g.metrics.sessions.Inc()
		g.playDone(req, v.sent, why)
	} else {
		status = statusViewerLeft // gone before its response's head
	}
	log.Info("viewer ended", "status", status, "bytes", v.sent,
		"duration", time.Since(req.start).Round(time.Millisecond), "reason", why)
}

// playDone posts a session's end to auth.on_play_done, if set, without
// waiting for it.
func (g *Server) playDone(req playRequest, sent uint64, why string) {
	auth := g.policy.Load().Auth
	if auth.OnPlayDone == "" {
		return
	}
	g.notify.Notify("auth.on_play_done", auth.OnPlayDone, auth.CallbackTimeout, access.Event{
		Action: "play_done", App: req.app, Stream: req.stream, Client: req.remote, Query: req.query,
		Bytes: sent, DurationMS: time.Since(req.start).Milliseconds(), Reason: why,
	})
}

// session is an admitted viewer: counted in the viewer set, subscribed to
// its entry, and the entry ready to play. end releases both, once.
type session struct {
	ctx  context.Context // cancelled at shutdown
	sub  *pool.Subscription
	done func()
}

func (s session) end() {
	s.sub.Close()
	s.done()
}

// watchLeave watches c while its request waits to be admitted (for a
// callback, a publisher, a first keyframe) and cancels leave, with
// errViewerLeft, if the viewer closes or resets the connection meanwhile:
// a player sends nothing after its request, so the read ends only then.
// Without it, a viewer that gave up kept its place in the limits until
// the wait ran out. fasthttp clears the request's deadlines before the
// hijack; stop ends the watch (it must run before the session writes to
// c) and clears the deadline it used.
func watchLeave(c net.Conn) (leave context.Context, stop func()) {
	leave, cancel := context.WithCancelCause(context.Background())
	var stopping atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Bytes sent after the request (a pipelined request, which a
		// stream's response never reaches) are read and dropped.
		var b [64]byte
		for {
			if _, err := c.Read(b[:]); err != nil {
				if !stopping.Load() {
					cancel(errViewerLeft)
				}
				return
			}
		}
	}()
	return leave, func() {
		stopping.Store(true)
		_ = c.SetReadDeadline(time.Now()) // ends the watching read
		<-done
		_ = c.SetReadDeadline(time.Time{})
		cancel(nil)
	}
}

// viewerRefusal is the HTTP status and the refusal reason (the metric
// label) of an error of viewerSet.add.
func viewerRefusal(err error) (status int, reason string) {
	switch {
	case errors.Is(err, errTooManyIP):
		return fasthttp.StatusTooManyRequests, "limit_ip"
	case errors.Is(err, errShuttingDown), errors.Is(err, errDraining):
		return fasthttp.StatusServiceUnavailable, "draining"
	}
	return fasthttp.StatusServiceUnavailable, "limit_total"
}

// admit applies the limits, the access checks and the wait for the stream
// to req, until leave is cancelled (the viewer went away). On refusal it
// returns the HTTP status, the refusal reason (the metric label) and why.
func (g *Server) admit(leave context.Context, req playRequest) (s session, status int, reason string, err error) {
	pol := g.policy.Load()
	ctx, done, err := g.viewers.add(limitKey(req.ip, pol.Limits.IPv6Prefix), pol.Limits.MaxViewers, pol.Limits.MaxViewersPerIP)
	if err != nil {
		status, reason := viewerRefusal(err)
		return session{}, status, reason, err
	}

	// The waits below end when the gateway shuts down or the viewer
	// leaves; the session's own context (ctx) outlives them.
	wait, stopWait := context.WithCancelCause(ctx)
	defer stopWait(nil)
	defer context.AfterFunc(leave, func() { stopWait(context.Cause(leave)) })()
	gone := func() bool { return errors.Is(context.Cause(wait), errViewerLeft) }

	// Access checks hold no entry: a slow callback delays only this viewer,
	// and whatever the stream does meanwhile cannot touch it.
	if err := g.authorize(wait, pol.Auth, req); err != nil {
		done()
		if gone() {
			return session{}, statusViewerLeft, "viewer_left", errViewerLeft
		}
		return session{}, fasthttp.StatusForbidden, "auth", err
	}

	if gone() { // before subscribing, which may start an upstream pull
		done()
		return session{}, statusViewerLeft, "viewer_left", errViewerLeft
	}
	sub, err := g.pool.SubscribeWith(req.key, pool.SubscribeOptions{
		Wait: g.cfg.PublishWait > 0, MaxViewers: pol.Limits.MaxViewersPerStream, Remote: req.remote,
	})
	if err != nil {
		done()
		status, reason := fasthttp.StatusInternalServerError, "internal"
		switch {
		case errors.Is(err, pool.ErrNotFound):
			status, reason = fasthttp.StatusNotFound, "not_found"
		case errors.Is(err, pool.ErrStreamFull):
			status, reason = fasthttp.StatusServiceUnavailable, "limit_stream"
		case errors.Is(err, pool.ErrFull), errors.Is(err, pool.ErrPoolClosed):
			status, reason = fasthttp.StatusServiceUnavailable, "pool_full"
		}
		return session{}, status, reason, err
	}
	s = session{ctx: ctx, sub: sub, done: done}

	if status, err := g.waitReady(wait, sub.Entry()); err != nil {
		s.end()
		if gone() {
			return session{}, statusViewerLeft, "viewer_left", errViewerLeft
		}
		reason := "not_found"
		switch status {
		case fasthttp.StatusNotFound:
			if errors.Is(err, pool.ErrDropped) {
				reason = "dropped"
			}
		case fasthttp.StatusBadGateway:
			reason = "upstream"
		case fasthttp.StatusGatewayTimeout:
			reason = "no_keyframe"
		case fasthttp.StatusServiceUnavailable:
			reason = "draining"
			if errors.Is(err, pool.ErrGaveWay) {
				reason = "pool_full"
			}
		}
		return session{}, status, reason, err
	}
	return s, fasthttp.StatusOK, "", nil
}

// playStreamWriter is the other way to deliver (http.delivery =
// "stream_writer"): fasthttp's body stream writer instead of a hijacked
// connection. fasthttp runs the writer in a goroutine of its own and copies
// what it writes through an in-memory pipe, in chunks, to the connection
// from the request's goroutine: two goroutines, a pipe and a copy per
// viewer, where the hijacked session has one goroutine and writes the
// shared tag bytes with one writev. It is kept so that test/bench/run.sh
// can measure the two against each other (DELIVERY=stream_writer).
func (g *Server) playStreamWriter(ctx *fasthttp.RequestCtx, req playRequest) {
	log := req.logger(g.log)
	s, status, reason, err := g.admit(context.Background(), req)
	if err != nil {
		if status == fasthttp.StatusServiceUnavailable || status == fasthttp.StatusTooManyRequests {
			ctx.Response.Header.Set("Retry-After", "5")
		}
		ctx.SetConnectionClose()
		ctx.Response.Header.Set("Cache-Control", "no-cache, no-store")
		g.text(ctx, status, statusReason(status))
		g.metrics.refusal(reason)
		log.Info("request refused", "status", status, "reason", reason, "error", err,
			"duration", time.Since(req.start).Round(time.Millisecond))
		return
	}
	// fasthttp moves the write deadline once per response (to
	// http.write_timeout); the writer moves it on as the stream goes.
	conn := ctx.Conn()
	ctx.SetConnectionClose()
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("video/x-flv")
	ctx.Response.Header.Set("Cache-Control", "no-cache, no-store")
	g.metrics.response(fasthttp.StatusOK)
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer s.end()
		sent, why := g.streamTo(s, w, conn, req)
		g.metrics.sessions.Inc()
		g.playDone(req, sent, why)
		log.Info("viewer ended", "status", fasthttp.StatusOK, "bytes", sent,
			"duration", time.Since(req.start).Round(time.Millisecond), "reason", why)
	})
}

// streamTo is stream for the stream-writer delivery: each batch is copied
// into w and flushed. The delivery delay it observes ends at the pipe, not
// at the socket.
func (g *Server) streamTo(s session, w *bufio.Writer, conn net.Conn, req playRequest) (sent uint64, why string) {
	r := s.sub.NewReader()
	e := s.sub.Entry()
	began := time.Now().UnixNano()
	bufs := make([][]byte, 0, keptBatchCap)
	first := true
	skips := 0 // r.Skips() as last counted in the metric
	for {
		batch, err := r.Next(s.ctx, bufs[:0])
		g.addSkips(r, &skips)
		if err == nil && s.ctx.Err() != nil {
			// Shutdown, seen also by a viewer that is never caught up
			// (Next sees it only while it waits), as stream does.
			clear(batch)
			batch, err = batch[:0], s.ctx.Err()
		}
		if len(batch) > 0 {
			_ = conn.SetWriteDeadline(time.Now().Add(g.cfg.WriteTimeout))
			n := 0
			for _, b := range batch {
				n += len(b)
				_, _ = w.Write(b)
			}
			if werr := w.Flush(); werr != nil {
				return sent, fmt.Sprintf("viewer write: %v", werr)
			}
			sent += uint64(n)
			if first {
				first = false
				g.metrics.ttfb.Observe(time.Since(req.start).Seconds())
			}
			if why := g.delivered(e, n, r.BatchArrival(), began); why != "" {
				return sent, why
			}
		}
		clear(batch)
		if err != nil {
			if errors.Is(err, pool.ErrEnded) {
				return sent, e.Err().Error()
			}
			return sent, "shutdown"
		}
	}
}

// authorize applies the signed-URL and callback checks of auth.
func (g *Server) authorize(ctx context.Context, auth Auth, req playRequest) error {
	if auth.PlaySecret != "" {
		if err := access.Check(auth.PlaySecret, req.key, req.expires, req.token, time.Now()); err != nil {
			return err
		}
	}
	if auth.OnPlay != "" {
		cb := access.Callback{URL: auth.OnPlay, Timeout: auth.CallbackTimeout}
		if err := cb.Ask(ctx, access.Request{Action: "play", App: req.app, Stream: req.stream, Client: req.remote, Query: req.query}); err != nil {
			return err
		}
	}
	return nil
}

// waitReady waits until the entry can start a viewer at a keyframe: for
// the publisher of an unknown stream up to publish_wait (then 404, or 503
// if the waiting entry gave its place to a stream with a source), for the
// first keyframe up to start_timeout (then 504); a pull whose upstreams
// could not be reached or broke the protocol gives 502.
func (g *Server) waitReady(ctx context.Context, e *pool.Entry) (status int, err error) {
	if e.State() == pool.StateWaiting && !e.Pulled() {
		wait := time.NewTimer(g.cfg.PublishWait)
		defer wait.Stop()
		select {
		case <-e.Live():
		case <-e.Done():
			// WaitReady, below, tells an entry that ended before it was
			// ready (404, or 503 if it gave way) from one that went live
			// and ready first (its viewer plays what it holds).
		case <-wait.C:
			return fasthttp.StatusNotFound, errNoPublisher
		case <-ctx.Done():
			return fasthttp.StatusServiceUnavailable, ctx.Err()
		}
	}
	rctx, cancel := context.WithTimeoutCause(ctx, g.cfg.StartTimeout, errNoKeyframe)
	defer cancel()
	if err := e.WaitReady(rctx); err != nil {
		switch {
		case ctx.Err() != nil:
			return fasthttp.StatusServiceUnavailable, ctx.Err()
		case errors.Is(context.Cause(rctx), errNoKeyframe):
			return fasthttp.StatusGatewayTimeout, errNoKeyframe
		case errors.Is(err, pool.ErrUpstreamUnreachable), e.Pulled() && errors.Is(err, pool.ErrBadTag):
			// An upstream that broke the protocol failed as one that could
			// not be reached did: not a 404, which a cache in front may keep.
			return fasthttp.StatusBadGateway, err
		case errors.Is(err, pool.ErrGaveWay):
			return fasthttp.StatusServiceUnavailable, err
		}
		return fasthttp.StatusNotFound, err
	}
	return fasthttp.StatusOK, nil
}

// stream writes the entry to the viewer until it ends, the viewer goes
// away or the gateway shuts down, and says which. The session writes the
// viewer's first batches itself (the GOP cache, with blocking writes); once
// the viewer has caught up, the entry's writer groups serve it, and hand it
// back when a write would block (the session finishes that write, then the
// viewer catches up and rejoins), when the entry ends, or when it fails.
func (g *Server) stream(ctx context.Context, v *viewer, sub *pool.Subscription, req playRequest) string {
	v.began = time.Now().UnixNano()
	if err := g.writeHead(v.conn, req); err != nil {
		return fmt.Sprintf("write headers: %v", err)
	}
	v.r = sub.NewReader()
	e := sub.Entry()
	first := true
	defer g.countSkips(v)
	for {
		// Slot 0 is reserved for the chunk-size line.
		batch, err := v.r.Poll(v.bufs[:1])
		if err == nil && ctx.Err() != nil {
			// A viewer behind its stream always has a batch ready and never
			// waits where the shutdown is seen: it ends here, at a chunk's
			// end, rather than once it caught up (perhaps never).
			clear(batch)
			batch, err = v.bufs[:1], ctx.Err()
		}
		if len(batch) <= 1 && err == nil {
			if first || !v.canWriteNow() {
				batch, err = v.r.Next(ctx, v.bufs[:1])
			} else {
				// A group never blocks, so no deadline: a passed one would
				// fail its writes. The session's next write sets one again.
				_ = v.conn.SetWriteDeadline(time.Time{})
				v.deadlineSet = 0
				hb := g.writers.serve(ctx, g, e, v)
				switch {
				case hb.why != "":
					return hb.why
				case hb.pending:
					if why := g.writePending(v); why != "" {
						return why
					}
					continue
				}
				err = hb.err
			}
		}
		g.countSkips(v)
		if len(batch) > 1 {
			arrival := v.r.BatchArrival()
			n, werr := v.writeChunk(batch, g.cfg.WriteTimeout, time.Now().UnixNano())
			if cap(batch) > cap(v.bufs) && cap(batch) <= keptBatchCap {
				v.bufs = batch[:0] // keep a grown buffer, unless a GOP burst grew it
			}
			clear(batch)
			if werr != nil {
				if isTimeout(werr) {
					g.metrics.dropped.WithLabelValues("write_timeout").Inc()
				}
				return fmt.Sprintf("viewer write: %v", werr)
			}
			if first {
				first = false
				g.metrics.ttfb.Observe(time.Since(req.start).Seconds())
			}
			v.sent += uint64(n)
			if why := g.delivered(e, n, arrival, v.began); why != "" {
				return why
			}
		}
		if err != nil {
			reason := "shutdown"
			if errors.Is(err, pool.ErrEnded) {
				reason = e.Err().Error()
			}
			if v.unchunked { // the close ends the body
				return reason
			}
			_ = v.conn.SetWriteDeadline(time.Now().Add(g.cfg.WriteTimeout))
			if _, werr := v.conn.Write(lastChunk); werr != nil {
				return fmt.Sprintf("%s; final chunk: %v", reason, werr)
			}
			return reason
		}
	}
}

// delivered counts n FLV bytes of e written to a viewer whose stream
// began at began, the oldest of which arrived at arrival, and applies
// http.lag_disconnect: a non-empty answer ends the session. Tags that
// arrived before the stream began (the GOP cache a viewer starts with)
// are behind from then only: their age is the GOP's, not a lag of the
// viewer's.
func (g *Server) delivered(e *pool.Entry, n int, arrival, began int64) string {
	e.AddBytesOut(n)
	g.metrics.bytesOut.Add(float64(n))
	if arrival <= 0 {
		return ""
	}
	now := time.Now().UnixNano()
	g.metrics.delay.Observe(time.Duration(now - arrival).Seconds())
	if lag := time.Duration(now - max(arrival, began)); g.cfg.LagDisconnect > 0 && lag > g.cfg.LagDisconnect {
		g.metrics.dropped.WithLabelValues("lag").Inc()
		return fmt.Sprintf("lagging %s behind (http.lag_disconnect)", lag.Round(time.Millisecond))
	}
	return ""
}

// countSkips adds the reader's new skips to the metric.
func (g *Server) countSkips(v *viewer) { g.addSkips(v.r, &v.skips) }

// addSkips adds r's skips since *counted to the metric and moves
// *counted on.
func (g *Server) addSkips(r *pool.Reader, counted *int) {
	if n := r.Skips(); n != *counted {
		g.metrics.skips.Add(float64(n - *counted))
		*counted = n
	}
}

// writePending finishes, with a blocking write, the chunk a writer group
// could write only in part.
func (g *Server) writePending(v *viewer) string {
	now := time.Now().UnixNano()
	if err := v.conn.SetWriteDeadline(time.Unix(0, now).Add(g.cfg.WriteTimeout)); err != nil {
		return fmt.Sprintf("viewer write: %v", err)
	}
	v.deadlineSet = now - int64(g.cfg.WriteTimeout/8) // the next write moves it again
	v.out = v.pending
	_, err := v.out.WriteTo(v.conn)
	v.out = nil
	clear(v.pending)
	v.pending = v.pending[:0]
	if err != nil {
		if isTimeout(err) {
			g.metrics.dropped.WithLabelValues("write_timeout").Inc()
		}
		return fmt.Sprintf("viewer write: %v", err)
	}
	v.sent += uint64(v.pendN)
	return g.delivered(v.r.Entry(), v.pendN, v.pendAt, v.began)
}

// writeChunk sends batch[1:] as one HTTP chunk with one vectored write.
//
// Moving a deadline costs a timer update, so the write deadline moves only
// when an eighth of timeout has passed since it last did, and then to
// 9/8 of timeout ahead: every write still gets at least timeout, at most
// an eighth more.
func (v *viewer) writeChunk(batch [][]byte, timeout time.Duration, now int64) (int, error) {
	batch, n, _ := v.frameChunk(batch)
	if now-v.deadlineSet > int64(timeout/8) {
		if err := v.conn.SetWriteDeadline(time.Unix(0, now).Add(timeout + timeout/8)); err != nil {
			return 0, err
		}
		v.deadlineSet = now
	}
	v.out = batch
	_, err := v.out.WriteTo(v.conn)
	v.out = nil
	if err != nil {
		return 0, err
	}
	return n, nil
}

// frameChunk makes batch[1:] one HTTP chunk: the size line goes in
// batch[0] (v.sizeLine's bytes) and the closing CRLF after the last
// buffer. n is the chunk's FLV bytes, total its length with framing. An
// unchunked viewer gets the FLV bytes alone (batch[0] empty).
func (v *viewer) frameChunk(batch [][]byte) (framed [][]byte, n, total int) {
	for _, b := range batch[1:] {
		n += len(b)
	}
	if v.unchunked {
		batch[0] = nil
		return batch, n, n
	}
	line := strconv.AppendInt(v.sizeLine[:0], int64(n), 16)
	batch[0] = append(line, '\r', '\n')
	return append(batch, crlf), n, n + len(batch[0]) + len(crlf)
}

// writeHead writes the stream's response headers: a chunked body for
// HTTP/1.1, a body delimited by the connection's close for HTTP/1.0 (RFC
// 9112 forbids Transfer-Encoding in a response to an HTTP/1.0 request).
func (g *Server) writeHead(c net.Conn, req playRequest) error {
	framing := "Transfer-Encoding: chunked\r\n"
	if req.http10 {
		framing = ""
	}
	head := "HTTP/1.1 200 OK\r\n" +
		"Server: flvgw\r\n" +
		"Content-Type: video/x-flv\r\n" +
		framing +
		"Cache-Control: no-cache, no-store\r\n" +
		"Connection: close\r\n" +
		g.corsLines(req.origin) + "\r\n"
	if err := c.SetWriteDeadline(time.Now().Add(g.cfg.WriteTimeout)); err != nil {
		return err
	}
	_, err := c.Write([]byte(head))
	if err == nil {
		g.metrics.response(fasthttp.StatusOK)
	}
	return err
}

func (g *Server) corsLines(origin string) string {
	switch v := g.corsValue(origin); v {
	case "":
		return ""
	case "*":
		return "Access-Control-Allow-Origin: *\r\n"
	default:
		return "Access-Control-Allow-Origin: " + v + "\r\nVary: Origin\r\n"
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// statusReason is the one-line body of a refusal.
func statusReason(status int) string {
	switch status {
	case fasthttp.StatusNotFound:
		return "stream not found"
	case fasthttp.StatusServiceUnavailable:
		return "no capacity for this stream now"
	case fasthttp.StatusTooManyRequests:
		return "too many streams from this address"
	case fasthttp.StatusForbidden:
		return "not allowed"
	case fasthttp.StatusGatewayTimeout:
		return "stream published but no keyframe arrived in time"
	case fasthttp.StatusBadGateway:
		return "no upstream reachable"
	}
	return "stream unavailable"
}

// refuse answers a hijacked connection with an error status, counts the
// refusal under reason, and logs it (one access-log line).
func (g *Server) refuse(c net.Conn, req playRequest, log *slog.Logger, status int, reason string, err error) {
	if status == statusViewerLeft { // nothing is sent, so no response is counted
		g.metrics.refusal(reason)
		log.Info("viewer left while waiting", "status", status, "reason", reason,
			"duration", time.Since(req.start).Round(time.Millisecond))
		return
	}
	body := statusReason(status) + "\n"
	extra := ""
	if status == fasthttp.StatusServiceUnavailable || status == fasthttp.StatusTooManyRequests {
		extra = "Retry-After: 5\r\n"
	}
	// Not cached: a stream refused now may play in a moment.
	resp := fmt.Sprintf("HTTP/1.1 %d %s\r\nServer: flvgw\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Content-Length: %d\r\nCache-Control: no-cache, no-store\r\nConnection: close\r\n%s%s\r\n%s",
		status, fasthttp.StatusMessage(status), len(body), extra, g.corsLines(req.origin), body)
	_ = c.SetWriteDeadline(time.Now().Add(g.cfg.WriteTimeout))
	_, _ = c.Write([]byte(resp))
	g.metrics.response(status)
	g.metrics.refusal(reason)
	log.Info("request refused", "status", status, "reason", reason, "error", err,
		"duration", time.Since(req.start).Round(time.Millisecond))
}
