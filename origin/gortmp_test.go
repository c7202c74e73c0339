package origin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amf0 "github.com/yutopp/go-amf0"
	rtmp "github.com/yutopp/go-rtmp"
	rtmpmsg "github.com/yutopp/go-rtmp/message"

	"flvgw/pool"
)

// The embedded origin reads publishers with go-rtmp, patched in
// origin/third_party/go-rtmp; these tests cover the patches.

// extendedTS is past the 24-bit timestamp field (4 h 39 min).
const extendedTS = 0x12345678

// go-rtmp reads a message whose format 3 chunks repeat the extended
// timestamp, as ffmpeg, librtmp and OBS send them (the pull client's
// chunkWriter writes them the same way), and keeps its framing for the
// message after it. v0.0.7 took the 4 bytes for payload.
func TestGoRTMPReadsRepeatedExtendedTimestamps(t *testing.T) {
	var in bytes.Buffer
	cw := &chunkWriter{w: bufio.NewWriter(&in)}
	first := bytes.Repeat([]byte{0x17, 1, 2}, 100) // 300 bytes: three chunks
	second := bytes.Repeat([]byte{0x27, 3}, 150)
	if err := cw.write(mediaStreamChunk, msgVideo, 1, extendedTS, first); err != nil {
		t.Fatal(err)
	}
	if err := cw.write(mediaStreamChunk, msgVideo, 1, extendedTS+40, second); err != nil {
		t.Fatal(err)
	}
	if want := 2 * (12 + 4 + 300 + 2*(1+4)); in.Len() != want {
		t.Fatalf("the chunk writer wrote %d bytes, want %d (an extended timestamp after each header)", in.Len(), want)
	}

	cs := rtmp.NewChunkStreamer(&in, io.Discard, nil)
	defer cs.Close()
	for i, want := range []struct {
		ts      uint32
		payload []byte
	}{{extendedTS, first}, {extendedTS + 40, second}} {
		ts, got := readMedia(t, cs, i, msgVideo)
		if ts != want.ts || !bytes.Equal(got, want.payload) {
			t.Fatalf("message %d: timestamp %#x, %d bytes, want %#x, %d bytes equal to those sent", i, ts, len(got), want.ts, len(want.payload))
		}
	}
}

// readMedia reads message i from cs, which must be audio or video as typ
// says, and returns its timestamp and payload.
func readMedia(t *testing.T, cs *rtmp.ChunkStreamer, i int, typ uint8) (uint32, []byte) {
	t.Helper()
	var cmsg rtmp.ChunkMessage
	_, ts, err := cs.Read(&cmsg)
	if err != nil {
		t.Fatalf("message %d: %v", i, err)
	}
	var payload io.Reader
	switch m := cmsg.Message.(type) {
	case *rtmpmsg.AudioMessage:
		if typ == msgAudio {
			payload = m.Payload
		}
	case *rtmpmsg.VideoMessage:
		if typ == msgVideo {
			payload = m.Payload
		}
	}
	if payload == nil {
		t.Fatalf("message %d: %T, want type %d", i, cmsg.Message, typ)
	}
	got, err := io.ReadAll(payload)
	if err != nil {
		t.Fatalf("message %d: %v", i, err)
	}
	return ts, got
}

// Every sequence of chunk formats keeps the extended timestamp right: it
// is repeated by format 3 chunks that continue a message or start one,
// until a header of format 0, 1 or 2 without it turns it off.
func TestGoRTMPExtendedTimestampSequences(t *testing.T) {
	const e = 0x1000000
	ext := binary.BigEndian.AppendUint32(nil, e)
	hdr := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	p := bytes.Repeat([]byte{0xaf}, 300) // three chunks
	q := bytes.Repeat([]byte{0xaf}, 200) // two chunks
	var in []byte
	// format 0 with it, two continuations with it
	in = append(in, chunk(0, hdr(type0(0xffffff, 300, msgAudio, 1), ext), p[:128])...)
	in = append(in, chunk(3, ext, p[128:256])...)
	in = append(in, chunk(3, ext, p[256:])...)
	// format 3 starting a message (delta 0 from format 0): with it
	in = append(in, chunk(3, ext, p[:128])...)
	in = append(in, chunk(3, ext, p[128:256])...)
	in = append(in, chunk(3, ext, p[256:])...)
	// format 1 without it (delta 40, 200 bytes): continuation without it
	in = append(in, chunk(1, []byte{0, 0, 40, 0, 0, 200, msgAudio}, q[:128])...)
	in = append(in, chunk(3, nil, q[128:])...)
	// format 2 with it (delta e), continuation with it
	in = append(in, chunk(2, hdr([]byte{0xff, 0xff, 0xff}, ext), q[:128])...)
	in = append(in, chunk(3, ext, q[128:])...)
	// format 3 starting a message: delta e again, with it
	in = append(in, chunk(3, ext, q[:128])...)
	in = append(in, chunk(3, ext, q[128:])...)
	// format 2 with a small delta: off again
	in = append(in, chunk(2, []byte{0, 0, 1}, q[:128])...)
	in = append(in, chunk(3, nil, q[128:])...)

	cs := rtmp.NewChunkStreamer(bytes.NewReader(in), io.Discard, nil)
	defer cs.Close()
	for i, want := range []uint32{e, e, e + 40, 2*e + 40, 3*e + 40, 3*e + 41} {
		if ts, got := readMedia(t, cs, i, msgAudio); ts != want || !bytes.Equal(got, p[:len(got)]) || len(got) < 200 {
			t.Fatalf("message %d: timestamp %#x, %d bytes; want %#x and the bytes sent", i, ts, len(got), want)
		}
	}
	var cmsg rtmp.ChunkMessage
	if _, _, err := cs.Read(&cmsg); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last message: %v", err)
	}
}

// go-rtmp writes the repeated extended timestamp too, so that its client
// (the test kit's Go publisher) frames what the patched reader expects.
func TestGoRTMPWritesRepeatedExtendedTimestamps(t *testing.T) {
	pr, pw := io.Pipe()
	cs := rtmp.NewChunkStreamer(bytes.NewReader(nil), pw, nil)
	defer cs.Close()
	payloads := [][]byte{bytes.Repeat([]byte{0x17, 1}, 150), bytes.Repeat([]byte{0x27, 2}, 200)}
	go func() {
		for i, p := range payloads {
			msg := &rtmp.ChunkMessage{StreamID: 1, Message: &rtmpmsg.VideoMessage{Payload: bytes.NewReader(p)}}
			if err := cs.Write(context.Background(), mediaStreamChunk, extendedTS+uint32(i)*40, msg); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
	}()
	cr := newChunkReader(pr)
	for i, p := range payloads {
		m, err := cr.next()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if want := extendedTS + uint32(i)*40; m.typeID != msgVideo || m.timestamp != want || !bytes.Equal(m.payload, p) {
			t.Fatalf("message %d: type %d, timestamp %#x, %d bytes; want video, %#x, the %d bytes written", i, m.typeID, m.timestamp, len(m.payload), want, len(p))
		}
	}
}

// logBuffer collects a logger's lines; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// audioHeader is a format 0 header on chunk stream cs: an audio message of
// n bytes.
func audioHeader(cs byte, n int) []byte {
	return []byte{cs, 0, 0, 0, byte(n >> 16), byte(n >> 8), byte(n), msgAudio, 1, 0, 0, 0}
}

// setChunkSize is a Set Chunk Size message of n bytes on chunk stream 2.
func setChunkSize(n uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{2, 0, 0, 0, 0, 0, 4, msgSetChunkSize, 0, 0, 0, 0}, n)
}

// messagesBegun is three messages of maxMessageLen on chunk streams 4, 5
// and 6 in chunks of 1 MiB, each sent but for its last chunk: 3 × 7 MiB
// begun. With abort, an Abort message follows each, and the chunk size
// goes back to the default at the end.
func messagesBegun(abort bool) []byte {
	const size = 1 << 20
	in := setChunkSize(size)
	for cs := byte(4); cs <= 6; cs++ {
		in = append(in, audioHeader(cs, maxMessageLen)...)
		for c := range maxMessageLen/size - 1 {
			if c > 0 {
				in = append(in, 0xc0|cs)
			}
			in = append(in, make([]byte, size)...)
		}
		if abort {
			in = append(in, 2, 0, 0, 0, 0, 0, 4, msgAbort, 0, 0, 0, 0, 0, 0, 0, cs)
		}
	}
	if abort {
		in = append(in, setChunkSize(defaultChunkSize)...)
	}
	return in
}

// An Abort message drops the message begun on its chunk stream, and frees
// its bytes: after three 7 MiB messages begun and aborted (21 MiB, over
// the 16 MiB bound), the connection is still served. go-rtmp v0.0.7 passed
// Abort on to the handler and kept the bytes.
func TestOriginAbortFreesItsMessage(t *testing.T) {
	_, addr, cancel, served := startOrigin(t)
	defer func() { cancel(); <-served }()
	conn := rtmpPeer(t, addr, "abort")
	defer conn.Close()
	if _, err := conn.Write(messagesBegun(true)); err != nil {
		t.Fatalf("the origin refused the aborted messages: %v", err)
	}
	p := &rtmpPlayer{conn: conn, writeFor: 5 * time.Second, cr: newChunkReader(conn), cw: &chunkWriter{w: bufio.NewWriter(conn)}}
	if err := p.command(0, "connect", 1, map[string]any{"app": "live", "tcUrl": "rtmp://" + addr + "/live"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.awaitResult(1); err != nil {
		t.Fatalf("connect after the aborted messages: %v", err)
	}
}

// A peer's unfinished messages are bounded as the pull client's are: a
// message declared over maxMessageLen, or more than maxPendingBytes of
// messages begun across chunk streams, end its connection with a warning
// that says why, before any publish. go-rtmp v0.0.7 would hold up to 16
// MiB on each of the peer's chunk streams.
func TestOriginBoundsUnfinishedMessages(t *testing.T) {
	logs := &logBuffer{}
	_, addr, cancel, served := startOriginLogging(t, slog.New(slog.NewTextHandler(logs, nil)))
	defer func() { cancel(); <-served }()

	for _, tc := range []struct {
		name, logged string
		in           []byte
	}{
		{"a message declared over the cap", fmt.Sprintf("message of %d bytes, over the %d allowed", maxMessageLen+1, maxMessageLen), append(audioHeader(4, maxMessageLen+1), make([]byte, 128)...)},
		{"messages begun over the cap", fmt.Sprintf("over %d bytes of unfinished messages", maxPendingBytes), messagesBegun(false)},
	} {
		conn := rtmpPeer(t, addr, tc.name)
		go func() { _, _ = conn.Write(tc.in) }() // the origin may close it before the end
		_, err := io.Copy(io.Discard, conn)
		conn.Close()
		if err != nil && !strings.Contains(err.Error(), "connection reset") {
			t.Fatalf("%s: the origin kept the connection: %v", tc.name, err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(logs.String(), tc.logged) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if !strings.Contains(logs.String(), tc.logged) {
			t.Fatalf("%s: no warning with %q in:\n%s", tc.name, tc.logged, logs)
		}
	}
	if !strings.Contains(logs.String(), `level=WARN msg="rtmp connection failed"`) || strings.Contains(logs.String(), ".go:") {
		t.Fatalf("warnings not as expected:\n%s", logs)
	}
}

// An empty message is read as one (v0.0.7 panicked: "invalid state"), and
// a header that shrinks a message under what was read of it is an error.
func TestGoRTMPEmptyAndShrunkMessages(t *testing.T) {
	var in []byte
	in = append(in, chunk(0, type0(10, 0, msgAudio, 1), nil)...)
	in = append(in, chunk(0, type0(20, 2, msgAudio, 1), []byte{0xaf, 1})...)
	cs := rtmp.NewChunkStreamer(bytes.NewReader(in), io.Discard, nil)
	defer cs.Close()
	for i, want := range []int{0, 2} {
		if _, got := readMedia(t, cs, i, msgAudio); len(got) != want {
			t.Fatalf("message %d: %d bytes, want %d", i, len(got), want)
		}
	}

	// 200 bytes begun with a 128-byte chunk, then a format 1 header of a
	// 100-byte message on the same chunk stream.
	in = chunk(0, type0(0, 200, msgVideo, 1), make([]byte, 128))
	in = append(in, chunk(1, []byte{0, 0, 40, 0, 0, 100, msgVideo}, make([]byte, 100))...)
	cs = rtmp.NewChunkStreamer(bytes.NewReader(in), io.Discard, nil)
	defer cs.Close()
	var cmsg rtmp.ChunkMessage
	if _, _, err := cs.Read(&cmsg); err == nil || !strings.Contains(err.Error(), "header of a 100-byte message after 128 bytes") {
		t.Fatalf("shrunk message: %v", err)
	}
}

// The origin's log says why a connection ended, at the level it deserves:
// nothing for a TCP probe (a load balancer's health check connects and
// closes), info for a publish that ends with the origin's shutdown, and
// the error's text without go-rtmp's stack trace.
func TestOriginLogsWhyConnectionsEnd(t *testing.T) {
	logs := &logBuffer{}
	s, addr, cancel, served := startOriginLogging(t, slog.New(slog.NewTextHandler(logs, nil)))

	probe, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	probe.Close()

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	p, err := dialRTMP(conn, "live", "rtmp://"+addr+"/live", time.Now().Add(5*time.Second), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.command(p.streamID, "publish", 0, nil, "logged", "live"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), `msg="publish started"`) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if _, ok := s.pool.Lookup("live/logged"); !ok {
		t.Fatalf("no publish:\n%s", logs)
	}
	cancel()
	<-served
	got := logs.String()
	if !strings.Contains(got, `level=INFO msg="publish ended" key=live/logged`) || strings.Contains(got, "level=WARN") {
		t.Fatalf("want the publish's end at info, no warning:\n%s", got)
	}
	if strings.Count(got, "\n") != 2 { // publish started, publish ended
		t.Fatalf("the probe was logged:\n%s", got)
	}
}

// FuzzGoRTMPReader: no input makes the patched go-rtmp reader panic or
// return a message over the origin's bound. The fuzzed reader has the
// origin's bounds and applies Set Chunk Size as the origin does; Abort is
// applied by the origin's message handler, outside this reader
// (TestOriginAbortFreesItsMessage).
func FuzzGoRTMPReader(f *testing.F) {
	f.Add(chunk(0, type0(0, 3, msgAudio, 1), []byte{0xaf, 1, 2}))
	ext := []byte{1, 0, 0, 0}
	f.Add(append(chunk(0, append(type0(0xffffff, 200, msgVideo, 1), ext...), bytes.Repeat([]byte{1}, 128)),
		chunk(3, ext, bytes.Repeat([]byte{1}, 72))...))
	f.Add(chunk(0, type0(0, 0, msgAudio, 1), nil))
	f.Add(append(setChunkSize(4096), chunk(0, type0(0, 3000, msgVideo, 1), make([]byte, 3000))...))
	f.Add(chunk(0, type0(0, 19, msgAggregate, 1), aggregate([]FLVTag{{Type: msgVideo, Body: []byte{0x17, 1, 0, 0}}}, 0)))
	f.Fuzz(func(t *testing.T, in []byte) {
		// The origin's bounds, and go-rtmp's defaults for the rest.
		cfg := &rtmp.StreamControlStateConfig{
			DefaultChunkSize: rtmp.DefaultChunkSize, MaxChunkSize: rtmp.MaxChunkSize, MaxChunkStreams: maxChunkStreams,
			DefaultAckWindowSize: math.MaxInt32, MaxAckWindowSize: math.MaxInt32,
			DefaultBandwidthWindowSize: math.MaxInt32, MaxBandwidthWindowSize: math.MaxInt32,
			MaxMessageSize: maxMessageLen, MaxMessageStreams: math.MaxUint32, MaxUnfinishedBytes: maxPendingBytes,
		}
		cs := rtmp.NewChunkStreamer(bytes.NewReader(in), io.Discard, cfg)
		defer cs.Close()
		for range 1000 {
			var cmsg rtmp.ChunkMessage
			if _, _, err := cs.Read(&cmsg); err != nil {
				return
			}
			switch m := cmsg.Message.(type) {
			case *rtmpmsg.SetChunkSize:
				if err := cs.PeerState().SetChunkSize(m.ChunkSize); err != nil {
					return
				}
			case *rtmpmsg.AudioMessage:
				checkBounded(t, m.Payload)
			case *rtmpmsg.VideoMessage:
				checkBounded(t, m.Payload)
			case *rtmpmsg.AggregateMessage:
				checkBounded(t, m.Payload)
			}
		}
	})
}

// checkBounded fails the test if a message is over the origin's bound.
func checkBounded(t *testing.T, payload io.Reader) {
	t.Helper()
	if n, _ := io.Copy(io.Discard, payload); n > maxMessageLen {
		t.Fatalf("a message of %d bytes", n)
	}
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// go-rtmp lets go of a large message's buffer once the message is read:
// a peer that sends one large message on each of its chunk streams holds
// no more than that one message. v0.0.7 kept each chunk stream's buffer
// at the size of its largest message until the connection closed, so
// maxChunkStreams streams of maxMessageLen held 512 MiB (up to twice
// that with the buffers' growth) after maxPendingBytes had been checked.
func TestGoRTMPKeepsNoLargeBuffers(t *testing.T) {
	const size, streams = 1 << 20, maxChunkStreams - 1 // chunk stream 2 has the Set Chunk Size
	in := []io.Reader{bytes.NewReader(setChunkSize(size))}
	for cs := 0; cs < streams; cs++ {
		var hdr []byte
		if id := 3 + cs; id < 64 {
			hdr = []byte{byte(id)}
		} else {
			hdr = []byte{0, byte(id - 64)}
		}
		hdr = append(hdr, 0, 0, 0, size>>16&0xff, size>>8&0xff, size&0xff, msgAudio, 1, 0, 0, 0)
		in = append(in, bytes.NewReader(hdr), io.LimitReader(zeros{}, size))
	}
	cfg := &rtmp.StreamControlStateConfig{
		DefaultChunkSize: rtmp.DefaultChunkSize, MaxChunkSize: rtmp.MaxChunkSize, MaxChunkStreams: maxChunkStreams,
		DefaultAckWindowSize: math.MaxInt32, MaxAckWindowSize: math.MaxInt32,
		DefaultBandwidthWindowSize: math.MaxInt32, MaxBandwidthWindowSize: math.MaxInt32,
		MaxMessageSize: maxMessageLen, MaxMessageStreams: maxMessageStreams, MaxUnfinishedBytes: maxPendingBytes,
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cs := rtmp.NewChunkStreamer(io.MultiReader(in...), io.Discard, cfg)
	defer cs.Close()
	for i := 0; i <= streams; i++ {
		var cmsg rtmp.ChunkMessage
		if _, _, err := cs.Read(&cmsg); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		switch m := cmsg.Message.(type) {
		case *rtmpmsg.SetChunkSize:
			if err := cs.PeerState().SetChunkSize(m.ChunkSize); err != nil {
				t.Fatal(err)
			}
		case *rtmpmsg.AudioMessage:
			if n, _ := io.Copy(io.Discard, m.Payload); n != size {
				t.Fatalf("message %d: %d bytes, want %d", i, n, size)
			}
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(cs)
	if held := int64(after.HeapAlloc) - int64(before.HeapAlloc); held > 16*size {
		t.Fatalf("%d MiB held after %d messages of 1 MiB were read", held>>20, streams)
	}
}

// resetListener hands out connections whose writes fail as a peer's reset
// makes them fail, while their reads go on with what the peer sent before
// it: the origin's first chunk on chunk stream 3 after the handshake (its
// answer to connect) waits until the origin has read failAt bytes, and
// fails, as does every write after it.
type resetListener struct {
	net.Listener
	failAt int64
}

func (l resetListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &resetConn{Conn: c, failAt: l.failAt}, nil
}

type resetConn struct {
	net.Conn
	failAt        int64
	read, written atomic.Int64
	failed        atomic.Bool
}

func (c *resetConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c *resetConn) Write(p []byte) (int, error) {
	const handshake = 1 + 2*1536 // S0, S1, S2
	if c.failed.Load() {
		return 0, syscall.ECONNRESET
	}
	if c.written.Load() >= handshake && len(p) > 0 && p[0] == 3 {
		for c.read.Load() < c.failAt {
			time.Sleep(time.Millisecond)
		}
		c.failed.Store(true)
		return 0, syscall.ECONNRESET
	}
	c.written.Add(int64(len(p)))
	return c.Conn.Write(p)
}

// A connection whose writes fail (the peer reset it) while the origin
// reads a large message the peer sent before: go-rtmp acknowledges the
// message as it reads it, and each acknowledgement after its write loop
// had ended was queued for a loop nobody ran, 64 of them and the next
// blocked the connection's goroutine for good. The connection then never
// ended (a publisher's entry stayed live), and Serve's shutdown waited
// for it forever. Now a write after the loop ended fails, and so does the
// connection.
func TestOriginEndsAConnectionWhoseWritesFail(t *testing.T) {
	p, err := pool.New(pool.DefaultConfig(), quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	s := NewServer(DefaultConfig(), p, quiet())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}

	var connect bytes.Buffer
	enc := amf0.NewEncoder(&connect)
	for _, v := range []any{"connect", 1.0, map[string]any{"app": "live"}} {
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
	}
	const chunk = 32 << 10
	in := setChunkSize(chunk)
	// Window Acknowledgement Size of 1: counted as minAckWindow, an
	// acknowledgement every 32 KiB read.
	in = append(in, 2, 0, 0, 0, 0, 0, 4, msgWindowAckSize, 0, 0, 0, 0, 0, 0, 0, 1)
	n := connect.Len()
	in = append(in, 3, 0, 0, 0, byte(n>>16), byte(n>>8), byte(n), msgCommandAMF0, 0, 0, 0, 0)
	in = append(in, connect.Bytes()...)
	// The writes fail 40 KiB into a 4 MiB message in chunks of 32 KiB,
	// each acknowledged: after the first acknowledgement, with 127 to
	// come.
	failAt := int64(2*1536+1) + int64(len(in)) + 40<<10
	size := 4 << 20
	in = append(in, 4, 0, 0, 0, byte(size>>16), byte(size>>8), byte(size), msgAudio, 0, 0, 0, 0) // on stream 0
	for c := range size / chunk {
		if c > 0 {
			in = append(in, 0xc4)
		}
		in = append(in, make([]byte, chunk)...)
	}

	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, resetListener{Listener: ln, failAt: failAt}) }()
	conn := rtmpPeer(t, ln.Addr().String(), "writes fail")
	defer conn.Close()
	_, _ = conn.Write(in) // the origin may end the connection before the end
	ended := false
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !ended; time.Sleep(10 * time.Millisecond) {
		s.mu.Lock()
		ended = len(s.conns) == 0
		s.mu.Unlock()
	}
	cancel()
	if !ended {
		t.Error("the connection whose writes failed is still served after 10 s")
	}
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return: it waits for the connection whose writes failed")
	}
}
