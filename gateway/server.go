// Package gateway is flvgw's HTTP side: a fasthttp server that plays relay
// entries to viewers as HTTP-FLV (GET /{app}/{stream}.flv) and answers the
// operator endpoints (/healthz, /api/v1/streams, /metrics).
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/pprofhandler"

	"flvgw/pool"
)

// shutdownGrace bounds how long shutdown waits for in-flight requests.
const shutdownGrace = 5 * time.Second

// Server serves viewers and operators over HTTP.
type Server struct {
	cfg     Config
	pool    *pool.Pool
	log     *slog.Logger
	viewers *viewerSet
	metrics *metrics
	http    *fasthttp.Server
}

// NewServer returns a gateway playing entries of p.
func NewServer(cfg Config, p *pool.Pool, log *slog.Logger) *Server {
	g := &Server{cfg: cfg, pool: p, log: log, viewers: newViewerSet()}
	g.metrics = newMetrics(p, g.viewers)
	g.http = &fasthttp.Server{
		Handler:                       g.route,
		Name:                          "flvgw",
		ReadTimeout:                   cfg.ReadTimeout,
		WriteTimeout:                  cfg.WriteTimeout,
		IdleTimeout:                   cfg.IdleTimeout,
		ReadBufferSize:                cfg.MaxHeaderBytes,
		MaxRequestBodySize:            64 * 1024,
		DisablePreParseMultipartForm:  true,
		NoDefaultContentType:          true,
		DisableHeaderNamesNormalizing: false,
		Logger:                        fasthttpLogger{log},
	}
	return g
}

// Serve answers HTTP on ln until ctx is done, then ends every viewer
// cleanly (each response gets its final chunk) and returns.
func (g *Server) Serve(ctx context.Context, ln net.Listener) error {
	served := make(chan error, 1)
	go func() { served <- g.http.Serve(ln) }()
	select {
	case err := <-served:
		_ = g.viewers.closeAll(context.Background())
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
	<-served
	if err != nil {
		return fmt.Errorf("gateway: shutdown: %w", err)
	}
	return nil
}

func (g *Server) route(ctx *fasthttp.RequestCtx) {
	path := string(ctx.URI().PathOriginal())
	switch path {
	case "/healthz":
		g.serveHealth(ctx)
		return
	case "/api/v1/streams":
		g.serveStreams(ctx)
		return
	case "/metrics":
		g.metrics.handler(ctx)
		g.metrics.response(ctx.Response.StatusCode())
		return
	}
	if g.cfg.Pprof && strings.HasPrefix(path, "/debug/pprof/") {
		pprofhandler.PprofHandler(ctx)
		return
	}
	if !strings.HasSuffix(path, ".flv") {
		g.fail(ctx, fasthttp.StatusNotFound, "no such endpoint", nil)
		return
	}
	key, err := parseStreamPath(path)
	if err != nil {
		g.fail(ctx, fasthttp.StatusBadRequest, "malformed stream path", err)
		return
	}
	g.setCORS(&ctx.Response.Header)
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
		g.fail(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed", fmt.Errorf("method %q", ctx.Method()))
	}
}

// parseStreamPath turns "/app/stream.flv" into the key "app/stream". The
// raw path is used: percent-encoding, dot segments and extra slashes are
// refused rather than normalized.
func parseStreamPath(path string) (string, error) {
	rest, ok := strings.CutPrefix(path, "/")
	if !ok {
		return "", errors.New("path must start with /")
	}
	rest = strings.TrimSuffix(rest, ".flv")
	app, stream, ok := strings.Cut(rest, "/")
	if !ok || strings.Contains(stream, "/") {
		return "", errors.New("path must be /{app}/{stream}.flv")
	}
	return pool.MakeKey(app, stream)
}

func (g *Server) head(ctx *fasthttp.RequestCtx, key string) {
	snap, ok := g.pool.Lookup(key)
	if !ok || snap.State == pool.StateClosed.String() {
		g.fail(ctx, fasthttp.StatusNotFound, "stream not found", fmt.Errorf("stream %s", key))
		return
	}
	setStreamHeaders(&ctx.Response.Header)
	ctx.SetStatusCode(fasthttp.StatusOK)
	g.metrics.response(fasthttp.StatusOK)
}

func setStreamHeaders(h *fasthttp.ResponseHeader) {
	h.SetContentType("video/x-flv")
	h.Set("Cache-Control", "no-cache, no-store")
}

func (g *Server) setCORS(h *fasthttp.ResponseHeader) {
	if g.cfg.CORSOrigin != "" {
		h.Set("Access-Control-Allow-Origin", g.cfg.CORSOrigin)
	}
}

func (g *Server) serveHealth(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString("ok\n")
	g.metrics.response(fasthttp.StatusOK)
}

func (g *Server) serveStreams(ctx *fasthttp.RequestCtx) {
	body, err := json.Marshal(struct {
		Streams []pool.Snapshot `json:"streams"`
	}{g.pool.Snapshots()})
	if err != nil {
		g.fail(ctx, fasthttp.StatusInternalServerError, "cannot encode streams", err)
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
	g.metrics.response(fasthttp.StatusOK)
}

// fail answers a request with status and a one-line text body, and logs why.
func (g *Server) fail(ctx *fasthttp.RequestCtx, status int, msg string, err error) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(msg + "\n")
	g.metrics.response(status)
	g.log.Info("request refused",
		"status", status, "method", string(ctx.Method()), "path", string(ctx.URI().PathOriginal()),
		"remote", ctx.RemoteAddr().String(), "reason", msg, "error", err)
}

type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Warn("http server", "detail", fmt.Sprintf(format, args...))
}
