package origin

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/yutopp/go-rtmp/handshake"

	"flvgw/pool"
)

// startOrigin runs an origin on a loopback listener, with a pool of its
// own; cancel ends its Serve, which then sends its result on served.
func startOrigin(t *testing.T) (s *Server, addr string, cancel func(), served <-chan error) {
	t.Helper()
	return startOriginLogging(t, quiet())
}

// startOriginLogging is startOrigin with the origin logging to log.
func startOriginLogging(t *testing.T, log *slog.Logger) (s *Server, addr string, cancel func(), served <-chan error) {
	t.Helper()
	p, err := pool.New(pool.DefaultConfig(), quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	s = NewServer(DefaultConfig(), p, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() { result <- s.Serve(ctx, ln) }()
	return s, ln.Addr().String(), cancel, result
}

// rtmpPeer dials addr and does a client's RTMP handshake, with 10 s for
// all it does on the connection.
func rtmpPeer(t *testing.T, addr, what string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := handshake.HandshakeWithServer(conn, conn, &handshake.Config{}); err != nil {
		conn.Close()
		t.Fatalf("%s: handshake: %v", what, err)
	}
	return conn
}

// A connection that go-rtmp hands over after Serve began to end (its
// OnConnect runs on the connection's own goroutine, so it can come late)
// is closed at once and not counted among the connections Serve waits
// for: counting it would race Serve's Wait on the wait group.
func TestConnectionAcceptedWhileServeEndsIsRefused(t *testing.T) {
	s, _, cancel, served := startOrigin(t)
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}

	late, peer := net.Pipe()
	defer peer.Close()
	h := s.newHandler(late)
	s.mu.Lock()
	counted := len(s.conns)
	s.mu.Unlock()
	if counted != 0 || h.tracked {
		t.Fatalf("a connection accepted after Serve ended is counted (%d connections, tracked %v)", counted, h.tracked)
	}
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := peer.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("the late connection was not closed: read gave %v", err)
	}
	h.OnClose() // go-rtmp's close of it must not touch the wait group
	s.wg.Wait()
}

// A peer's AMF0 cannot crash the process: go-rtmp decodes every client's
// connect command with go-amf0, whose v0.1.0 allocated whatever length a
// strict array claimed (2^31-1 elements, from 5 bytes, was 32 GiB: a
// fatal out-of-memory error) and recursed as deep as arrays nested (8 MB
// of nesting, under the origin's cap on a message, overflowed the
// stack). flvgw builds with a patched copy (origin/third_party/go-amf0):
// such a connect ends its connection only, and the origin goes on
// serving.
func TestHostileAMF0(t *testing.T) {
	_, addr, cancel, served := startOrigin(t)
	defer func() { cancel(); <-served }()

	// "connect", transaction 1, and an object whose "app" is the value.
	connect := []byte{0x02, 0, 7, 'c', 'o', 'n', 'n', 'e', 'c', 't', 0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x03, 0, 3, 'a', 'p', 'p'}
	for _, tc := range []struct {
		name  string
		value []byte
	}{
		{"a strict array claiming 2^31-1 elements", []byte{0x0a, 0x7f, 0xff, 0xff, 0xff}},
		{"strict arrays nested 1,600,000 deep", bytes.Repeat([]byte{0x0a, 0, 0, 0, 1}, 1_600_000)},
	} {
		conn := rtmpPeer(t, addr, tc.name)
		cw := &chunkWriter{w: bufio.NewWriter(conn)}
		if err := cw.write(3, msgCommandAMF0, 0, 0, append(slices.Clip(connect), tc.value...)); err != nil {
			t.Fatalf("%s: write: %v", tc.name, err)
		}
		_, err := io.Copy(io.Discard, conn) // until the origin closes it
		conn.Close()
		if err != nil {
			t.Fatalf("%s: the origin did not close the connection: %v", tc.name, err)
		}
	}

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := dialRTMP(conn, "live", "rtmp://"+addr+"/live", time.Now().Add(5*time.Second), 5*time.Second); err != nil {
		t.Fatalf("the origin no longer serves after hostile peers: %v", err)
	}
}

// A peer's AMF0 may claim many values in few bytes: a null is one byte
// and decodes to an interface value of 16 and more, so 8 MiB of nulls in
// one strict array, sent in any data message (before connect), was
// 1.1 GB of allocation and seconds of CPU, again for each such message.
// The decoder takes at most 65,536 values of one message: the message is
// dropped as undecodable, and the connection goes on.
func TestAMF0ValuesAreBounded(t *testing.T) {
	_, addr, cancel, served := startOrigin(t)
	defer func() { cancel(); <-served }()
	conn := rtmpPeer(t, addr, "many AMF0 values")
	defer conn.Close()
	p := &rtmpPlayer{conn: conn, writeFor: 10 * time.Second, cr: newChunkReader(conn), cw: &chunkWriter{w: bufio.NewWriter(conn)}}

	name := []byte{0x02, 0, 1, 'x'}
	nulls := maxMessageLen - len(name) - 5
	data := append(name, 0x0a, byte(nulls>>24), byte(nulls>>16), byte(nulls>>8), byte(nulls))
	data = append(data, bytes.Repeat([]byte{0x05}, nulls)...)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	if err := p.write(3, msgDataAMF0, 0, data); err != nil {
		t.Fatal(err)
	}
	if err := p.command(0, "connect", 1, map[string]any{"app": "live"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.awaitResult(1); err != nil {
		t.Fatalf("connect after the data message: %v", err)
	}
	runtime.ReadMemStats(&after)
	if alloc := (after.TotalAlloc - before.TotalAlloc) >> 20; alloc > 200 {
		t.Errorf("the origin allocated %d MiB for an 8 MiB message (in %s)", alloc, time.Since(start).Round(time.Millisecond))
	}
}

// A peer that opens more chunk streams than maxChunkStreams, each with a
// message begun and never finished (memory held for it), loses its
// connection at once, before any publish auth.
func TestOriginRefusesManyChunkStreams(t *testing.T) {
	_, addr, cancel, served := startOrigin(t)
	defer func() { cancel(); <-served }()
	conn := rtmpPeer(t, addr, "many chunk streams")
	defer conn.Close()
	var in []byte
	for cs := 3; cs < 3+maxChunkStreams+8; cs++ {
		if cs < 64 {
			in = append(in, byte(cs))
		} else {
			in = append(in, 0, byte(cs-64))
		}
		// Message header: timestamp 0, 256 bytes of audio on stream 1;
		// only its first 128-byte chunk is sent.
		in = append(in, 0, 0, 0, 0, 1, 0, msgAudio, 1, 0, 0, 0)
		in = append(in, make([]byte, 128)...)
	}
	_, _ = conn.Write(in) // the origin may close it before the end
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Fatalf("the origin kept the connection: %v", err)
	}
}

// A peer may hold at most maxMessageStreams message streams, the control
// stream among them: a createStream over that is answered _error, and the
// connection goes on. go-rtmp's default let a peer create streams without
// end, each kept until its connection closed, and looked for a free id
// from 0 up for each new one.
func TestOriginBoundsMessageStreams(t *testing.T) {
	_, addr, cancel, served := startOrigin(t)
	defer func() { cancel(); <-served }()
	p := rtmpClient(t, addr) // its one stream created
	const asked = 100
	for txn := 10; txn < 10+asked; txn++ {
		if err := p.command(0, "createStream", float64(txn), nil); err != nil {
			t.Fatal(err)
		}
	}
	granted := 1
	for txn := 10; txn < 10+asked; txn++ {
		if _, err := p.awaitResult(float64(txn)); err == nil {
			granted++
		}
	}
	if granted != maxMessageStreams-1 {
		t.Fatalf("%d streams granted to a connection asking for %d, want %d", granted, asked+1, maxMessageStreams-1)
	}
	if err := p.command(p.streamID, "publish", 0, nil, "many", "live"); err != nil {
		t.Fatal(err)
	}
	if code := awaitStatus(t, p, "publish"); code != "NetStream.Publish.Start" {
		t.Fatalf("publish after refused createStreams: %s, want NetStream.Publish.Start", code)
	}
}

// A peer that sends a byte now and then but never gets to publish (a
// handshake one byte at a time, or control messages after connect) is
// dropped after rtmp.read_timeout, as a silent one is: until it
// publishes, only its handshake, its connect and its publish move the
// deadline, not every byte.
func TestOriginDropsTricklingPeer(t *testing.T) {
	s, addr, cancel, served := startOrigin(t)
	defer func() { cancel(); <-served }()
	cfg := DefaultConfig()
	cfg.ReadTimeout = 300 * time.Millisecond
	s.SetConfig(cfg)

	// trickle writes in, one byte every 50 ms, over and over, until a
	// write fails or the test ends; the origin's read timeout is not
	// reached between two bytes.
	trickle := func(conn net.Conn, in []byte) {
		done := make(chan struct{})
		t.Cleanup(func() { close(done) })
		go func() {
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				if _, err := conn.Write(in[i%len(in) : i%len(in)+1]); err != nil {
					return
				}
			}
		}()
	}
	// dropped waits up to 10 s for the origin to close conn.
	dropped := func(conn net.Conn, what string) {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, conn); errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s: the connection is open 10 s on, with rtmp.read_timeout 300ms", what)
		}
	}

	hs, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	trickle(hs, append([]byte{3}, make([]byte, 1536)...)) // C0, C1
	dropped(hs, "a handshake one byte at a time")

	p := rtmpClient(t, addr)
	// Window Acknowledgement Size messages, one byte at a time.
	trickle(p.conn, []byte{2, 0, 0, 0, 0, 0, 4, msgWindowAckSize, 0, 0, 0, 0, 0, 0x4c, 0x4b, 0x40})
	dropped(p.conn, "control messages one byte at a time after connect")
}

// A peer's Window Acknowledgement Size below minAckWindow counts as
// minAckWindow: the origin acknowledges at most every minAckWindow/2
// bytes, however small a window the peer asks for. With a window of 1,
// go-rtmp acknowledged every chunk it read: a write for every chunk the
// peer sent, a few bytes each with a chunk size of 1.
func TestOriginBoundsAcknowledgements(t *testing.T) {
	_, addr, cancel, served := startOrigin(t)
	defer func() { cancel(); <-served }()
	p := rtmpClient(t, addr)
	if err := p.command(p.streamID, "publish", 0, nil, "acks", "live"); err != nil {
		t.Fatal(err)
	}
	if code := awaitStatus(t, p, "publish"); code != "NetStream.Publish.Start" {
		t.Fatalf("publish: %s", code)
	}
	if err := p.control(msgWindowAckSize, u32(1)); err != nil {
		t.Fatal(err)
	}
	const sent = 100 << 10 // 800 chunks of 128 bytes
	frame := make([]byte, sent)
	frame[0], frame[1] = 0x27, 1 // an inter frame, dropped before a keyframe
	if err := p.write(mediaStreamChunk, msgVideo, p.streamID, frame); err != nil {
		t.Fatal(err)
	}
	acks := 0
	for {
		_ = p.conn.SetReadDeadline(time.Now().Add(time.Second))
		msg, err := p.cr.next()
		if err != nil {
			break // a second without a message: all of them are in
		}
		if msg.typeID == msgAck {
			acks++
		}
	}
	if max := 2 * sent / (minAckWindow / 2); acks > max {
		t.Fatalf("%d acknowledgements for %d bytes with a window of 1, want at most %d", acks, sent, max)
	}
}

// rtmp.max_connections and rtmp.max_connections_per_ip: a connection over
// either is closed at once, before its handshake, and counted; the others
// are served, and a place freed is taken again.
func TestConnectionLimits(t *testing.T) {
	s, addr, cancel, served := startOrigin(t)
	defer func() { cancel(); <-served }()
	cfg := DefaultConfig()
	cfg.MaxConnections, cfg.MaxConnectionsPerIP = 3, 2
	s.SetConfig(cfg)
	// dial connects from the loopback address from and reports whether
	// the origin closed the connection at once (it is served otherwise:
	// it waits for the handshake).
	dial := func(from string) (net.Conn, bool) {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err = c.Read(make([]byte, 1))
		return c, !isTimeout(err)
	}
	a1, refused := dial("127.0.0.1")
	if refused {
		t.Fatal("the first connection was refused")
	}
	if _, refused := dial("127.0.0.1"); refused {
		t.Fatal("the second connection from 127.0.0.1 was refused (max_connections_per_ip 2)")
	}
	if _, refused := dial("127.0.0.1"); !refused {
		t.Fatal("a third connection from 127.0.0.1 was served (max_connections_per_ip 2)")
	}
	if _, refused := dial("127.0.0.2"); refused {
		t.Fatal("a connection from 127.0.0.2 was refused (max_connections 3, 2 open)")
	}
	if _, refused := dial("127.0.0.3"); !refused {
		t.Fatal("a fourth connection was served (max_connections 3)")
	}
	if st := s.Stats(); st != (RTMPStats{Connections: 3, RefusedTotal: 1, RefusedPerIP: 1}) {
		t.Fatalf("stats %+v, want 3 open, 1 refused by each limit", st)
	}
	a1.Close()
	for deadline := time.Now().Add(5 * time.Second); s.Stats().Connections != 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v after a connection closed, want 2 open", s.Stats())
		}
	}
	if _, refused := dial("127.0.0.1"); refused {
		t.Fatal("a connection from 127.0.0.1 was refused after one of its two closed")
	}
}

// A connection keeps no large message's buffer after it: one 4 MiB
// message would otherwise hold 4 MiB for the connection's life. A small
// one's buffer is kept for the next message.
func TestLargeMessageBufferIsNotKept(t *testing.T) {
	h := &handler{}
	_ = h.writeFrom(pool.TagVideo, 0, bytes.NewReader(make([]byte, 4<<20))) // refused: no publish yet
	if c := h.buf.Cap(); c > maxKeptBuffer {
		t.Fatalf("the connection keeps a buffer of %d bytes after a 4 MiB message", c)
	}
	_ = h.OnAggregate(0, bytes.NewReader(make([]byte, 4<<20)))
	if c := h.buf.Cap(); c > maxKeptBuffer {
		t.Fatalf("the connection keeps a buffer of %d bytes after a 4 MiB aggregate", c)
	}
	_ = h.writeFrom(pool.TagVideo, 0, bytes.NewReader(make([]byte, 1000)))
	if h.buf.Cap() == 0 {
		t.Fatal("a small message's buffer was not kept")
	}
}
