// Package gateway is flvgw's HTTP side: a fasthttp server that plays relay
// entries to viewers as HTTP-FLV (GET /{app}/{stream}.flv) and answers the
// operator endpoints (/healthz, /api/v1/streams, /metrics).
package gateway

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/pprofhandler"

	"flvgw/gateway/access"
	"flvgw/pool"
)

// shutdownGrace bounds how long shutdown waits for in-flight requests.
const shutdownGrace = 5 * time.Second

// Server serves viewers and operators over HTTP.
type Server struct {
	cfg      Config
	policy   atomic.Pointer[Policy]
	pool     *pool.Pool
	log      *slog.Logger
	viewers  *viewerSet
	metrics  *metrics
	http     *fasthttp.Server
	draining atomic.Bool
	writers  writerGroups
	conns    openConns
	proxies  trustedProxies
	notify   *access.Notifier // auth.on_play_done
}

// maxRequestBody bounds a request's body: no route takes one.
const maxRequestBody = 64 * 1024

// maxNotifications bounds the auth.on_play_done posts in flight: past it,
// the ends of sessions against a stalled service are dropped, not queued.
const maxNotifications = 256

// NewServer returns a gateway playing entries of p under policy.
func NewServer(cfg Config, policy Policy, p *pool.Pool, log *slog.Logger) *Server {
	g := &Server{cfg: cfg, pool: p, log: log, viewers: newViewerSet(), notify: access.NewNotifier(maxNotifications, log)}
	proxies, err := parseTrustedProxies(cfg.TrustedProxies)
	if err != nil { // Validate refuses it first; trusting nobody is safe
		log.Error("http.trusted_proxies ignored", "error", err)
	}
	g.proxies = proxies
	g.policy.Store(&policy)
	g.metrics = newMetrics(p, g.viewers, &g.writers, cfg.MaxStreamSeries)
	g.metrics.httpConns = httpConnCounts{
		open:    g.conns.count,
		refused: func() uint64 { return uint64(g.http.GetRejectedConnectionsCount()) },
	}
	g.metrics.notifiers.add("auth.on_play_done", g.notify)
	g.http = &fasthttp.Server{
		Handler:                       g.route,
		Name:                          "flvgw",
		ReadTimeout:                   cfg.ReadTimeout,
		WriteTimeout:                  cfg.WriteTimeout,
		IdleTimeout:                   cfg.IdleTimeout,
		ReadBufferSize:                cfg.MaxHeaderBytes,
		Concurrency:                   cfg.MaxConnections,
		MaxRequestBodySize:            maxRequestBody,
		DisablePreParseMultipartForm:  true,
		NoDefaultContentType:          true,
		DisableHeaderNamesNormalizing: false,
		Logger:                        fasthttpLogger{log},
		ErrorHandler:                  g.requestError,
		// fasthttp's read errors quote the request's bytes otherwise, and
		// with them a play token or the API token.
		SecureErrorLogMessage: true,
		KeepHijackedConns:     true, // viewer sessions close their own
		ConnState:             g.conns.track,
	}
	return g
}

// ReportUpstreams has /metrics report each upstream's pull attempts
// (flvgw_upstream_attempts_total) as attempts returns them at scrape time.
func (g *Server) ReportUpstreams(attempts func() []pool.UpstreamAttempts) {
	g.metrics.upstreams.attempts.Store(&attempts)
}

// ReportRTMP has /metrics report the embedded origin's connections
// (flvgw_rtmp_connections, flvgw_rtmp_connections_refused_total) as
// counts returns them at scrape time.
func (g *Server) ReportRTMP(counts func() RTMPCounts) {
	g.metrics.rtmp.counts.Store(&counts)
}

// ReportNotifier has /metrics report n's posts (flvgw_notifications_total)
// as those of the callback key, such as the origin's rtmp.on_publish_done.
func (g *Server) ReportNotifier(key string, n *access.Notifier) {
	g.metrics.notifiers.add(key, n)
}

// requestError answers a request fasthttp could not read: headers over
// max_header_bytes (431), a body over maxRequestBody (413), headers or
// the body they announce not sent within read_timeout (408), anything
// else unparsable (400); each counted and logged.
func (g *Server) requestError(ctx *fasthttp.RequestCtx, err error) {
	status, reason, msg := fasthttp.StatusBadRequest, "bad_request", "malformed request"
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	timeout := errors.As(err, &netErr) && netErr.Timeout()
	switch {
	case errors.As(err, &small):
		status, reason, msg = fasthttp.StatusRequestHeaderFieldsTooLarge, "header_too_large", "request headers too large"
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status, reason, msg = fasthttp.StatusRequestEntityTooLarge, "body_too_large", "request body too large"
	case g.nothingRead(ctx, err):
		// A connection that never began a request (a browser's
		// speculative preconnect, a TCP check, also one that ends with a
		// reset): answered 408 and closed, as fasthttp does, but no
		// refusal of anyone's request. A reset one gets nothing.
		ctx.Error("request not received in time\n", fasthttp.StatusRequestTimeout)
		if timeout {
			g.metrics.response(fasthttp.StatusRequestTimeout)
		}
		g.log.Debug("connection sent no request", "remote", ctx.RemoteAddr().String(), "error", err)
		return
	case timeout:
		status, reason, msg = fasthttp.StatusRequestTimeout, "read_timeout", "request not received in time"
	}
	ctx.Error(msg+"\n", status)
	g.metrics.response(status)
	g.metrics.refusal(reason)
	g.log.Info("request refused", "status", status, "remote", ctx.RemoteAddr().String(), "reason", msg, "error", err)
}

// nothingRead reports whether a read error fasthttp hands to requestError
// came before a single byte of the request: the connection's own error
// (fasthttp wraps a header's read errors, "error when reading request
// headers: ...", but not a body's), on a connection that never went
// active (fasthttp makes it so at the request's first byte).
func (g *Server) nothingRead(ctx *fasthttp.RequestCtx, err error) bool {
	_, ok := err.(*net.OpError)
	return ok && !g.conns.began(ctx.Conn())
}

// SetPolicy replaces the limits and auth for new requests (SIGHUP);
// viewers already playing are not touched.
func (g *Server) SetPolicy(p Policy) { g.policy.Store(&p) }

// Drain turns the gateway not-ready (/readyz answers 503) and refuses new
// viewers with 503, while the current ones go on playing.
func (g *Server) Drain() {
	g.draining.Store(true)
	g.viewers.drain()
}

// Viewers reports the viewer sessions being served.
func (g *Server) Viewers() int { return g.viewers.count() }

// Serve answers HTTP on every listener (plain or TLS) until ctx is done,
// then ends every viewer cleanly (each response gets its final chunk) and
// returns.
func (g *Server) Serve(ctx context.Context, lns ...net.Listener) error {
	served := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { served <- g.http.Serve(ln) }()
	}
	// fasthttp's Shutdown closes only the listeners its Serve has taken
	// in by then: closing all of them too ends an Accept that began after.
	closeListeners := func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}
	// The sessions' last notifications (auth.on_play_done) are posted
	// before Serve returns, each within auth.callback_timeout.
	defer g.notify.Wait()
	select {
	case err := <-served:
		_ = g.viewers.closeAll(context.Background())
		_ = g.http.Shutdown()
		closeListeners()
		for range len(lns) - 1 {
			<-served
		}
		return fmt.Errorf("gateway: serve: %w", err)
	case <-ctx.Done():
	}
	// End the viewers first (hijacked connections are ours; new ones are
	// refused with 503), then stop accepting and let fasthttp finish its
	// in-flight requests.
	_ = g.viewers.closeAll(context.Background())
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := g.http.ShutdownWithContext(sctx)
	closeListeners()
	if errors.Is(err, context.DeadlineExceeded) {
		// Requests still unread or unanswered: they end now, and the
		// stop is still a clean one.
		n := g.conns.closeAll()
		g.log.Warn("shutdown grace over: connections closed", "connections", n, "grace", shutdownGrace)
		err = nil
	}
	for range lns {
		<-served
	}
	if err != nil {
		return fmt.Errorf("gateway: shutdown: %w", err)
	}
	return nil
}

func (g *Server) route(ctx *fasthttp.RequestCtx) {
	path := string(ctx.URI().PathOriginal())
	switch {
	case path == "/healthz":
		g.text(ctx, fasthttp.StatusOK, "ok")
		return
	case path == "/readyz":
		if g.draining.Load() {
			g.text(ctx, fasthttp.StatusServiceUnavailable, "draining")
			return
		}
		g.text(ctx, fasthttp.StatusOK, "ready")
		return
	case (path == "/metrics" || strings.HasPrefix(path, "/api/")) && !ctx.IsGet() && !ctx.IsHead() &&
		!(ctx.IsDelete() && strings.HasPrefix(path, "/api/")):
		// A 200 to a POST would read as done.
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		g.fail(ctx, fasthttp.StatusMethodNotAllowed, "bad_method", "method not allowed", fmt.Errorf("method %q", ctx.Method()))
		return
	case path == "/metrics":
		g.metrics.handler(ctx)
		g.metrics.response(ctx.Response.StatusCode())
		return
	case strings.HasPrefix(path, "/api/"):
		g.serveAPI(ctx, path)
		return
	case g.cfg.Pprof && strings.HasPrefix(path, "/debug/pprof/"):
		// A profile runs as long as its caller asks: behind the API's
		// token, when there is one.
		if g.apiAuthorized(ctx) {
			pprofhandler.PprofHandler(ctx)
		}
		return
	case !strings.HasSuffix(path, ".flv"):
		g.fail(ctx, fasthttp.StatusNotFound, "bad_path", "no such endpoint", nil)
		return
	}
	g.setCORS(&ctx.Response.Header, string(ctx.Request.Header.Peek("Origin")))
	pol := g.policy.Load()
	key, err := parseStreamPath(path, pol.Limits.MaxNameLength)
	if err != nil {
		status := fasthttp.StatusBadRequest
		if errors.Is(err, errNameTooLong) {
			status = fasthttp.StatusRequestURITooLong
		}
		g.fail(ctx, status, "bad_path", "malformed stream path", err)
		return
	}
	switch string(ctx.Method()) {
	case fasthttp.MethodGet:
		g.play(ctx, key)
	case fasthttp.MethodHead:
		g.head(ctx, key)
	case fasthttp.MethodOptions:
		ctx.Response.Header.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		ctx.Response.Header.Set("Access-Control-Allow-Headers", "Range, Origin, Accept, Content-Type")
		ctx.Response.Header.Set("Access-Control-Max-Age", "86400")
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		g.metrics.response(fasthttp.StatusNoContent)
	default:
		ctx.Response.Header.Set("Allow", "GET, HEAD, OPTIONS")
		g.fail(ctx, fasthttp.StatusMethodNotAllowed, "bad_method", "method not allowed", fmt.Errorf("method %q", ctx.Method()))
	}
}

var errNameTooLong = errors.New("gateway: app or stream name too long")

// parseStreamPath turns "/app/stream.flv" into the key "app/stream". The
// raw path is used: percent-encoding, dot segments and extra slashes are
// refused rather than normalized.
func parseStreamPath(path string, maxName int) (string, error) {
	rest, ok := strings.CutPrefix(path, "/")
	if !ok {
		return "", errors.New("path must start with /")
	}
	rest = strings.TrimSuffix(rest, ".flv")
	app, stream, ok := strings.Cut(rest, "/")
	if !ok || strings.Contains(stream, "/") {
		return "", errors.New("path must be /{app}/{stream}.flv")
	}
	if len(app) > maxName || len(stream) > maxName {
		return "", fmt.Errorf("%w: at most %d characters each", errNameTooLong, maxName)
	}
	return pool.MakeKey(app, stream)
}

// head answers HEAD as GET would answer at once, without the body and
// without waiting, and in GET's order: 503 while draining, 503 or 429
// where max_viewers or max_viewers_per_ip would refuse a GET, 403 without
// a valid signed URL (auth.on_play is not asked: a HEAD plays nothing),
// 503 where max_viewers_per_stream would, 404 for a stream not live, 200
// otherwise. A balancer or a player that checks a stream with HEAD learns
// whether a GET would play.
func (g *Server) head(ctx *fasthttp.RequestCtx, key string) {
	ctx.Response.Header.Set("Cache-Control", "no-cache, no-store") // refusals too
	if g.draining.Load() {
		ctx.Response.Header.Set("Retry-After", "5")
		g.fail(ctx, fasthttp.StatusServiceUnavailable, "draining", statusReason(fasthttp.StatusServiceUnavailable), errDraining)
		return
	}
	limited := func(status int, reason string, err error) {
		ctx.Response.Header.Set("Retry-After", "5")
		g.fail(ctx, status, reason, statusReason(status), err)
	}
	// GET applies max_viewers and max_viewers_per_ip before the signed
	// URL, and max_viewers_per_stream when it subscribes, after it.
	pol := g.policy.Load()
	_, ip, _ := g.proxies.clientAddr(ctx)
	if err := g.viewers.admits(limitKey(ip, pol.Limits.IPv6Prefix), pol.Limits.MaxViewers, pol.Limits.MaxViewersPerIP); err != nil {
		status, reason := viewerRefusal(err)
		limited(status, reason, err)
		return
	}
	if secret := pol.Auth.PlaySecret; secret != "" {
		q := ctx.QueryArgs()
		if err := access.Check(secret, key, string(q.Peek("expires")), string(q.Peek("token")), time.Now()); err != nil {
			g.fail(ctx, fasthttp.StatusForbidden, "auth", statusReason(fasthttp.StatusForbidden), err)
			return
		}
	}
	snap, ok := g.pool.Lookup(key)
	if ok && pol.Limits.MaxViewersPerStream > 0 && snap.Subscribers >= pol.Limits.MaxViewersPerStream {
		limited(fasthttp.StatusServiceUnavailable, "limit_stream", fmt.Errorf("%w: %s", pool.ErrStreamFull, key))
		return
	}
	// A waiting entry is no stream: viewers wait there for a publisher (or
	// a pull's first tag) that may never come.
	if !ok || snap.State == pool.StateClosed.String() || snap.State == pool.StateWaiting.String() {
		g.fail(ctx, fasthttp.StatusNotFound, "not_found", "stream not found", fmt.Errorf("stream %s", key))
		return
	}
	ctx.Response.Header.SetContentType("video/x-flv")
	ctx.SetStatusCode(fasthttp.StatusOK)
	g.metrics.response(fasthttp.StatusOK)
}

// corsValue is the Access-Control-Allow-Origin for a request from origin,
// "" for none.
func (g *Server) corsValue(origin string) string {
	for _, o := range g.cfg.CORSOrigins {
		if o == "*" {
			return "*"
		}
		if origin != "" && o == origin {
			return origin
		}
	}
	return ""
}

func (g *Server) setCORS(h *fasthttp.ResponseHeader, origin string) {
	if v := g.corsValue(origin); v != "" {
		h.Set("Access-Control-Allow-Origin", v)
		if v != "*" {
			h.Set("Vary", "Origin")
		}
	}
}

func (g *Server) text(ctx *fasthttp.RequestCtx, status int, body string) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(body + "\n")
	g.metrics.response(status)
}

// bearerToken reads an Authorization header's Bearer token. The scheme's
// name is case-insensitive (RFC 9110, 11.1): "bearer" and "BEARER" are
// Bearer too.
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(token, " ")
	return token, token != ""
}

// apiAuthorized checks auth.api_token's bearer token, if one is set, and
// answers 401 when it is missing or wrong.
func (g *Server) apiAuthorized(ctx *fasthttp.RequestCtx) bool {
	token := g.policy.Load().Auth.APIToken
	if token == "" {
		return true
	}
	got, ok := bearerToken(string(ctx.Request.Header.Peek("Authorization")))
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="flvgw"`)
		g.fail(ctx, fasthttp.StatusUnauthorized, "auth", "bearer token required", nil)
		return false
	}
	return true
}

// serveAPI answers /api/v1/streams and /api/v1/streams/{app}/{stream}.
func (g *Server) serveAPI(ctx *fasthttp.RequestCtx, path string) {
	if !g.apiAuthorized(ctx) {
		return
	}
	var body any
	switch rest, found := strings.CutPrefix(path, "/api/v1/streams"); {
	case !found:
		// Only /api/v1/streams names streams: /api/live is no stream
		// api/live, to read or to drop.
		g.fail(ctx, fasthttp.StatusNotFound, "bad_path", "no such endpoint", nil)
		return
	case ctx.IsDelete() && (rest == "" || rest == "/" || !strings.HasPrefix(rest, "/")):
		// Only a stream can be dropped, not the list.
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		g.fail(ctx, fasthttp.StatusMethodNotAllowed, "bad_method", "method not allowed", fmt.Errorf("method %q", ctx.Method()))
		return
	case rest == "" || rest == "/":
		body = struct {
			Streams []pool.Snapshot `json:"streams"`
		}{g.pool.Snapshots()}
	case strings.HasPrefix(rest, "/"):
		key, err := parseStreamPath(rest+".flv", pool.MaxNameLength)
		if err != nil {
			g.fail(ctx, fasthttp.StatusBadRequest, "bad_path", "malformed stream path", err)
			return
		}
		if ctx.IsDelete() {
			g.dropStream(ctx, key)
			return
		}
		d, ok := g.pool.Detail(key)
		if !ok {
			g.fail(ctx, fasthttp.StatusNotFound, "not_found", "stream not found", nil)
			return
		}
		body = d
	default:
		g.fail(ctx, fasthttp.StatusNotFound, "bad_path", "no such endpoint", nil)
		return
	}
	out, err := json.Marshal(body)
	if err != nil {
		g.fail(ctx, fasthttp.StatusInternalServerError, "internal", "cannot encode", err)
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(out)
	g.metrics.response(fasthttp.StatusOK)
}

// dropStream answers DELETE /api/v1/streams/{app}/{stream}: the stream's
// entry ends (pool.Drop), its publisher is disconnected or its pull
// stopped, and its viewers' responses end cleanly. Only with
// auth.api_token set: without it the API is open to whoever reaches the
// listener, viewers included, who may read it but not end streams.
func (g *Server) dropStream(ctx *fasthttp.RequestCtx, key string) {
	if g.policy.Load().Auth.APIToken == "" {
		g.fail(ctx, fasthttp.StatusForbidden, "auth", "dropping a stream needs auth.api_token", nil)
		return
	}
	if !g.pool.Drop(key) {
		g.fail(ctx, fasthttp.StatusNotFound, "not_found", "stream not found", nil)
		return
	}
	remote, _, via := g.proxies.clientAddr(ctx)
	attrs := []any{"stream", key, "remote", remote}
	if via != "" {
		attrs = append(attrs, "via", via)
	}
	g.log.Info("stream dropped", attrs...)
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	g.metrics.response(fasthttp.StatusNoContent)
}

// fail answers a request with status and a one-line text body, counts the
// refusal under reason, and logs it.
func (g *Server) fail(ctx *fasthttp.RequestCtx, status int, reason, msg string, err error) {
	g.text(ctx, status, msg)
	g.metrics.refusal(reason)
	remote, _, via := g.proxies.clientAddr(ctx)
	attrs := []any{"status", status, "method", string(ctx.Method()), "path", string(ctx.URI().PathOriginal()), "remote", remote}
	if via != "" {
		attrs = append(attrs, "via", via)
	}
	g.log.Info("request refused", append(attrs, "reason", msg, "error", err)...)
}

type fasthttpLogger struct{ log *slog.Logger }

// serveConnFailed is the message fasthttp logs when a connection's serving
// ends on an error. The errors it logs are those of requests it could not
// read, which requestError has answered and logged as refusals already.
const serveConnFailed = "error when serving connection "

// concurrencyExceeded begins the message fasthttp logs, at most once a
// minute, when http.max_connections (its Concurrency) refuses connections.
const concurrencyExceeded = "The incoming connection cannot be served"

func (l fasthttpLogger) Printf(format string, args ...any) {
	if strings.HasPrefix(format, concurrencyExceeded) {
		l.log.Warn("http connections refused: limit reached (logged at most once a minute)",
			"setting", "http.max_connections", "detail", fmt.Sprintf(format, args...))
		return
	}
	if strings.HasPrefix(format, serveConnFailed) {
		l.log.Debug("http server", "detail", fmt.Sprintf(format, args...))
		return
	}
	l.log.Warn("http server", "detail", fmt.Sprintf(format, args...))
}
