package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"flvgw/pool"
)

var (
	crlf           = []byte("\r\n")
	lastChunk      = []byte("0\r\n\r\n")
	errNoPublisher = errors.New("gateway: no publisher within publish_wait")
	errNoKeyframe  = errors.New("gateway: no keyframe within start_timeout")
)

// play hands the connection to a viewer session. The session runs in the
// goroutine fasthttp starts for a hijacked connection, and owns the raw
// connection from its first to its last byte: it registers on the entry
// before any I/O and writes every response itself, so no response is ever
// touched after its owner is done.
func (g *Server) play(ctx *fasthttp.RequestCtx, key string) {
	remote := ctx.RemoteAddr().String()
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		g.runViewer(c, key, remote)
	})
}

// viewer is one session's state; its buffers are reused for every write.
type viewer struct {
	conn     net.Conn
	bufs     [][]byte
	out      net.Buffers
	sizeLine [16]byte
	sent     uint64
}

func (g *Server) runViewer(c net.Conn, key, remote string) {
	start := time.Now()
	if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
		c = u.UnsafeConn() // the *net.TCPConn, for vectored writes
	}
	log := g.log.With("stream", key, "remote", remote)

	ctx, done, ok := g.viewers.add()
	if !ok {
		g.refuse(c, log, fasthttp.StatusServiceUnavailable, "shutting down", nil)
		return
	}
	defer done()

	sub, err := g.pool.Subscribe(key, g.cfg.PublishWait > 0)
	if err != nil {
		status := fasthttp.StatusInternalServerError
		switch {
		case errors.Is(err, pool.ErrNotFound):
			status = fasthttp.StatusNotFound
		case errors.Is(err, pool.ErrFull), errors.Is(err, pool.ErrPoolClosed):
			status = fasthttp.StatusServiceUnavailable
		}
		g.refuse(c, log, status, statusReason(status), err)
		return
	}
	defer sub.Close()

	if status, err := g.waitReady(ctx, sub.Entry()); err != nil {
		g.refuse(c, log, status, statusReason(status), err)
		return
	}

	v := &viewer{conn: c, bufs: make([][]byte, 0, pool.MaxBatch+2)}
	reason := g.stream(ctx, v, sub)
	g.metrics.sessions.Inc()
	log.Info("viewer ended", "status", fasthttp.StatusOK, "bytes", v.sent,
		"duration", time.Since(start).Round(time.Millisecond), "reason", reason)
}

// waitReady waits until the entry can start a viewer at a keyframe: for
// the publisher of an unknown stream up to publish_wait (then 404), for
// the first keyframe up to start_timeout (then 504).
func (g *Server) waitReady(ctx context.Context, e *pool.Entry) (status int, err error) {
	if e.State() == pool.StateWaiting && !e.Pulled() {
		wait := time.NewTimer(g.cfg.PublishWait)
		defer wait.Stop()
		select {
		case <-e.Live():
		case <-e.Done():
			return fasthttp.StatusNotFound, e.Err()
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
		case errors.Is(err, pool.ErrUpstreamUnreachable):
			return fasthttp.StatusBadGateway, err
		}
		return fasthttp.StatusNotFound, err
	}
	return fasthttp.StatusOK, nil
}

// stream writes the entry to the viewer until it ends, the viewer goes
// away or the gateway shuts down, and says which.
func (g *Server) stream(ctx context.Context, v *viewer, sub *pool.Subscription) string {
	if err := g.writeHead(v.conn); err != nil {
		return fmt.Sprintf("write headers: %v", err)
	}
	r := sub.NewReader()
	e := sub.Entry()
	for {
		// Slot 0 is reserved for the chunk-size line.
		batch, err := r.Next(ctx, v.bufs[:1])
		if len(batch) > 1 {
			n, werr := v.writeChunk(batch, g.cfg.WriteTimeout)
			e.AddBytesOut(n)
			g.metrics.bytesOut.Add(float64(n))
			if werr != nil {
				g.metrics.skips.Add(float64(r.Skips()))
				return fmt.Sprintf("viewer write: %v", werr)
			}
		}
		clear(batch)
		if err != nil {
			g.metrics.skips.Add(float64(r.Skips()))
			reason := "shutdown"
			if errors.Is(err, pool.ErrEnded) {
				reason = e.Err().Error()
			}
			_ = v.conn.SetWriteDeadline(time.Now().Add(g.cfg.WriteTimeout))
			if _, werr := v.conn.Write(lastChunk); werr != nil {
				return fmt.Sprintf("%s; final chunk: %v", reason, werr)
			}
			return reason
		}
	}
}

// writeChunk sends batch[1:] as one HTTP chunk with one vectored write.
func (v *viewer) writeChunk(batch [][]byte, timeout time.Duration) (int, error) {
	n := 0
	for _, b := range batch[1:] {
		n += len(b)
	}
	line := strconv.AppendInt(v.sizeLine[:0], int64(n), 16)
	batch[0] = append(line, '\r', '\n')
	batch = append(batch, crlf)
	if err := v.conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return 0, err
	}
	v.out = batch
	_, err := v.out.WriteTo(v.conn)
	v.out = nil
	if err != nil {
		return 0, err
	}
	v.sent += uint64(n)
	return n, nil
}

func (g *Server) writeHead(c net.Conn) error {
	head := "HTTP/1.1 200 OK\r\n" +
		"Server: flvgw\r\n" +
		"Content-Type: video/x-flv\r\n" +
		"Transfer-Encoding: chunked\r\n" +
		"Cache-Control: no-cache, no-store\r\n" +
		"Connection: close\r\n" +
		g.corsLine() + "\r\n"
	if err := c.SetWriteDeadline(time.Now().Add(g.cfg.WriteTimeout)); err != nil {
		return err
	}
	_, err := c.Write([]byte(head))
	if err == nil {
		g.metrics.response(fasthttp.StatusOK)
	}
	return err
}

func (g *Server) corsLine() string {
	if g.cfg.CORSOrigin == "" {
		return ""
	}
	return "Access-Control-Allow-Origin: " + g.cfg.CORSOrigin + "\r\n"
}

// statusReason is the one-line body of a refusal.
func statusReason(status int) string {
	switch status {
	case fasthttp.StatusNotFound:
		return "stream not found"
	case fasthttp.StatusServiceUnavailable:
		return "no capacity for this stream now"
	case fasthttp.StatusGatewayTimeout:
		return "stream published but no keyframe arrived in time"
	case fasthttp.StatusBadGateway:
		return "no upstream reachable"
	}
	return "stream unavailable"
}

// refuse answers a hijacked connection with an error status, and logs it.
func (g *Server) refuse(c net.Conn, log *slog.Logger, status int, msg string, err error) {
	body := msg + "\n"
	extra := ""
	if status == fasthttp.StatusServiceUnavailable {
		extra = "Retry-After: 5\r\n"
	}
	resp := fmt.Sprintf("HTTP/1.1 %d %s\r\nServer: flvgw\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Content-Length: %d\r\nConnection: close\r\n%s%s\r\n%s",
		status, fasthttp.StatusMessage(status), len(body), extra, g.corsLine(), body)
	_ = c.SetWriteDeadline(time.Now().Add(g.cfg.WriteTimeout))
	_, _ = c.Write([]byte(resp))
	g.metrics.response(status)
	log.Info("request refused", "status", status, "reason", msg, "error", err)
}
