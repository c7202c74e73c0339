package origin

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/yutopp/go-rtmp/handshake"

	"flvgw/pool"
)

// fakeRTMPUpstream serves RTMP on loopback: it accepts connect and
// createStream, then hands the connection to onPlay once play arrives.
func fakeRTMPUpstream(t *testing.T, onPlay func(srv *rtmpPlayer, txn float64)) string {
	t.Helper()
	return serve(t, func(c net.Conn) {
		srv, txn, err := acceptPlay(c)
		if err != nil {
			return
		}
		onPlay(srv, txn)
		_, _ = io.Copy(io.Discard, c) // until the pull hangs up
	})
}

// acceptPlay is an RTMP upstream's side of c up to a play: the handshake,
// then connect and createStream answered, until play comes (its
// transaction id is txn).
func acceptPlay(c net.Conn) (srv *rtmpPlayer, txn float64, err error) {
	srv, txn, _, err = acceptPlayOf(c)
	return srv, txn, err
}

// acceptPlayOf is acceptPlay that also returns the name played.
func acceptPlayOf(c net.Conn) (srv *rtmpPlayer, txn float64, played string, err error) {
	if err := handshake.HandshakeWithClient(c, c, &handshake.Config{}); err != nil {
		return nil, 0, "", err
	}
	srv = &rtmpPlayer{conn: c, writeFor: 5 * time.Second, cr: newChunkReader(c), cw: &chunkWriter{w: bufio.NewWriter(c)}}
	for {
		msg, err := srv.cr.next()
		if err != nil {
			return nil, 0, "", err
		}
		if msg.typeID != msgCommandAMF0 {
			continue
		}
		name, txn, args, err := decodeCommand(msg)
		switch {
		case err != nil:
			return nil, 0, "", err
		case name == "connect":
			err = srv.command(0, "_result", txn, nil, map[string]any{"code": "NetConnection.Connect.Success"})
		case name == "createStream":
			err = srv.command(0, "_result", txn, nil, 1.0)
		case name == "play":
			if len(args) > 1 {
				played, _ = args[1].(string)
			}
			return srv, txn, played, nil
		}
		if err != nil {
			return nil, 0, "", err
		}
	}
}

// rtmpAnswering serves RTMP on loopback: after the handshake, answer is
// given each command the pull sends, with its name and transaction id.
func rtmpAnswering(t *testing.T, answer func(srv *rtmpPlayer, name string, txn float64)) string {
	t.Helper()
	return serve(t, func(c net.Conn) {
		if err := handshake.HandshakeWithClient(c, c, &handshake.Config{}); err != nil {
			return
		}
		srv := &rtmpPlayer{conn: c, writeFor: 5 * time.Second, cr: newChunkReader(c), cw: &chunkWriter{w: bufio.NewWriter(c)}}
		for {
			msg, err := srv.cr.next()
			if err != nil {
				return
			}
			if name, txn, _, err := decodeCommand(msg); err == nil {
				answer(srv, name, txn)
			}
		}
	})
}

// An RTMP upstream that refuses the play outright, with an _error answer
// to it (as onStatus NetStream.Play.StreamNotFound would), has answered:
// the pull moves on at once, and when every upstream said no the viewer
// hears it at once, not after pull_timeout.
func TestRTMPPlayErrorIsAnAnswer(t *testing.T) {
	refuse := fakeRTMPUpstream(t, func(srv *rtmpPlayer, txn float64) {
		_ = srv.command(0, "_error", txn, nil, map[string]any{
			"level": "error", "code": "NetStream.Play.StreamNotFound", "description": "no such stream",
		})
	})
	cfg := fastEdge()
	cfg.PullTimeout = 10 * time.Second
	p := newPull(t, cfg, Upstream{Name: "a", URL: "rtmp://" + refuse}, Upstream{Name: "b", URL: "rtmp://" + refuse})
	start := time.Now()
	err := pullEnds(t, p, 20*time.Second)
	if d := time.Since(start); !errors.Is(err, pool.ErrUpstreamNotFound) || d > cfg.PullTimeout/2 {
		t.Fatalf("ended with %v after %s; want %v at once (pull_timeout %s)", err, d.Round(time.Millisecond), pool.ErrUpstreamNotFound, cfg.PullTimeout)
	}
}

// What an upstream says in refusing (a status code, an _error's
// arguments) is quoted in the pull's error and the log only up to a
// bound: a message may be megabytes, and the log is the operator's.
func TestUpstreamRefusalIsQuotedWithinABound(t *testing.T) {
	huge := strings.Repeat("x", 60_000) // an AMF0 string holds at most 65,535 bytes
	refuseCode := fakeRTMPUpstream(t, func(srv *rtmpPlayer, txn float64) {
		_ = srv.command(0, "_error", txn, nil, map[string]any{"level": "error", "code": huge})
	})
	cfg := fastEdge()
	p := newPull(t, cfg, Upstream{Name: "a", URL: "rtmp://" + refuseCode})
	if err := pullEnds(t, p, 20*time.Second); !errors.Is(err, pool.ErrUpstreamNotFound) || len(err.Error()) > 1000 {
		t.Fatalf("ended with an error of %d bytes (%v), want not found quoted within a bound", len(err.Error()), errors.Is(err, pool.ErrUpstreamNotFound))
	}
	// connect refused with an _error of large arguments.
	refuseConnect := rtmpAnswering(t, func(srv *rtmpPlayer, name string, txn float64) {
		if name == "connect" {
			_ = srv.command(0, "_error", txn, nil, map[string]any{"description": huge})
		}
	})
	p = newPull(t, cfg, Upstream{Name: "b", URL: "rtmp://" + refuseConnect})
	if err := pullEnds(t, p, 20*time.Second); err == nil || len(err.Error()) > 1000 {
		t.Fatalf("ended with an error of %d bytes, want the connect's refusal quoted within a bound", len(err.Error()))
	}
}

// An upstream whose createStream _result is not a stream id is malformed;
// what it answered instead is its own text, quoted within the same bound.
func TestUpstreamCreateStreamResultIsQuotedWithinABound(t *testing.T) {
	huge := strings.Repeat("x", 60_000)
	addr := rtmpAnswering(t, func(srv *rtmpPlayer, name string, txn float64) {
		switch name {
		case "connect":
			_ = srv.command(0, "_result", txn, nil, map[string]any{"code": "NetConnection.Connect.Success"})
		case "createStream":
			_ = srv.command(0, "_result", txn, nil, map[string]any{"description": huge})
		}
	})
	p := newPull(t, fastEdge(), Upstream{Name: "a", URL: "rtmp://" + addr})
	if err := pullEnds(t, p, 20*time.Second); !errors.Is(err, ErrMalformedRTMP) || len(err.Error()) > 1000 {
		t.Fatalf("ended with an error of %d bytes (malformed: %v), want its answer quoted within a bound", len(err.Error()), errors.Is(err, ErrMalformedRTMP))
	}
}

// An HTTP-FLV upstream's status line and headers are its own text, up to
// the response head's bound (64 KiB): the pull's error quotes them within
// the bound an RTMP upstream's answer has.
func TestUpstreamHTTPResponseIsQuotedWithinABound(t *testing.T) {
	huge := strings.Repeat("x", 60_000)
	for _, head := range []string{
		"HTTP/1.1 503 " + huge + "\r\nContent-Length: 0\r\n\r\n", // its reason
		"HTTP/1.1 " + huge + "\r\n\r\n",                          // a malformed status, which net/http quotes
		"HTTP/1.1 200 OK\r\n" + huge + "\r\n\r\n",                // a malformed header line, the same
	} {
		addr := serve(t, func(c net.Conn) { _, _ = io.WriteString(c, head) })
		p := newPull(t, fastEdge(), Upstream{Name: "a", URL: "http://" + addr})
		if err := pullEnds(t, p, 20*time.Second); !errors.Is(err, pool.ErrUpstreamUnreachable) || len(err.Error()) > 1000 {
			t.Fatalf("ended with an error of %d bytes (unreachable: %v), want the response quoted within a bound", len(err.Error()), errors.Is(err, pool.ErrUpstreamUnreachable))
		}
	}
}
